"""Relationship values: conversations -> one weight per agent pair and topic.

The examples embed with a toy embedder (letter counts) so that they run without a model; leave
``embedder`` out to use the packaged all-MiniLM-L6-v2.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .conversations import Conversation
from .embedding import Embedder, as_embedder
from .errors import InputError
from .metrics import Metric, get_metric
from .store import Store

__all__ = ["VALUE_COLUMNS", "score_conversations", "relationship_values", "aggregate_topics", "topic_values",
           "check_values"]

#: The columns of a relationship-values table, in order (what :func:`check_values` returns).
VALUE_COLUMNS = ["agent_a", "agent_b", "topic", "weight", "n_conversations", "conversation_ids"]


def _score_rows(
    conversations: Sequence[Conversation], metric: str | Metric, embedder: Any, store: Store | None, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, str]]:
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

    All utterances of all conversations are embedded in one batched, deduplicated call; turns
    whose status is not ``ok`` are embedded as zero vectors. :func:`relationship_values` averages
    these rows per pair and topic.

    Parameters
    ----------
    conversations : sequence of Conversation
    metric : str or callable, default "cumulative_cosine"
        A name in :data:`teamgraph.METRICS` or a function ``(embeddings, speakers) -> float``.
    embedder : Embedder, str or object, optional
        An :class:`~teamgraph.Embedder`, a sentence-transformers model name or local path, or any
        object with ``encode(list_of_str) -> array`` (vectors are L2-normalised here). None: the
        packaged all-MiniLM-L6-v2.
    store : Store, optional
        Where embeddings are cached (keyed by embedder id and text) so scoring again costs no
        model call.
    progress : bool, default False
        Show a progress bar while embedding.

    Returns
    -------
    pandas.DataFrame
        Columns ``conversation_id, agent_a, agent_b, topic, n_utterances, value``, in the order of
        ``conversations``; ``attrs`` holds ``metric`` and ``embedder`` (the names used).

    Raises
    ------
    InputError
        No conversations, an unknown metric, or an embedder that cannot be loaded or returns
        the wrong shape.
    MissingDependencyError
        The default embedder's package is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from teamgraph import Conversation, Utterance
    >>> class Letters:  # a toy embedder: counts of "a" and "b"
    ...     def encode(self, texts, **kwargs):
    ...         return np.array([[t.count("a"), t.count("b")] for t in texts], dtype=float)
    >>> convs = [Conversation("ada", "bob", "mathematics", [Utterance("ada", "a"), Utterance("bob", "ab"),
    ...                                                     Utterance("ada", "b")]),
    ...          Conversation("ada", "cy", "mathematics", [Utterance("ada", "aa"), Utterance("cy", "bb")])]
    >>> scores = score_conversations(convs, metric="cumulative_cosine", embedder=Letters())
    >>> scores[["agent_a", "agent_b", "n_utterances", "value"]].round(3)
      agent_a agent_b  n_utterances  value
    0     ada     bob             3  1.414
    1     ada      cy             2  0.000
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
    This is the input of :func:`teamgraph.build_graph`.

    Parameters
    ----------
    conversations : iterable of Conversation
    metric : str or callable, default "cumulative_cosine"
        A name in :data:`teamgraph.METRICS` or a function ``(embeddings, speakers) -> float``.
    embedder : Embedder, str or object, optional
        As for :func:`score_conversations`; None: the packaged all-MiniLM-L6-v2.
    store : Store, optional
        Where embeddings are cached.
    progress : bool, default False
        Show a progress bar while embedding.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VALUE_COLUMNS`, one row per pair and topic, sorted by pair and topic;
        ``weight`` is the mean value over the pair's conversations; ``attrs`` holds ``metric`` and
        ``embedder``.

    Raises
    ------
    InputError
        No conversations, an unknown metric, an embedder that cannot be loaded, or agent names
        that are the same as text.
    MissingDependencyError
        The default embedder's package is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from teamgraph import Conversation, Utterance
    >>> class Letters:  # a toy embedder: counts of "a" and "b"
    ...     def encode(self, texts, **kwargs):
    ...         return np.array([[t.count("a"), t.count("b")] for t in texts], dtype=float)
    >>> convs = [Conversation("ada", "bob", "mathematics", [Utterance("ada", "a"), Utterance("bob", "ab"),
    ...                                                     Utterance("ada", "b")]),
    ...          Conversation("bob", "ada", "mathematics", [Utterance("bob", "a"), Utterance("ada", "a")]),
    ...          Conversation("ada", "cy", "mathematics", [Utterance("ada", "aa"), Utterance("cy", "bb")])]
    >>> values = relationship_values(convs, metric="cumulative_cosine", embedder=Letters())
    >>> values[["agent_a", "agent_b", "topic", "weight", "n_conversations"]].round(3)
      agent_a agent_b        topic  weight  n_conversations
    0     ada     bob  mathematics   1.207                2
    1     ada      cy  mathematics   0.000                1
    >>> values.attrs["metric"]
    'cumulative_cosine'

    With the default embedder (the packaged all-MiniLM-L6-v2):

    >>> values = relationship_values(convs, metric="echo_discounted_cosine")  # doctest: +SKIP
    """
    rows, attrs = _score_rows(list(conversations), metric, embedder, store, progress)
    rows.sort(key=lambda r: r["conversation_id"])  # repeats of a pair are averaged in id order
    frame = pd.DataFrame({"agent_a": [r["agent_a"] for r in rows], "agent_b": [r["agent_b"] for r in rows],
                          "topic": [r["topic"] for r in rows], "weight": [r["value"] for r in rows],
                          "n_conversations": 1, "conversation_ids": [[r["conversation_id"]] for r in rows]})
    frame.attrs.update(attrs)
    return check_values(frame)


