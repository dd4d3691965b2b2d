"""Relationship values: conversations -> one weight per agent pair and topic."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .conversations import Conversation
from .embedding import Embedder, as_embedder
from .errors import InputError
from .metrics import Metric, get_metric
from .store import Store

VALUE_COLUMNS = ["agent_a", "agent_b", "topic", "weight", "n_conversations", "conversation_ids"]


def _score_rows(
    conversations: Sequence[Conversation], metric: str | Metric, embedder: Any, store: Store | None, progress: bool
) -> tuple[list[dict], dict[str, str]]:
    """Per-conversation values as plain rows (the fast path shared by both public functions)."""
    conversations = list(conversations)
    if not conversations:
        raise InputError("no conversations to score")
    name, fn = get_metric(metric)
    emb = as_embedder(embedder, store=store)
    texts = [u.text if u.status == "ok" else "" for c in conversations for u in c.utterances]
    vectors = emb.encode(texts, show_progress=progress)
    rows, start = [], 0
    for conv in conversations:
        n = len(conv.utterances)
        a, b = conv.pair
        value = float(fn(vectors[start:start + n], [u.speaker for u in conv.utterances]))
        start += n
        rows.append({"conversation_id": conv.id, "agent_a": a, "agent_b": b, "topic": conv.topic,
                     "n_utterances": n, "value": value})
    return rows, {"metric": name, "embedder": emb.model_id}


def score_conversations(
    conversations: Sequence[Conversation],
    metric: str | Metric = "cumulative_cosine",
    embedder: Embedder | str | Any | None = None,
    store: Store | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per conversation: id, agent_a, agent_b (sorted), topic, n_utterances, value.

    All utterances of all conversations are embedded in one batched, deduplicated call.
    """
    rows, attrs = _score_rows(conversations, metric, embedder, store, progress)
    frame = pd.DataFrame(rows)
    frame.attrs.update(attrs)
    return frame


def relationship_values(
    conversations: Iterable[Conversation],
    metric: str | Metric = "cumulative_cosine",
    embedder: Embedder | str | Any | None = None,
    store: Store | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Relationship value of every agent pair per topic.

    Returns a DataFrame with columns ``agent_a, agent_b, topic, weight, n_conversations,
    conversation_ids`` (``agent_a < agent_b``); several conversations of one pair and topic are
    averaged and their ids kept as provenance. Rows are sorted, so equal inputs give equal frames.

    >>> values = relationship_values(convs, metric="echo_discounted_cosine")  # doctest: +SKIP
    """
    rows, attrs = _score_rows(list(conversations), metric, embedder, store, progress)
    groups: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
    for r in rows:
        groups.setdefault((r["agent_a"], r["agent_b"], r["topic"]), []).append((r["conversation_id"], r["value"]))
    table = []
    for (a, b, topic), members in sorted(groups.items()):
        members.sort()
        table.append((a, b, topic, float(np.mean([v for _, v in members])), len(members), [i for i, _ in members]))
    values = pd.DataFrame(table, columns=VALUE_COLUMNS)
    values.attrs.update(attrs)
    return values


def aggregate_topics(values: pd.DataFrame) -> pd.DataFrame:
    """All-topics relationship values: the mean over every conversation of a pair, any topic."""
    check_values(values)
    weighted = values.assign(total=values["weight"] * values["n_conversations"])
    grouped = weighted.groupby(["agent_a", "agent_b"], sort=True)
    out = grouped.agg(
        total=("total", "sum"), n_conversations=("n_conversations", "sum"),
        conversation_ids=("conversation_ids", lambda s: sorted(i for ids in s for i in ids)),
    ).reset_index()
    out["weight"] = out["total"] / out["n_conversations"]
    out["topic"] = "all"
    out = out[VALUE_COLUMNS]
    out.attrs.update(values.attrs)
    return out


def check_values(values: pd.DataFrame) -> None:
    """Raise InputError unless ``values`` has the relationship-value columns."""
    missing = [c for c in ("agent_a", "agent_b", "topic", "weight") if c not in getattr(values, "columns", [])]
    if missing:
        raise InputError(f"relationship values lack column(s): {', '.join(missing)}")
    if not np.isfinite(values["weight"].to_numpy(dtype=float)).all():
        raise InputError("relationship values contain NaN or infinite weights")
