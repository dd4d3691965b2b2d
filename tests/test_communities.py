import networkx as nx
import numpy as np
import pytest

import teamgraph as tg
from teamgraph.communities import coassignment_matrix, consensus_communities, stability
from teamgraph.errors import InputError


def planted_graph(groups, p_in=0.9, p_out=0.05, seed=0):
    """Complete weighted graph: strong weights inside each planted group, weak between, some noise."""
    rng = np.random.default_rng(seed)
    label = {n: i for i, g in enumerate(groups) for n in g}
    nodes = sorted(label)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for i, u in enumerate(nodes):
        for v in nodes[i + 1:]:
            base = p_in if label[u] == label[v] else p_out
            g.add_edge(u, v, weight=float(base + rng.uniform(0, 0.05)))
    return g


GROUPS = [["m1", "m2", "m3", "m4"], ["d1", "d2", "d3", "d4", "d5"], ["c1", "c2", "c3"]]


@pytest.mark.parametrize("backend", ["python-louvain", "networkx"])
def test_planted_three_group_graph_is_recovered_exactly(backend):
    p = tg.find_communities(planted_graph(GROUPS), n_seeds=10, seed=0, backend=backend)
    assert p.communities == sorted((sorted(g) for g in GROUPS), key=lambda g: (-len(g), g[0]))
    assert p.stability == pytest.approx(1.0)
    g = planted_graph(GROUPS)
    assert p.modularity == pytest.approx(nx.community.modularity(g, [set(x) for x in GROUPS], weight="weight"))
    assert p.isolates == []


def test_communities_of_a_thresholded_graph_report_isolates():
    g = planted_graph(GROUPS)
    g.add_node("loner")
    p = tg.find_communities(g, n_seeds=3)
    assert p.isolates == ["loner"]
    assert all(len(t) >= 2 for t in p.teams)


def test_coassignment_and_consensus_on_hand_made_partitions():
    nodes = ["a", "b", "c", "d"]
    runs = [[["a", "b"], ["c", "d"]], [["a", "b"], ["c", "d"]], [["a", "b", "c"], ["d"]], [["a"], ["b"], ["c", "d"]]]
    co = coassignment_matrix(runs, nodes)
    assert co[0, 1] == pytest.approx(0.75)
    assert co[2, 3] == pytest.approx(0.75)
    assert co[0, 2] == pytest.approx(0.25)
    assert np.allclose(np.diag(co), 1.0)
    assert consensus_communities(co, nodes) == [["a", "b"], ["c", "d"]]


def test_stability_is_one_for_agreement_and_lower_otherwise():
    nodes = ["a", "b", "c", "d"]
    same = [[["a", "b"], ["c", "d"]]] * 3
    assert stability(same, nodes) == 1.0
    mixed = [[["a", "b"], ["c", "d"]], [["a", "c"], ["b", "d"]]]
    # ARI of these two partitions of 4 items is -0.5 (computed by hand from the contingency table)
    assert stability(mixed, nodes) == pytest.approx(-0.5)


def test_edgeless_graph_gives_all_isolates_and_bad_settings_raise():
    g = nx.Graph()
    g.add_nodes_from(["b", "a"])
    p = tg.find_communities(g)
    assert p.teams == [] and p.isolates == ["a", "b"] and p.modularity == 0.0
    with pytest.raises(InputError, match="resolution"):
        tg.find_communities(planted_graph(GROUPS), resolution=0)
    with pytest.raises(InputError, match="n_seeds"):
        tg.find_communities(planted_graph(GROUPS), n_seeds=0)
    bad = nx.Graph([("a", "b", {"weight": -1.0})])
    with pytest.raises(InputError, match="non-negative"):
        tg.find_communities(bad)


def test_same_graph_in_another_insertion_order_gives_same_partition():
    g = planted_graph(GROUPS, p_in=0.5, p_out=0.3, seed=3)  # ambiguous: order would matter if not sorted
    shuffled = nx.Graph()
    rng = np.random.default_rng(1)
    nodes = list(g.nodes)
    rng.shuffle(nodes)
    shuffled.add_nodes_from(nodes)
    edge_list = list(g.edges(data=True))
    rng.shuffle(edge_list)
    shuffled.add_edges_from((v, u, d) for u, v, d in edge_list)
    a, b = tg.find_communities(g), tg.find_communities(shuffled)
    assert a.communities == b.communities and a.modularity == b.modularity and a.stability == b.stability
