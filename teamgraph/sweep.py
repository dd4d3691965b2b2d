"""How robust are the teams? Sweeps over resolution and threshold, and metric comparisons.

Both return tidy pandas DataFrames (one row per setting) with the number of communities,
modularity, stability, the permutation p-value of :mod:`teamgraph.significance` and, when the
agents carry labels, the agreement with them (:mod:`teamgraph.validation`).
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import networkx as nx
import pandas as pd

from .communities import Partition, find_communities
from .conversations import Conversation
from .errors import InputError
from .graph import Threshold, build_graph
from .limits import (DEFAULT_LABEL_PERMUTATIONS, DEFAULT_N_PERMUTATIONS, DEFAULT_N_SEEDS, DEFAULT_RESOLUTION,
                     DEFAULT_SEED, DEFAULT_THRESHOLD, check)
from .metrics import METRICS
from .scoring import check_values, relationship_values
from .significance import permutation_test
from .validation import label_agreement, label_gap

if TYPE_CHECKING:
    from .config import RunConfig

DEFAULT_RESOLUTIONS = (0.5, 1.0, 1.5, 2.0)
DEFAULT_THRESHOLDS = ("none", "mean", "quantile:0.75", "top_k:2")

SWEEP_COLUMNS = [
    "topic", "threshold", "resolution", "n_edges", "n_communities", "n_teams", "n_isolates", "modularity",
    "stability", "p_value", "gap_p_value", "ari", "nmi", "label_p_value", "communities",
]


def analyse(
    graph: nx.Graph,
    values: pd.DataFrame | None = None,
    resolution: float = DEFAULT_RESOLUTION,
    n_seeds: int = DEFAULT_N_SEEDS,
    seed: int = DEFAULT_SEED,
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    null_seeds: int = 1,
    label_permutations: int = DEFAULT_LABEL_PERMUTATIONS,
) -> Partition:
    """Communities of ``graph`` carrying their significance and (when nodes carry labels) label agreement."""
    partition = find_communities(graph, resolution=resolution, n_seeds=n_seeds, seed=seed)
    if n_permutations > 0:
        partition = partition.with_significance(
            permutation_test(partition, n_permutations=n_permutations, seed=seed, values=values, n_seeds=null_seeds))
    return partition.with_validation(label_agreement(partition, n_permutations=label_permutations, seed=seed))


def partition_row(partition: Partition) -> dict[str, Any]:
    """The summary columns shared by sweep and comparison tables."""
    sig, val = partition.significance, partition.validation
    nan = float("nan")
    return {
        "n_edges": partition.graph.number_of_edges(),
        "n_communities": len(partition.communities),
        "n_teams": len(partition.teams),
        "n_isolates": len(partition.isolates),
        "modularity": partition.modularity,
        "stability": partition.stability,
        "p_value": sig.p_value if sig else nan,
        "gap_p_value": sig.gap_p_value if sig else nan,
        "ari": val.ari if val else nan,
        "nmi": val.nmi if val else nan,
        "label_p_value": val.p_value if val else nan,
        "communities": " | ".join(",".join(c) for c in partition.communities),
    }


def sweep(
    values: pd.DataFrame,
    resolutions: Sequence[float] = DEFAULT_RESOLUTIONS,
    thresholds: Sequence[str] = DEFAULT_THRESHOLDS,
    topics: Sequence[str] = ("all",),
    agents: Any = None,
    n_seeds: int = DEFAULT_N_SEEDS,
    seed: int = DEFAULT_SEED,
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    null_seeds: int = 1,
) -> pd.DataFrame:
    """Communities for every topic x threshold rule x Louvain resolution, one row each.

    ``agents`` (Agent objects or name -> attributes) supply labels for the ARI/NMI columns; without
    labels those columns are NaN. ``n_permutations=0`` skips the significance test (p NaN).

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values (``agent_a``, ``agent_b``, ``topic``, ``weight``).
    resolutions : sequence of float
        Louvain resolutions (limit ``resolution``).
    thresholds : sequence of str
        Edge rules: ``none``, ``mean``, ``quantile:Q``, ``top_k:K``.
    topics : sequence of str
        Topics; ``all`` averages over every topic.
    agents : optional
        Agent objects or name -> attributes (labels).
    n_seeds, seed : int
        Louvain seeds per partition and the first seed.
    n_permutations : int
        Significance permutations; 0 skips the test.
    null_seeds : int
        Louvain seeds per null graph.

    Returns
    -------
    pandas.DataFrame
        One row per topic x threshold x resolution (:data:`SWEEP_COLUMNS`).

    Raises
    ------
    InputError
        Bad values, an empty setting list, an unknown threshold rule or a setting out of its limit.

    Examples
    --------
    >>> names = ["a1", "a2", "a3", "b1", "b2", "b3"]
    >>> rows = [(u, v, "t", 0.9 if u[0] == v[0] else 0.1) for i, u in enumerate(names) for v in names[i + 1:]]
    >>> values = pd.DataFrame(rows, columns=["agent_a", "agent_b", "topic", "weight"])
    >>> table = sweep(values, resolutions=[1.0], thresholds=["mean", "none"], n_seeds=2, n_permutations=0)
    >>> table[["threshold", "resolution", "n_teams", "communities"]]
      threshold  resolution  n_teams          communities
    0      mean         1.0        2  a1,a2,a3 | b1,b2,b3
    1      none         1.0        2  a1,a2,a3 | b1,b2,b3
    """
    values = check_values(values)
    if not resolutions or not thresholds or not topics:
        raise InputError("sweep needs at least one resolution, threshold and topic")
    rules = [str(Threshold.parse(t)) for t in thresholds]
    for r in resolutions:
        check("resolution", r)
    rows = []
    for topic, rule in itertools.product(topics, rules):
        graph = build_graph(values, rule, topic, agents)
        for resolution in resolutions:
            partition = analyse(graph, values, float(resolution), n_seeds, seed, n_permutations, null_seeds)
            rows.append({"topic": topic, "threshold": rule, "resolution": float(resolution), **partition_row(partition)})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


COMPARE_COLUMNS = ["metric", "repeats", "topic", "n_conversations"] + SWEEP_COLUMNS[3:-1] + [
    "label_gap", "label_gap_p_value", "communities"]


def compare_metrics(
    conversations: Iterable[Conversation],
    metrics: Sequence[str] | None = None,
    topics: Sequence[str] | None = None,
    repeats: Sequence[int] | None = None,
    repeat_of: Mapping[str, int] | None = None,
    agents: Any = None,
    threshold: str = DEFAULT_THRESHOLD,
    resolution: float = DEFAULT_RESOLUTION,
    n_seeds: int = DEFAULT_N_SEEDS,
    seed: int = DEFAULT_SEED,
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    null_seeds: int = 1,
    embedder: Any = None,
    store: Any = None,
) -> pd.DataFrame:
    """Metric x conversations-per-pair x topic table of label agreement and significance.

    Besides the partition's ARI/NMI, ``label_gap`` is the same-label minus mixed-label mean of the
    relationship values themselves (:func:`teamgraph.validation.label_gap`): signal in the values
    that thresholding and Louvain may or may not turn into communities.

    ``repeat_of`` maps a conversation id to its repeat index (0, 1, ...); for each ``r`` in
    ``repeats`` only conversations with index < r are used, so "repeats 1" and "repeats 3" are the
    same run's first conversation per pair and all three. Without ``repeat_of`` every conversation
    is used once (``repeats`` column ``"all"``). Topics default to every topic plus ``"all"``.
    Embeddings are computed once and shared by all metrics.

    Parameters
    ----------
    conversations : iterable of Conversation
        The conversations to score.
    metrics : sequence of str, optional
        Names from :data:`teamgraph.METRICS` (default: all).
    topics : sequence of str, optional
        Default: every topic plus ``all``.
    repeats : sequence of int, optional
        Conversations per pair to compare (needs ``repeat_of``).
    repeat_of : mapping, optional
        Conversation id -> repeat index.
    agents : optional
        Agent objects or name -> attributes (labels).
    threshold, resolution, n_seeds, seed, n_permutations, null_seeds
        As for :func:`sweep`, one value each.
    embedder : optional
        An :class:`~teamgraph.Embedder`, a model name, or an object with ``encode``.
    store : Store, optional
        Embedding cache when ``embedder`` is a name.

    Returns
    -------
    pandas.DataFrame
        One row per metric x repeats x topic (:data:`COMPARE_COLUMNS`).

    Raises
    ------
    InputError
        No conversations, an unknown metric, a conversation without a repeat index.

    Examples
    --------
    >>> import numpy as np
    >>> from teamgraph import Conversation, Utterance
    >>> class Letters:  # a toy embedder: counts of "a" and "b"
    ...     def encode(self, texts, **kwargs):
    ...         return np.array([[t.count("a"), t.count("b")] for t in texts], dtype=float)
    >>> convs = [Conversation(x, y, "t", [Utterance(x, "aa"), Utterance(y, "aab" if x[0] == y[0] else "bb")])
    ...          for x, y in [("a1", "a2"), ("a1", "b1"), ("a2", "b1")]]
    >>> table = compare_metrics(convs, metrics=["mean_cosine"], embedder=Letters(), n_seeds=2, n_permutations=0)
    >>> table[["metric", "topic", "n_conversations", "n_teams"]]
            metric topic  n_conversations  n_teams
    0  mean_cosine     t                3        1
    """
    from .embedding import as_embedder

    conversations = list(conversations)
    if not conversations:
        raise InputError("no conversations to compare")
    metrics = list(metrics or METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric '{unknown[0]}' (choose from: {', '.join(METRICS)})")
    if repeat_of is None:
        subsets: list[tuple[Any, list[Conversation]]] = [("all", conversations)]
    else:
        missing = [c.id for c in conversations if c.id not in repeat_of]
        if missing:
            raise InputError(f"conversation '{missing[0]}' has no repeat index")
        wanted = sorted(set(repeats or [max(repeat_of.values()) + 1]))
        check("repeats", wanted[0])
        index = {c.id: repeat_of[str(c.id)] for c in conversations}
        subsets = [(r, [c for c in conversations if index[c.id] < r]) for r in wanted]
    all_topics = sorted({c.topic for c in conversations})
    topics = list(topics) if topics else all_topics + (["all"] if len(all_topics) > 1 else [])
    emb = as_embedder(embedder, store=store)
    rows = []
    for metric in metrics:
        for r, subset in subsets:
            values = relationship_values(subset, metric=metric, embedder=emb)
            for topic in topics:
                n_conv = len(subset) if topic == "all" else sum(c.topic == topic for c in subset)
                graph = build_graph(values, threshold, topic, agents)
                partition = analyse(graph, values, resolution, n_seeds, seed, n_permutations, null_seeds)
                labels = {n: d.get("labels") for n, d in graph.nodes(data=True)}
                gap = label_gap(values, labels, topic, seed=seed)
                rows.append({"metric": metric, "repeats": r, "topic": topic, "n_conversations": n_conv,
                             **partition_row(partition), "label_gap": gap.gap if gap else float("nan"),
                             "label_gap_p_value": gap.p_value if gap else float("nan")})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def format_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A plain-text table for the terminal (floats to 3 digits, p-values to 3 significant)."""
    columns = list(columns or frame.columns)
    shown = frame[columns].copy()
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            fmt = "{:.3g}" if "p_value" in col else "{:.3f}"
            shown[col] = shown[col].map(lambda x: "-" if x != x else fmt.format(x))
    return str(shown.to_string(index=False))


