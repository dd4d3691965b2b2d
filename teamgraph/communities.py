"""Louvain communities with an iterated multi-seed consensus, modularity and stability.

Louvain depends on its seed. :func:`find_communities` runs it with ``n_seeds`` seeds and combines
the runs by *consensus clustering* (Lancichinetti & Fortunato 2012, "Consensus clustering in
complex networks", Sci. Rep. 2:336), then checks the result against the seeds' own partitions:

1. the co-assignment matrix ``D`` of the runs (``D[i, j]``: fraction of runs putting ``i`` and
   ``j`` together) loses its entries below ``tau`` (:data:`CONSENSUS_TAU`) and its diagonal;
2. Louvain re-clusters ``D`` (as a weighted graph, resolution 1) once per seed, with the same seeds;
3. 1-2 repeat on the new runs until every seed gives the same partition (``D`` is then
   block-diagonal), at most :data:`MAX_CONSENSUS_ITERATIONS` rounds; a round that does not agree
   by then gives its most frequent partition (ties: the lowest seed).

Guarantees of the exported partition (tests/test_communities.py checks them on random graphs):

- its modularity on the graph is at least the median of the seeds' modularities: when the
  consensus falls short, the seed partition with median-or-better modularity that is most similar
  to the consensus (adjusted Rand index; ties: higher modularity, then lower seed) is exported;
- an agent is an isolate only if every seed isolates it: the consensus can drop all of an agent's
  ties below ``tau``, so such an agent joins the community where it adds the most modularity. At
  resolution <= 1 this costs no modularity and the guarantee always holds (Louvain then isolates
  only agents without edges). Above 1 the two guarantees can conflict (most seeds isolate an agent
  that one seed grouped, and grouping it costs modularity); then the modularity guarantee wins and
  ``Partition.consensus["outcome"]`` ends in "isolate guarantee not met";
- the same graph (in any insertion order) and settings give the same, byte-identical result.

When all seeds agree, that partition is the result (always so for ``n_seeds=1``).
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Hashable

import networkx as nx
import numpy as np

from .errors import InputError

#: Co-assignment below this fraction of runs is dropped before re-clustering (Lancichinetti & Fortunato's tau).
CONSENSUS_TAU = 0.5
#: Rounds of re-clustering before the consensus settles for the last round's most frequent partition.
MAX_CONSENSUS_ITERATIONS = 20
#: Modularity comparisons allow for float rounding (sums in another order).
_Q_TOLERANCE = 1e-12

Groups = list[list[str]]


@dataclass
class Partition:
    """Communities of a language-model graph and how much to trust them.

    ``communities`` lists every community (singletons included) as sorted member lists, largest
    first; ``teams`` are those of size >= 2 and ``isolates`` the agents left alone.
    ``stability`` is the mean pairwise adjusted Rand index between the seeds' partitions (1.0 =
    every seed agreed); ``coassignment[i, j]`` is the fraction of seeds putting ``nodes[i]`` and
    ``nodes[j]`` together, and ``seed_partitions`` are the seeds' own partitions. ``consensus``
    says how the exported partition was reached (see :func:`find_communities`). ``significance``
    (a ``significance.Significance``) and ``validation`` (a ``validation.LabelAgreement``) are
    filled by ``permutation_test`` and ``label_agreement``; ``validation_by_kind`` holds one
    agreement per label kind (``family``, ``role``: see validation.py).
    """

    communities: Groups
    modularity: float
    stability: float
    nodes: list[str]
    coassignment: np.ndarray
    seed_partitions: list[Groups]
    settings: dict[str, Any]
    graph: nx.Graph = field(repr=False)
    significance: Any = None
    validation: Any = None
    validation_by_kind: dict[str, Any] = field(default_factory=dict)
    consensus: dict[str, Any] = field(default_factory=dict)

    @property
    def teams(self) -> Groups:
        return [c for c in self.communities if len(c) >= 2]

    @property
    def isolates(self) -> list[str]:
        return sorted(c[0] for c in self.communities if len(c) == 1)

    def membership(self) -> dict[str, int]:
        """Agent name -> index of its community in ``communities``."""
        return {name: i for i, members in enumerate(self.communities) for name in members}


def _canonical(groups: Any) -> Groups:
    """Sorted member lists, largest first, ties by first member: one canonical form per partition."""
    return sorted((sorted(map(str, g)) for g in groups), key=lambda g: (-len(g), g[0]))


def _louvain_once(graph: nx.Graph, resolution: float, seed: int, backend: str) -> Groups:
    if graph.number_of_edges() == 0:
        return _canonical([[n] for n in graph.nodes])
    if backend == "python-louvain":
        import community as community_louvain

        labels = community_louvain.best_partition(graph, weight="weight", resolution=resolution, random_state=seed)
        groups: dict[int, list[str]] = {}
        for node, label in labels.items():
            groups.setdefault(label, []).append(node)
        return _canonical(groups.values())
    return _canonical(nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed))


def _default_backend() -> str:
    try:
        import community  # noqa: F401  (python-louvain)

        return "python-louvain" if hasattr(community, "best_partition") else "networkx"
    except ImportError:
        return "networkx"


def coassignment_matrix(partitions: list[Groups], nodes: list[str]) -> np.ndarray:
    """Fraction of partitions in which each pair of nodes shares a community."""
    index = {n: i for i, n in enumerate(nodes)}
    labels = np.zeros((len(partitions), len(nodes)), dtype=int)
    for p, groups in enumerate(partitions):
        for c, members in enumerate(groups):
            labels[p, [index[m] for m in members]] = c
    return (labels[:, :, None] == labels[:, None, :]).mean(axis=0)


def partition_labels(groups: Groups, nodes: list[str]) -> list[int]:
    """Community index of each node, in ``nodes`` order."""
    member = {n: i for i, g in enumerate(groups) for n in g}
    return [member[n] for n in nodes]


def adjusted_rand(a: list[int], b: list[int]) -> float:
    """``sklearn.metrics.adjusted_rand_score`` of two labelings, computed the same way (same float),
    without its input validation, which costs 50 times the arithmetic on a dozen agents."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    n = len(a)
    sum_squares = int((table ** 2).sum())
    fp = int(table.dot(table.sum(axis=0)).sum()) - sum_squares
    fn = int(table.T.dot(table.sum(axis=1)).sum()) - sum_squares
    tp = sum_squares - n
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def stability(partitions: list[Groups], nodes: list[str]) -> float:
    """Mean pairwise adjusted Rand index between partitions (1.0 for a single partition)."""
    if len(partitions) < 2:
        return 1.0
    labels = [partition_labels(p, nodes) for p in partitions]
    scores = [adjusted_rand(a, b) for a, b in itertools.combinations(labels, 2)]
    return float(np.mean(scores))


