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

Above :data:`DENSE_COASSIGNMENT_MAX_AGENTS` agents ``D`` is kept only for the pairs joined by an
edge of the graph, as a sparse matrix (Tandon et al. 2019, "Fast consensus clustering in complex
networks", Phys. Rev. E 99:042301): memory of the order of the edges instead of 8 N**2 bytes
(800 MB at 10,000 agents, and a 1 GB temporary per round). On a complete graph the result is the
same; on a sparser one, pairs that some run grouped without an edge between them carry no weight
in the re-clustering. ``Partition.consensus["coassignment"]`` is then ``"graph edges"``.

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

Backends (:data:`BACKENDS`; ``backend=None`` takes the first installed of sknetwork, python-louvain,
networkx) only do the per-seed clustering, of the graph and of each consensus round's matrix; the
consensus, its guarantees and the modularity reported (networkx's, on the graph, at the chosen
resolution: :func:`modularity`) are the same for all of them:

- ``"sknetwork"``: scikit-network's Louvain (compiled; 10 seeds on a 1,000-agent complete graph in
  about a second). Seed ``s`` shuffles the node order with ``numpy.random.RandomState(s)``
  (``shuffle_nodes``): without a shuffle its Louvain ignores the seed. Newman modularity, both
  tolerances :data:`SKNETWORK_TOLERANCE`. ``"sknetwork-leiden"``: its Leiden, the same way; its
  refinement draws from the C library's ``rand()``, which is seeded with ``srand(s)`` before each
  seed's run (POSIX systems only: elsewhere this backend counts as not installed; a thread calling
  ``rand()`` meanwhile would break the reproducibility);
- ``"python-louvain"``: ``community.best_partition`` (pure Python; about 60 s for 10 seeds on 500 agents);
- ``"networkx"``: ``networkx.community.louvain_communities`` (pure Python).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any, Hashable, Mapping, cast

import networkx as nx
import numpy as np
from scipy import sparse

from .errors import InputError
from .limits import DEFAULT_N_SEEDS, DEFAULT_RESOLUTION, DEFAULT_SEED, SEED_LIMIT, check

__all__ = [
    "CONSENSUS_TAU", "MAX_CONSENSUS_ITERATIONS", "BACKENDS", "SKNETWORK_TOLERANCE",
    "DENSE_COASSIGNMENT_MAX_AGENTS", "Groups", "CommunitySettings", "Partition", "backend_available",
    "coassignment_matrix", "pair_coassignment", "partition_labels", "adjusted_rand", "stability",
    "modularity", "iterated_consensus", "find_communities"
]

if TYPE_CHECKING:
    from .significance import Significance
    from .validation import LabelAgreement

#: Co-assignment below this fraction of runs is dropped before re-clustering (Lancichinetti & Fortunato's tau).
CONSENSUS_TAU = 0.5
#: Rounds of re-clustering before the consensus settles for the last round's most frequent partition.
MAX_CONSENSUS_ITERATIONS = 20
#: Modularity comparisons allow for float rounding (sums in another order).
_Q_TOLERANCE = 1e-12
#: Per-seed clustering backends, by the name ``find_communities(backend=...)`` takes.
BACKENDS = ("sknetwork", "sknetwork-leiden", "python-louvain", "networkx")
#: The order ``backend=None`` tries them in.
_DEFAULT_ORDER = ("sknetwork", "python-louvain", "networkx")
#: scikit-network's ``tol_optimization`` and ``tol_aggregation`` (its default is 1e-3): the modularity
#: gain below which a pass or an aggregation level stops, networkx's louvain ``threshold``.
SKNETWORK_TOLERANCE = 1e-7
#: Up to this many agents the co-assignment is a dense N x N array (8 N**2 bytes: 32 MB at 2,000);
#: above it, a sparse matrix over the graph's edges only (see :func:`find_communities`).
DENSE_COASSIGNMENT_MAX_AGENTS = 2000

Groups = list[list[str]]