def config_conversations(config: RunConfig, store_path: str | None = None, run_missing: bool = False,
                         progress: bool = True) -> tuple[list[Conversation], dict[str, int]]:
    """The conversations ``config`` plans, from its store (running missing ones when ``run_missing``).

    Returns the conversations and their repeat indices. Without ``run_missing``, an incomplete store
    raises an InputError that says how many conversations are missing and how to produce them.
    """
    import contextlib
    from pathlib import Path

    from .dialogue import run_conversations, stored_conversations
    from .pipeline import open_backends, plan, preflight
    from .store import Store

    path = Path(store_path or config.store or Path(config.output) / "store.sqlite")
    if not run_missing and not path.exists():
        raise InputError(f"{path}: no store; run `teamgraph run {config.source or 'CONFIG'}` first (or pass --run)")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(path))
        backends = open_backends(config)
        for backend in backends.values():
            stack.callback(backend.close)
        specs = plan(config, backends)
        if run_missing:
            preflight(config, backends)
            conversations = run_conversations(specs, backends, store, config.conversation, progress=progress)
        else:
            conversations = stored_conversations(store, specs)  # a reader: legacy ids are read, not re-keyed
            if len(conversations) < len(specs):
                raise InputError(f"{path}: {len(specs) - len(conversations)} of {len(specs)} planned conversations "
                                 "are not in the store; pass --run to generate them")
    return conversations, {s.id: s.repeat for s in specs}


__all__ = ["sweep", "compare_metrics", "analyse", "partition_row", "format_table", "config_conversations",
           "DEFAULT_RESOLUTIONS", "DEFAULT_THRESHOLDS"]