def modularity(graph: nx.Graph, groups: Groups, resolution: float = 1.0) -> float:
    """``networkx.community.modularity`` of ``groups`` on ``graph``; 0.0 for a graph without weight."""
    if graph.size(weight="weight") <= 0:
        return 0.0
    return float(nx.community.modularity(graph, [set(g) for g in groups], weight="weight", resolution=resolution))


# -- consensus --------------------------------------------------------------------------------

def iterated_consensus(
    runs: list[Groups], nodes: list[str], seeds: list[int], backend: str,
    tau: float = CONSENSUS_TAU, max_iterations: int = MAX_CONSENSUS_ITERATIONS,
) -> tuple[Groups, int, bool]:
    """Lancichinetti & Fortunato's consensus of ``runs``: ``(partition, rounds, converged)``.

    Each round thresholds the co-assignment matrix at ``tau`` (entries below it become 0, the
    diagonal is ignored) and re-clusters it with Louvain, once per seed of ``seeds``, until all
    seeds agree. Runs that already agree are returned as they are (0 rounds). If ``max_iterations``
    rounds do not agree, the last round's most frequent partition is returned (ties: the earliest
    seed) with ``converged=False``.
    """
    current = runs
    for rounds in range(max_iterations + 1):
        if all(p == current[0] for p in current):
            return current[0], rounds, True
        if rounds == max_iterations:
            break
        co = coassignment_matrix(current, nodes)
        d = nx.Graph()
        d.add_nodes_from(nodes)
        rows, cols = np.nonzero(np.triu(co >= tau, k=1))
        d.add_weighted_edges_from((nodes[i], nodes[j], float(co[i, j])) for i, j in zip(rows, cols))
        current = [_louvain_once(d, 1.0, s, backend) for s in seeds]
    counts = Counter(tuple(map(tuple, p)) for p in current)
    best = max(counts.values())
    return next(p for p in current if counts[tuple(map(tuple, p))] == best), max_iterations, False