def aggregate_topics(values: pd.DataFrame) -> pd.DataFrame:
    """All-topics relationship values: the mean over every conversation of a pair, any topic.

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values (see :func:`check_values`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VALUE_COLUMNS`, one row per pair, ``topic`` ``"all"``; the weight is the
        conversation-weighted mean over the pair's topics.

    Raises
    ------
    InputError
        ``values`` are not valid relationship values.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["ada", "ada"], "agent_b": ["bob", "bob"],
    ...                        "topic": ["mathematics", "medicine"], "weight": [0.9, 0.3],
    ...                        "n_conversations": [2, 1]})
    >>> aggregate_topics(values)[["agent_a", "agent_b", "topic", "weight", "n_conversations"]]
      agent_a agent_b topic  weight  n_conversations
    0     ada     bob   all     0.7                3
    """
    values = check_values(values)
    out = _merge_pairs(values, ["agent_a", "agent_b"])
    out["topic"] = "all"
    out = out[VALUE_COLUMNS]
    out.attrs.update(values.attrs)
    return out


def topic_values(values: pd.DataFrame, topic: Any = None) -> pd.DataFrame:
    """The checked relationship values of one topic, one row per pair.

    ``None`` gives the all-topics mean (:func:`aggregate_topics`), and so does ``"all"`` unless a
    topic is literally named so; a topic not in ``values`` raises InputError naming the topics there.

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values (see :func:`check_values`).
    topic : object, optional
        A topic of ``values``; None or ``"all"`` for the all-topics mean.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VALUE_COLUMNS`, one row per pair, sorted by pair.

    Raises
    ------
    InputError
        ``values`` are not valid relationship values, or ``topic`` is not among them.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["ada", "ada"], "agent_b": ["bob", "bob"],
    ...                        "topic": ["mathematics", "medicine"], "weight": [0.9, 0.3]})
    >>> topic_values(values, "medicine")["weight"].tolist(), topic_values(values)["weight"].tolist()
    ([0.3], [0.6])
    >>> topic_values(values, "law")
    Traceback (most recent call last):
    teamgraph.errors.InputError: topic 'law' not in relationship values (have: mathematics, medicine)
    """
    values = check_values(values)
    topics = set(values["topic"])
    if topic is None or (topic == "all" and "all" not in topics):
        return aggregate_topics(values)
    if topic not in topics:
        raise InputError(f"topic '{topic}' not in relationship values (have: {', '.join(sorted(map(str, topics)))})")
    return values[values["topic"] == topic].reset_index(drop=True)