@dataclass(frozen=True)
class CommunitySettings:
    """How a :class:`Partition` was found: the arguments of :func:`find_communities` that made it.

    Parameters
    ----------
    method : str
        ``"louvain"`` or ``"leiden"``.
    backend : str
        The per-seed clustering backend (one of :data:`BACKENDS`).
    resolution : float
        Louvain's resolution.
    n_seeds : int
        Seeds combined by consensus.
    seed : int
        The first seed (seeds ``seed .. seed + n_seeds - 1``).

    Examples
    --------
    >>> CommunitySettings("louvain", "networkx", 1.0, 10, 0).as_dict()["n_seeds"]
    10
    """

    method: str
    backend: str
    resolution: float
    n_seeds: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready mapping (teams JSON ``partition``).

        Returns
        -------
        dict
            ``method``, ``backend``, ``resolution``, ``n_seeds`` and ``seed``.
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Partition:
    """Communities of a language-model graph and how much to trust them.

    ``communities`` lists every community (singletons included) as sorted member lists, largest
    first; ``teams`` are those of size >= 2 and ``isolates`` the agents left alone.
    ``stability`` is the mean pairwise adjusted Rand index between the seeds' partitions (1.0 =
    every seed agreed); ``coassignment[i, j]`` is the fraction of seeds putting ``nodes[i]`` and
    ``nodes[j]`` together (above :data:`DENSE_COASSIGNMENT_MAX_AGENTS` agents a ``scipy.sparse``
    CSR matrix holding it for the graph's edges and the diagonal only), and ``seed_partitions``
    are the seeds' own partitions. ``consensus``
    says how the exported partition was reached (see :func:`find_communities`) and ``settings``
    with what. A Partition is a value: nothing changes it after it is made. ``significance`` (from
    ``permutation_test``), ``validation`` and ``validation_by_kind`` (from ``label_agreement``, one
    agreement per label kind such as ``family``, ``role``: see validation.py) are empty as
    :func:`find_communities` returns it; :meth:`with_significance` and :meth:`with_validation`
    give a copy that carries them.

    Parameters
    ----------
    communities : list of list of str
        Every community, singletons included, canonical order.
    modularity, stability : float
        Of the exported partition, and the seeds' mean pairwise ARI.
    nodes : list of str
        The agents, sorted; the order of ``coassignment``.
    coassignment : ndarray or scipy.sparse.csr_matrix
        Fraction of seeds putting two agents together.
    seed_partitions : list
        Each seed's own partition.
    settings : CommunitySettings
        The arguments that made it.
    graph : networkx.Graph
        The graph it partitions.
    significance, validation, validation_by_kind, consensus
        See above.

    Examples
    --------
    >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0}), ("e", "a", {"weight": 0.0})])
    >>> part = find_communities(g, n_seeds=3)
    >>> part.teams, part.isolates, part.settings.n_seeds
    ([['a', 'b'], ['c', 'd']], ['e'], 3)
    """

    communities: Groups
    modularity: float
    stability: float
    nodes: list[str]
    coassignment: np.ndarray | sparse.csr_matrix
    seed_partitions: list[Groups]
    settings: CommunitySettings
    graph: nx.Graph = field(repr=False)
    significance: Significance | None = None
    validation: LabelAgreement | None = None
    validation_by_kind: Mapping[str, LabelAgreement] = field(default_factory=dict)
    consensus: Mapping[str, Any] = field(default_factory=dict)

    def with_significance(self, significance: Significance | None) -> Partition:
        """A copy of this partition that carries ``significance`` (from :func:`~teamgraph.permutation_test`).

        Parameters
        ----------
        significance : Significance or None

        Returns
        -------
        Partition

        Examples
        --------
        >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
        >>> part = find_communities(g, n_seeds=2)
        >>> part.with_significance(None) is part, part.significance is None
        (False, True)
        """
        return dataclasses.replace(self, significance=significance)

    def with_validation(self, agreement: LabelAgreement | None, kind: str | None = None) -> Partition:
        """A copy that carries ``agreement`` (from :func:`~teamgraph.label_agreement`).

        Parameters
        ----------
        agreement : LabelAgreement or None
            None (labels too few to measure) leaves the copy without one.
        kind : str, optional
            The label kind measured (``family``, ``role``); the agreement then goes in
            ``validation_by_kind[kind]``; without, it is ``validation``.

        Returns
        -------
        Partition

        Examples
        --------
        >>> from teamgraph.validation import label_agreement
        >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
        >>> part = find_communities(g, n_seeds=2)
        >>> labels = {"a": "x", "b": "x", "c": "y", "d": "y"}
        >>> part.with_validation(label_agreement(part, labels, n_permutations=20)).validation.ari
        1.0
        """
        if kind is None:
            return dataclasses.replace(self, validation=agreement)
        by_kind = dict(self.validation_by_kind)
        if agreement is None:
            by_kind.pop(kind, None)
        else:
            by_kind[kind] = agreement
        return dataclasses.replace(self, validation_by_kind=by_kind)

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