def _attach_isolates(graph: nx.Graph, groups: Groups, keep_alone: set[str], co: np.ndarray,
                     nodes: list[str], resolution: float) -> Groups:
    """Move every singleton not in ``keep_alone`` into the community where it adds the most modularity.

    Candidates are the communities joined to the agent by an edge or, failing that, by a positive
    co-assignment; ties go to the higher co-assignment, then to the earlier community. Agents are
    handled in name order, one after the other. At resolution <= 1 the best move never lowers the
    modularity of an agent with an edge (the gains over all communities sum to a positive number).
    """
    index = {n: i for i, n in enumerate(nodes)}
    for agent in sorted(g[0] for g in groups if len(g) == 1 and g[0] not in keep_alone):
        if [agent] not in groups:
            continue  # an earlier agent already joined it
        others = [g for g in groups if g != [agent]]
        together = {id(g): co[index[agent], [index[m] for m in g]] for g in others}
        linked = ([g for g in others if any(graph.has_edge(agent, m) for m in g)]
                  or [g for g in others if together[id(g)].max() > 0])

        def gain(target: list[str]) -> tuple[float, float]:
            moved = [g + [agent] if g is target else g for g in others]
            return modularity(graph, moved, resolution), float(together[id(target)].sum())

        if linked:
            target = max(linked, key=gain)  # max keeps the first of equal scores
            groups = _canonical([g + [agent] if g is target else g for g in others])
    return groups


def _consensus_partition(graph: nx.Graph, runs: list[Groups], nodes: list[str], seeds: list[int],
                         resolution: float, backend: str) -> tuple[Groups, float, dict[str, Any]]:
    """The exported partition, its modularity, and how it was reached (guarantees: module docstring)."""
    info: dict[str, Any] = {"method": "lancichinetti-fortunato", "tau": CONSENSUS_TAU}
    scores: dict[tuple, float] = {}

    def q(groups: Groups) -> float:
        key = tuple(map(tuple, groups))
        if key not in scores:
            scores[key] = modularity(graph, groups, resolution)
        return scores[key]

    if all(p == runs[0] for p in runs):  # nothing to reconcile: the guarantees hold trivially
        return runs[0], q(runs[0]), {**info, "rounds": 0, "converged": True, "seed_modularity_median": q(runs[0]),
                                     "outcome": "consensus"}
    seed_q = [q(p) for p in runs]
    floor = float(np.median(seed_q))
    always_alone = set.intersection(*({g[0] for g in p if len(g) == 1} for p in runs))

    def acceptable(groups: Groups) -> bool:
        alone = {g[0] for g in groups if len(g) == 1}
        return q(groups) >= floor - _Q_TOLERANCE and alone <= always_alone

    co = coassignment_matrix(runs, nodes)
    found, rounds, converged = iterated_consensus(runs, nodes, seeds, backend)
    info.update(rounds=rounds, converged=converged, seed_modularity_median=floor)
    repaired = _attach_isolates(graph, found, always_alone, co, nodes, resolution)
    if acceptable(repaired):
        return repaired, q(repaired), {**info, "outcome": "consensus" if repaired == found else "consensus, isolates attached"}
    # Fall back to a seed partition: the most similar to the consensus, then the best, then the first.
    target = partition_labels(found, nodes)
    similarity = [adjusted_rand(target, partition_labels(p, nodes)) for p in runs]
    ranked = sorted(range(len(runs)), key=lambda s: (-similarity[s], -seed_q[s], s))
    for s in ranked:
        if acceptable(runs[s]):
            return runs[s], seed_q[s], {**info, "outcome": f"seed {seeds[s]}"}
    for s in ranked:  # resolution > 1 only: a seed isolated an agent that others grouped
        attached = _attach_isolates(graph, runs[s], always_alone, co, nodes, resolution)
        if acceptable(attached):
            return attached, q(attached), {**info, "outcome": f"seed {seeds[s]}, isolates attached"}
    s = next(s for s in ranked if seed_q[s] >= floor - _Q_TOLERANCE)  # the best seed always qualifies
    return runs[s], seed_q[s], {**info, "outcome": f"seed {seeds[s]}, isolate guarantee not met"}