def _merge_pairs(values: pd.DataFrame, keys: Sequence[str] = ("agent_a", "agent_b", "topic")) -> pd.DataFrame:
    """One row per distinct ``keys``: the conversation-weighted mean weight, the summed
    ``n_conversations`` and the pooled, sorted ``conversation_ids``; rows sorted by ``keys``.

    The one aggregation of relationship values: repeats of a pair, a pair given in both orders
    (``values`` must have ordered pairs, as :func:`check_values` returns them) and the all-topics
    mean all go through it. Within a group, weights are summed in row order.
    """
    keys = list(keys)
    frame = values.sort_values(keys, key=_sort_key, kind="stable").reset_index(drop=True)
    if frame.empty:
        return frame[keys].assign(weight=pd.Series(dtype=float), n_conversations=pd.Series(dtype=np.int64),
                                  conversation_ids=pd.Series(dtype=object))
    cells = frame[keys].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, (cells[1:] != cells[:-1]).any(axis=1)])
    n = frame["n_conversations"].to_numpy(dtype=np.int64)
    totals = np.add.reduceat(frame["weight"].to_numpy(dtype=float) * n, starts)
    counts = np.add.reduceat(n, starts)
    ids = frame["conversation_ids"].tolist()
    ends = [*starts[1:], len(frame)]
    out = frame.loc[starts, keys].reset_index(drop=True)
    out["weight"] = totals / counts
    out["n_conversations"] = counts
    out["conversation_ids"] = [sorted(i for row in ids[s:e] for i in row) for s, e in zip(starts, ends)]
    return out


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(str)  # agent names are text; topics may mix types (1 and "math")