def _groups_of(labels: np.ndarray, nodes: list[str]) -> Groups:
    """The partition of ``nodes`` given by one label per node."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return _canonical([[nodes[i] for i in part] for part in np.split(order, bounds)])


def _adjacency(graph: nx.Graph, nodes: list[str]) -> sparse.csr_matrix:
    """Symmetric CSR adjacency of ``graph`` in ``nodes`` order; a self-loop counts twice on the diagonal,
    so row sums are networkx's weighted degrees and sknetwork's modularity is networkx's."""
    index = {n: i for i, n in enumerate(nodes)}
    m = graph.number_of_edges()
    rows, cols, weights = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m)
    for k, (u, v, w) in enumerate(graph.edges(data="weight", default=1.0)):
        rows[k], cols[k], weights[k] = index[u], index[v], w
    return _symmetric(rows, cols, weights, len(nodes))


def _symmetric(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n: int) -> sparse.csr_matrix:
    """The CSR matrix with ``weights`` at (rows, cols) and at (cols, rows) (twice on the diagonal)."""
    matrix = sparse.coo_matrix((np.concatenate([weights, weights]),
                                (np.concatenate([rows, cols]), np.concatenate([cols, rows]))), shape=(n, n))
    return sparse.csr_matrix(matrix)  # sums duplicates; sknetwork wants a csr_matrix, not a csr_array


def _sknetwork_runs(adjacency: sparse.csr_matrix, nodes: list[str], resolution: float, seeds: list[int],
                    backend: str) -> list[Groups]:
    """One sknetwork clustering of ``adjacency`` per seed: seed ``s`` visits the nodes in the order of a
    ``RandomState(s)`` shuffle, so each seed is its own, reproducible run."""
    if adjacency.nnz == 0:
        return [_canonical([[n] for n in nodes]) for _ in seeds]
    from sknetwork.clustering import Leiden, Louvain

    leiden = backend == "sknetwork-leiden"
    method = Leiden if leiden else Louvain
    runs = []
    for s in seeds:
        if leiden:  # its refinement draws from C's rand(), which random_state does not seed
            _c_srand()(s)
        algorithm = method(resolution=resolution, modularity="newman", tol_optimization=SKNETWORK_TOLERANCE,
                           tol_aggregation=SKNETWORK_TOLERANCE, shuffle_nodes=True, sort_clusters=False,
                           return_probs=False, return_aggregate=False, random_state=np.random.RandomState(s))
        runs.append(_groups_of(np.asarray(algorithm.fit_predict(adjacency)), nodes))
    return runs


@functools.lru_cache(maxsize=1)
def _c_srand() -> Any:
    """The C library's ``srand`` (None where ctypes cannot reach it: not a POSIX system)."""
    try:
        import ctypes

        srand = ctypes.CDLL(None).srand
    except (OSError, TypeError, AttributeError):
        return None
    srand.argtypes, srand.restype = [ctypes.c_uint], None
    return srand


def _louvain_once(graph: nx.Graph, resolution: float, seed: int, backend: str) -> Groups:
    """One clustering of ``graph`` with ``seed`` by ``backend``."""
    if graph.number_of_edges() == 0:
        return _canonical([[n] for n in graph.nodes])
    if backend.startswith("sknetwork"):
        nodes = list(graph.nodes)
        return _sknetwork_runs(_adjacency(graph, nodes), nodes, resolution, [seed], backend)[0]
    if backend == "python-louvain":
        import community as community_louvain

        labels = community_louvain.best_partition(graph, weight="weight", resolution=resolution, random_state=seed)
        groups: dict[int, list[str]] = {}
        for node, label in labels.items():
            groups.setdefault(label, []).append(node)
        return _canonical(groups.values())
    return _canonical(nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed))