# -- input ------------------------------------------------------------------------------------

def _edge_weight(u: Hashable, v: Hashable, data: dict) -> float:
    """The edge's weight as a float (1.0 when absent); InputError naming the pair when unusable."""
    w = data.get("weight", 1.0)
    if isinstance(w, bool) or not isinstance(w, Real):
        raise InputError(f"edge ({u!r}, {v!r}): weight {w!r} is not a number")
    w = float(w)
    if not math.isfinite(w):
        raise InputError(f"edge ({u!r}, {v!r}): weight {w} is not finite (NaN or infinite)")
    if w < 0:
        raise InputError(f"edge ({u!r}, {v!r}): weight {w} is negative; edge weights must be non-negative for modularity")
    return w


def _string_names(graph: nx.Graph) -> nx.Graph:
    """``graph`` with every node name a string: non-string names are converted with ``str``."""
    if all(isinstance(n, str) for n in graph.nodes):
        return graph
    names: dict[str, Hashable] = {}
    for n in graph.nodes:
        if isinstance(n, float) and math.isnan(n):
            raise InputError("an agent name is NaN (a missing name?)")
        other = names.setdefault(str(n), n)
        if other != n:
            raise InputError(f"agent names {other!r} and {n!r} are the same as text ('{n}'); rename one")
    return nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)


def find_communities(
    graph: nx.Graph,
    resolution: float = 1.0,
    n_seeds: int = 10,
    seed: int = 0,
    backend: str | None = None,
) -> Partition:
    """Louvain over ``n_seeds`` seeds (``seed .. seed+n_seeds-1``), combined by iterated consensus.

    Guarantees (module docstring): the modularity of the result on ``graph`` is at least the median
    of the seeds' modularities; an agent is an isolate only if every seed isolates it (always at
    resolution <= 1); same inputs give the same output. ``modularity`` is that of the result.

    Agent names that are not strings (``0, 1, 2`` from a networkx generator) are converted with
    ``str`` (``Partition.graph`` is then the converted copy); names that collide as text raise
    InputError. Weights must be finite and non-negative numbers (a missing weight counts 1.0);
    edges of weight 0 carry nothing for modularity and are ignored, so a graph whose edges all
    weigh 0 is treated as edgeless: every agent an isolate, modularity 0.

    >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
    >>> find_communities(g, n_seeds=3).communities
    [['a', 'b'], ['c', 'd']]
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise InputError("find_communities needs an undirected networkx Graph (not directed, not a multigraph)")
    if graph.number_of_nodes() == 0:
        raise InputError("the graph has no agents")
    if not resolution > 0:
        raise InputError(f"resolution must be > 0, got {resolution}")
    if n_seeds < 1:
        raise InputError(f"n_seeds must be >= 1, got {n_seeds}")
    weights = {(u, v): _edge_weight(u, v, d) for u, v, d in graph.edges(data=True)}
    backend = backend or _default_backend()
    if backend not in ("python-louvain", "networkx"):
        raise InputError(f"unknown Louvain backend '{backend}' (python-louvain or networkx)")
    graph = _string_names(graph)
    # Sorted node and edge order: Louvain visits nodes in insertion order.
    ordered = nx.Graph()
    ordered.add_nodes_from(sorted(graph.nodes))
    ordered.add_weighted_edges_from(sorted(
        (min(str(u), str(v)), max(str(u), str(v)), w) for (u, v), w in weights.items() if w > 0))
    nodes = list(ordered.nodes)
    seeds = [seed + i for i in range(n_seeds)]
    runs = [_louvain_once(ordered, resolution, s, backend) for s in seeds]
    communities, q, info = _consensus_partition(ordered, runs, nodes, seeds, resolution, backend)
    settings = {"method": "louvain", "backend": backend, "resolution": resolution, "n_seeds": n_seeds, "seed": seed}
    return Partition(communities, q, stability(runs, nodes), nodes, coassignment_matrix(runs, nodes), runs,
                     settings, graph, consensus=info)