def check_values(values: Any) -> pd.DataFrame:
    """The validated relationship values: the one contract every function taking them goes through.

    ``values`` needs the columns ``agent_a, agent_b, topic, weight``; ``n_conversations``
    (default 1) and ``conversation_ids`` (default none; a space-separated string, as the CSV
    export writes it, is split) are optional. Returns a new frame with exactly
    :data:`VALUE_COLUMNS`, the ``attrs`` of ``values``, agent names as text, float weights, each
    pair ordered (``agent_a < agent_b``), rows given for one pair and topic in either order merged
    by :func:`_merge_pairs`, sorted by pair and topic. Raises InputError naming the column, row or
    pair for: a missing column, a missing agent name or topic, a weight that is not a finite
    number, a count that is not a positive whole number, a self-pair, or two names that are the
    same as text.

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values as a user, a CSV file or :func:`relationship_values` gives them.

    Returns
    -------
    pandas.DataFrame
        A new, valid table (``values`` is not changed).

    Raises
    ------
    InputError
        As listed above; the message names the column, row or pair.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["bob", 1], "agent_b": ["ada", "ada"], "topic": "mathematics",
    ...                        "weight": [0.5, 0.25], "conversation_ids": ["c1 c2", None]})
    >>> check_values(values)
      agent_a agent_b        topic  weight  n_conversations conversation_ids
    0       1     ada  mathematics    0.25                1               []
    1     ada     bob  mathematics    0.50                1         [c1, c2]
    >>> check_values(values.assign(weight=[0.5, float("nan")]))
    Traceback (most recent call last):
    teamgraph.errors.InputError: relationship values: pair (1, 'ada') in topic 'mathematics' has weight nan; weights must be finite numbers, not NaN or infinite
    """
    if not isinstance(values, pd.DataFrame):
        raise InputError(f"relationship values must be a pandas DataFrame, got {type(values).__name__}")
    missing = [c for c in ("agent_a", "agent_b", "topic", "weight") if c not in values.columns]
    if missing:
        raise InputError(f"relationship values lack column(s): {', '.join(missing)}")
    frame = values.reset_index(drop=True)
    for col in ("agent_a", "agent_b", "topic"):
        absent = frame[col].isna().to_numpy()
        if absent.any():
            what = "missing agent name" if col != "topic" else "missing topic"
            raise InputError(f"relationship values: row {int(np.argmax(absent))} has no {col} ({what})")

    def pair(row: int, column: str, value: Any, rule: str) -> InputError:
        a, b, topic = frame.at[row, "agent_a"], frame.at[row, "agent_b"], frame.at[row, "topic"]
        shown = repr(value) if isinstance(value, str) else str(value)
        return InputError(f"relationship values: pair ({a!r}, {b!r}) in topic {topic!r} has {column} {shown}; {rule}")

    weights = pd.to_numeric(frame["weight"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(weights)
    if bad.any():
        more = f" ({int(bad.sum())} rows in all)" if bad.sum() > 1 else ""
        row = int(np.argmax(bad))
        raise pair(row, "weight", frame.at[row, "weight"], f"weights must be finite numbers, not NaN or infinite{more}")
    if "n_conversations" in frame:
        counts = pd.to_numeric(frame["n_conversations"], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(counts) & (counts >= 1) & (counts == np.round(counts)))
        if bad.any():
            row = int(np.argmax(bad))
            raise pair(row, "n_conversations", frame.at[row, "n_conversations"], "it must be a whole number >= 1")
        counts = counts.astype(np.int64)
    else:
        counts = np.ones(len(frame), dtype=np.int64)
    ids = [_conversation_ids(v) for v in frame["conversation_ids"]] if "conversation_ids" in frame else None
    if ids is not None and None in ids:
        row = ids.index(None)
        raise pair(row, "conversation_ids", frame.at[row, "conversation_ids"], "give a list of ids")
    as_text: dict[str, Any] = {}
    for name in pd.unique(frame[["agent_a", "agent_b"]].to_numpy().ravel()):
        other = as_text.setdefault(str(name), name)
        if other != name:
            raise InputError(f"relationship values: agent names {other!r} and {name!r} are the same as text; rename one")
    a, b = frame["agent_a"].map(str).to_numpy(dtype=object), frame["agent_b"].map(str).to_numpy(dtype=object)
    same = a == b
    if same.any():
        row = int(np.argmax(same))
        raise InputError(f"relationship values: pair ({a[row]!r}, {b[row]!r}) in topic {frame.at[row, 'topic']!r} "
                         "is a self-pair (agent_a == agent_b)")
    swap = a > b
    out = pd.DataFrame({"agent_a": np.where(swap, b, a), "agent_b": np.where(swap, a, b), "topic": frame["topic"],
                        "weight": weights, "n_conversations": counts,
                        "conversation_ids": ids if ids is not None else [[] for _ in range(len(frame))]})
    if out.duplicated(["agent_a", "agent_b", "topic"]).any():
        out = _merge_pairs(out)
    else:
        out = out.sort_values(["agent_a", "agent_b", "topic"], key=_sort_key, kind="stable").reset_index(drop=True)
    out = out[VALUE_COLUMNS]
    out.attrs.update(values.attrs)
    return out


def _conversation_ids(cell: Any) -> list[str] | None:
    """A ``conversation_ids`` cell as a list of ids (None when it is not one)."""
    if isinstance(cell, str):
        return cell.split()
    if isinstance(cell, (list, tuple, np.ndarray, pd.Series)):
        return [str(i) for i in cell]
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []  # an empty CSV cell
    return None