def backend_available(backend: str) -> bool:
    """Whether ``backend`` (one of :data:`BACKENDS`) can be imported here."""
    import importlib.util

    if backend.startswith("sknetwork"):
        reproducible = backend == "sknetwork" or _c_srand() is not None
        return reproducible and importlib.util.find_spec("sknetwork") is not None
    if backend == "python-louvain":
        try:
            import community  # python-louvain's module; another package of that name lacks best_partition
        except ImportError:
            return False
        return hasattr(community, "best_partition")
    return backend == "networkx"


def _default_backend() -> str:
    """The first installed of :data:`_DEFAULT_ORDER` (networkx always is)."""
    return next(b for b in _DEFAULT_ORDER if backend_available(b))


def _label_matrix(partitions: list[Groups], nodes: list[str]) -> np.ndarray:
    """Community index of each node (columns, ``nodes`` order) in each partition (rows)."""
    index = {n: i for i, n in enumerate(nodes)}
    labels = np.zeros((len(partitions), len(nodes)), dtype=int)
    for p, groups in enumerate(partitions):
        for c, members in enumerate(groups):
            labels[p, [index[m] for m in members]] = c
    return labels


def coassignment_matrix(partitions: list[Groups], nodes: list[str]) -> np.ndarray:
    """Fraction of partitions in which each pair of nodes shares a community."""
    labels = _label_matrix(partitions, nodes)
    together: np.ndarray = (labels[:, :, None] == labels[:, None, :]).mean(axis=0)
    return together


def pair_coassignment(partitions: list[Groups], nodes: list[str], first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """:func:`coassignment_matrix` at the pairs ``(nodes[first[k]], nodes[second[k]])`` only (the same
    floats), in memory of the order of the pairs, not N x N."""
    labels = _label_matrix(partitions, nodes)
    together = np.zeros(len(first))
    for row in labels:
        together += row[first] == row[second]
    return together / len(partitions)


def _sparse_coassignment(partitions: list[Groups], nodes: list[str], first: np.ndarray,
                         second: np.ndarray) -> sparse.csr_matrix:
    """The co-assignment over the pairs (``first < second``) as a symmetric sparse matrix, with the diagonal
    (1.0) and without the pairs never put together: :func:`coassignment_matrix` where it is stored."""
    values = pair_coassignment(partitions, nodes, first, second)
    keep = values > 0
    n = len(nodes)
    diagonal = np.arange(n)
    rows = np.concatenate([first[keep], second[keep], diagonal])
    cols = np.concatenate([second[keep], first[keep], diagonal])
    data = np.concatenate([values[keep], values[keep], np.ones(n)])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def _row(co: np.ndarray | sparse.csr_matrix, i: int) -> np.ndarray:
    """Row ``i`` of a dense or sparse co-assignment, dense."""
    if sparse.issparse(co):
        return np.asarray(cast(sparse.csr_matrix, co).getrow(i).toarray()).ravel()
    return np.asarray(co[i])


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
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Groups, int, bool]:
    """Lancichinetti & Fortunato's consensus of ``runs``: ``(partition, rounds, converged)``.

    Each round thresholds the co-assignment matrix at ``tau`` (entries below it become 0, the
    diagonal is ignored) and re-clusters it with Louvain, once per seed of ``seeds``, until all
    seeds agree. Runs that already agree are returned as they are (0 rounds). If ``max_iterations``
    rounds do not agree, the last round's most frequent partition is returned (ties: the earliest
    seed) with ``converged=False``. ``pairs`` (index arrays ``first < second``, sorted) restricts the
    co-assignment to those pairs, the graph's edges for a large graph (Tandon et al. 2019, "Fast
    consensus clustering in complex networks"); on a complete graph that changes nothing.
    """
    current = runs
    for rounds in range(max_iterations + 1):
        if all(p == current[0] for p in current):
            return current[0], rounds, True
        if rounds == max_iterations:
            break
        if pairs is None:
            co = coassignment_matrix(current, nodes)
            rows, cols = np.nonzero(np.triu(co >= tau, k=1))
            values = co[rows, cols]
        else:
            values = pair_coassignment(current, nodes, *pairs)
            keep = values >= tau
            rows, cols, values = pairs[0][keep], pairs[1][keep], values[keep]
        if backend.startswith("sknetwork"):
            current = _sknetwork_runs(_symmetric(rows, cols, values, len(nodes)), nodes, 1.0, seeds, backend)
            continue
        d = nx.Graph()
        d.add_nodes_from(nodes)
        d.add_weighted_edges_from(zip([nodes[i] for i in rows.tolist()], [nodes[j] for j in cols.tolist()],
                                      values.tolist()))
        current = [_louvain_once(d, 1.0, s, backend) for s in seeds]
    counts = Counter(tuple(map(tuple, p)) for p in current)
    best = max(counts.values())
    return next(p for p in current if counts[tuple(map(tuple, p))] == best), max_iterations, False


