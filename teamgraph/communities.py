"""Louvain communities with a multi-seed consensus, modularity and stability."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from sklearn.metrics import adjusted_rand_score

from .errors import InputError


@dataclass
class Partition:
    """Communities of a language-model graph and how much to trust them.

    ``communities`` lists every community (singletons included) as sorted member lists, largest
    first; ``teams`` are those of size >= 2 and ``isolates`` the agents left alone.
    ``stability`` is the mean pairwise adjusted Rand index between the seeds' partitions (1.0 =
    every seed agreed); ``coassignment[i, j]`` is the fraction of seeds putting ``nodes[i]`` and
    ``nodes[j]`` together. ``significance`` (a ``significance.Significance``) and ``validation``
    (a ``validation.LabelAgreement``) are filled by ``permutation_test`` and ``label_agreement``;
    ``validation_by_kind`` holds one agreement per label kind (``family``, ``role``: see validation.py).
    """

    communities: list[list[str]]
    modularity: float
    stability: float
    nodes: list[str]
    coassignment: np.ndarray
    seed_partitions: list[list[list[str]]]
    settings: dict[str, Any]
    graph: nx.Graph = field(repr=False)
    significance: Any = None
    validation: Any = None
    validation_by_kind: dict[str, Any] = field(default_factory=dict)

    @property
    def teams(self) -> list[list[str]]:
        return [c for c in self.communities if len(c) >= 2]

    @property
    def isolates(self) -> list[str]:
        return sorted(c[0] for c in self.communities if len(c) == 1)

    def membership(self) -> dict[str, int]:
        """Agent name -> index of its community in ``communities``."""
        return {name: i for i, members in enumerate(self.communities) for name in members}


def _canonical(groups: Any) -> list[list[str]]:
    """Sorted member lists, largest first, ties by first member: one canonical form per partition."""
    return sorted((sorted(map(str, g)) for g in groups), key=lambda g: (-len(g), g[0]))


def _louvain_once(graph: nx.Graph, resolution: float, seed: int, backend: str) -> list[list[str]]:
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


def coassignment_matrix(partitions: list[list[list[str]]], nodes: list[str]) -> np.ndarray:
    """Fraction of partitions in which each pair of nodes shares a community."""
    index = {n: i for i, n in enumerate(nodes)}
    labels = np.array([[0] * len(nodes)] * len(partitions))
    for p, groups in enumerate(partitions):
        for c, members in enumerate(groups):
            labels[p, [index[m] for m in members]] = c
    return (labels[:, :, None] == labels[:, None, :]).mean(axis=0)


def consensus_communities(coassignment: np.ndarray, nodes: list[str], level: float = 0.5) -> list[list[str]]:
    """Groups of nodes linked by co-assignment above ``level`` (connected components)."""
    g = nx.Graph()
    g.add_nodes_from(nodes)
    rows, cols = np.nonzero(np.triu(coassignment > level, k=1))
    g.add_edges_from((nodes[i], nodes[j]) for i, j in zip(rows, cols))
    return _canonical(nx.connected_components(g))


def partition_labels(groups: list[list[str]], nodes: list[str]) -> list[int]:
    """Community index of each node, in ``nodes`` order."""
    member = {n: i for i, g in enumerate(groups) for n in g}
    return [member[n] for n in nodes]


def stability(partitions: list[list[list[str]]], nodes: list[str]) -> float:
    """Mean pairwise adjusted Rand index between partitions (1.0 for a single partition)."""
    if len(partitions) < 2:
        return 1.0
    labels = [partition_labels(p, nodes) for p in partitions]
    scores = [adjusted_rand_score(a, b) for a, b in itertools.combinations(labels, 2)]
    return float(np.mean(scores))


def find_communities(
    graph: nx.Graph,
    resolution: float = 1.0,
    n_seeds: int = 10,
    seed: int = 0,
    backend: str | None = None,
) -> Partition:
    """Louvain over ``n_seeds`` seeds, combined into a consensus partition.

    Louvain depends on its seed, so it runs with seeds ``seed .. seed+n_seeds-1``; agents that share
    a community in more than half of the runs end up together. Modularity is that of the consensus
    partition on ``graph``. Same inputs give the same output.

    >>> g = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
    >>> find_communities(g, n_seeds=3).communities
    [['a', 'b'], ['c', 'd']]
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed():
        raise InputError("find_communities needs an undirected networkx Graph")
    if graph.number_of_nodes() == 0:
        raise InputError("the graph has no agents")
    if resolution <= 0:
        raise InputError(f"resolution must be > 0, got {resolution}")
    if n_seeds < 1:
        raise InputError(f"n_seeds must be >= 1, got {n_seeds}")
    if any(d.get("weight", 1.0) < 0 for _, _, d in graph.edges(data=True)):
        raise InputError("edge weights must be non-negative for modularity")
    backend = backend or _default_backend()
    if backend not in ("python-louvain", "networkx"):
        raise InputError(f"unknown Louvain backend '{backend}' (python-louvain or networkx)")
    # Sorted node and edge order: Louvain visits nodes in insertion order.
    ordered = nx.Graph()
    ordered.add_nodes_from(sorted(graph.nodes))
    ordered.add_weighted_edges_from(sorted((min(u, v), max(u, v), d.get("weight", 1.0)) for u, v, d in graph.edges(data=True)))
    nodes = list(ordered.nodes)
    runs = [_louvain_once(ordered, resolution, seed + i, backend) for i in range(n_seeds)]
    co = coassignment_matrix(runs, nodes)
    communities = consensus_communities(co, nodes)
    if ordered.number_of_edges():
        q = float(nx.community.modularity(ordered, [set(c) for c in communities], weight="weight", resolution=resolution))
    else:
        q = 0.0
    settings = {"method": "louvain", "backend": backend, "resolution": resolution, "n_seeds": n_seeds, "seed": seed}
    return Partition(communities, q, stability(runs, nodes), nodes, co, runs, settings, graph)