def _attach_isolates(graph: nx.Graph, groups: Groups, keep_alone: set[str], co: np.ndarray | sparse.csr_matrix,
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
        row = _row(co, index[agent])
        together = {id(g): row[[index[m] for m in g]] for g in others}
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
                         resolution: float, backend: str, pairs: tuple[np.ndarray, np.ndarray] | None = None,
                         ) -> tuple[Groups, float, dict[str, Any]]:
    """The exported partition, its modularity, and how it was reached (guarantees: module docstring)."""
    info: dict[str, Any] = {"method": "lancichinetti-fortunato", "tau": CONSENSUS_TAU}
    scores: dict[tuple[tuple[str, ...], ...], float] = {}

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

    co = coassignment_matrix(runs, nodes) if pairs is None else _sparse_coassignment(runs, nodes, *pairs)
    found, rounds, converged = iterated_consensus(runs, nodes, seeds, backend, pairs=pairs)
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

def _edge_weight(u: Hashable, v: Hashable, data: dict[str, Any]) -> float:
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


def _checked_edges(graph: nx.Graph) -> tuple[list[tuple[Hashable, Hashable, Any]], np.ndarray]:
    """``graph``'s edges and their weights as floats (1.0 when absent), checked as :func:`_edge_weight`
    checks them; plain int and float weights are checked at once, anything else edge by edge."""
    edges = list(graph.edges(data="weight", default=1.0))
    raw = [w for _, _, w in edges]
    if all(type(w) is float or type(w) is int for w in raw):  # not bool, not a numpy scalar
        try:
            weights = np.array(raw, dtype=float)
        except OverflowError:  # an int beyond float: _edge_weight says so, as before
            weights = None
        if weights is not None and np.isfinite(weights).all() and (weights >= 0).all():
            return edges, weights
    return edges, np.array([_edge_weight(u, v, {"weight": w}) for u, v, w in edges], dtype=float)


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
    resolution: float = DEFAULT_RESOLUTION,
    n_seeds: int = DEFAULT_N_SEEDS,
    seed: int = DEFAULT_SEED,
    backend: str | None = None,
) -> Partition:
    """Louvain over ``n_seeds`` seeds (``seed .. seed+n_seeds-1``), combined by iterated consensus.

    Guarantees (module docstring): the modularity of the result on ``graph`` is at least the median
    of the seeds' modularities; an agent is an isolate only if every seed isolates it (always at
    resolution <= 1); same inputs give the same output. ``modularity`` is that of the result.
    ``backend`` (one of :data:`BACKENDS`; None: sknetwork where installed, else python-louvain, else
    networkx) does the per-seed clustering; seeds must lie in 0 .. 2**32-1 except for networkx.

    Agent names that are not strings (``0, 1, 2`` from a networkx generator) are converted with
    ``str`` (``Partition.graph`` is then the converted copy); names that collide as text raise
    InputError. Weights must be finite and non-negative numbers (a missing weight counts 1.0);
    edges of weight 0 carry nothing for modularity and are ignored, so a graph whose edges all
    weigh 0 is treated as edgeless: every agent an isolate, modularity 0.

    Parameters
    ----------
    graph : networkx.Graph
        Undirected, weighted (``weight``) language-model graph, e.g. from :func:`teamgraph.build_graph`.
    resolution : float
        Louvain's resolution (limit ``resolution``: > 0); above 1 favours smaller communities.
    n_seeds : int
        Louvain runs combined by consensus (limit ``n_seeds``).
    seed : int
        The first seed.
    backend : str, optional
        One of :data:`BACKENDS`.

    Returns
    -------
    Partition
        The communities, with modularity, stability, co-assignment and settings.

    Raises
    ------
    InputError
        Not an undirected simple graph, no agents, a bad weight or name, a setting out of its
        limit, an unknown or missing backend.

    Examples
    --------
    >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
    >>> find_communities(g, n_seeds=3).communities
    [['a', 'b'], ['c', 'd']]
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise InputError("find_communities needs an undirected networkx Graph (not directed, not a multigraph)")
    if graph.number_of_nodes() == 0:
        raise InputError("the graph has no agents")
    check("resolution", resolution)
    check("n_seeds", n_seeds)
    edges, weights = _checked_edges(graph)
    backend = backend or _default_backend()
    if backend not in BACKENDS:
        raise InputError(f"unknown community backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if not backend_available(backend):
        package = "scikit-network" if backend.startswith("sknetwork") else backend
        also = "; its seeds need the C library's srand, a POSIX system" if backend == "sknetwork-leiden" else ""
        raise InputError(f"community backend '{backend}' is not installed (pip install {package}){also}")
    if backend != "networkx" and not (0 <= seed and seed + n_seeds <= SEED_LIMIT):
        raise InputError(f"seeds {seed} .. {seed + n_seeds - 1} must lie in 0 .. 2**32-1 for the '{backend}' backend")
    graph = _string_names(graph)
    # Sorted node and edge order (Louvain visits nodes in insertion order, and modularity's float sums
    # follow it): nodes by name, edges by (smaller name, larger name); weight-0 edges left out.
    nodes = sorted(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    ends_u = np.fromiter((index[str(u)] for u, _, _ in edges), dtype=np.int64, count=len(edges))
    ends_v = np.fromiter((index[str(v)] for _, v, _ in edges), dtype=np.int64, count=len(edges))
    keep = weights > 0
    first, second = np.minimum(ends_u, ends_v)[keep], np.maximum(ends_u, ends_v)[keep]
    weights = weights[keep]
    order = np.lexsort((second, first))
    first, second, weights = first[order], second[order], weights[order]
    ordered = nx.Graph()
    ordered.add_nodes_from(nodes)
    ordered.add_weighted_edges_from(zip([nodes[k] for k in first.tolist()], [nodes[k] for k in second.tolist()],
                                        weights.tolist()))
    adjacency = _symmetric(first, second, weights, len(nodes)) if backend.startswith("sknetwork") else None
    seeds = [seed + i for i in range(n_seeds)]
    runs = (_sknetwork_runs(adjacency, nodes, resolution, seeds, backend) if adjacency is not None
            else [_louvain_once(ordered, resolution, s, backend) for s in seeds])
    pairs = None
    if len(nodes) > DENSE_COASSIGNMENT_MAX_AGENTS:  # the co-assignment over the graph's edges only
        loops = first == second
        pairs = (first[~loops], second[~loops])
    communities, q, info = _consensus_partition(ordered, runs, nodes, seeds, resolution, backend, pairs)
    if pairs is not None:
        info["coassignment"] = "graph edges"
    method = "leiden" if backend == "sknetwork-leiden" else "louvain"
    settings = CommunitySettings(method, backend, float(resolution), int(n_seeds), int(seed))
    co = coassignment_matrix(runs, nodes) if pairs is None else _sparse_coassignment(runs, nodes, *pairs)
    return Partition(communities, q, stability(runs, nodes), nodes, co, runs, settings, graph, consensus=info)
