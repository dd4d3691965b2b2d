"""GEXF and node-link JSON exports: they round-trip, carry communities, and are byte-identical."""
import json
import random

import networkx as nx
import numpy as np
import pytest

import teamgraph as tg
from teamgraph import exports
from teamgraph.embedding import Embedder
from teamgraph.errors import InputError

from .test_export import MORE

AGENTS = {
    "ada": {"labels": ["math", "algebra"], "sampling": {"max_tokens": 16, "temperature": 0.8},
            "api_key_env": "OPENAI_API_KEY"},
    "bob": {"labels": []},
    "hippo": {"labels": ["medical"], "persona": "A physician."},
}


def partition_of(seed_order=0):
    """The same language-model graph and partition, built with nodes and edges inserted in a shuffled order."""
    from .conftest import CountingEncoder

    values = tg.relationship_values(MORE, metric="mean_cosine", embedder=Embedder(CountingEncoder()))
    graph = tg.build_graph(values, threshold="none", topic="mathematics", agents=AGENTS)
    if seed_order:
        rng = random.Random(seed_order)
        nodes, edges = list(graph.nodes(data=True)), list(graph.edges(data=True))
        rng.shuffle(nodes)
        rng.shuffle(edges)
        shuffled = nx.Graph(**graph.graph)
        shuffled.add_nodes_from(nodes)
        shuffled.add_edges_from((v, u, d) for u, v, d in edges)
        graph = shuffled
    return tg.find_communities(graph, n_seeds=3, seed=0)


@pytest.fixture(scope="module")
def partition():
    return partition_of()


def test_node_link_round_trip_with_communities(partition, tmp_path):
    path = exports.export_node_link(partition, tmp_path / "graph.json")
    doc = json.loads(path.read_text())
    assert doc["graph"]["schema"] == "teamgraph.nodelink/1" and doc["graph"]["topic"] == "mathematics"
    assert doc["graph"]["partition"]["communities"] == partition.communities
    assert [n["id"] for n in doc["nodes"]] == sorted(partition.graph.nodes)
    assert all(e["source"] < e["target"] for e in doc["edges"])
    back = nx.node_link_graph(doc, edges="edges")  # networkx's own reader (and d3's layout)
    ours = exports.read_node_link(path)
    membership = partition.membership()
    for g in (back, ours):
        assert sorted(g.nodes) == sorted(partition.graph.nodes)
        assert {n: d["community"] for n, d in g.nodes(data=True)} == membership
        assert sorted(n for n, d in g.nodes(data=True) if d["isolate"]) == partition.isolates
        assert g.number_of_edges() == partition.graph.number_of_edges()
        for u, v, d in partition.graph.edges(data=True):
            assert g[u][v]["weight"] == pytest.approx(d["weight"], abs=1e-6)
            assert g[u][v]["conversations"] == d["conversations"]
        assert g.nodes["ada"]["labels"] == ["math", "algebra"]
        assert g.nodes["ada"]["sampling"] == {"max_tokens": 16, "temperature": 0.8}
    assert "api_key_env" not in path.read_text() and "OPENAI_API_KEY" not in path.read_text()


def test_node_link_without_partition_has_no_community(partition):
    doc = exports.graph_node_link(partition.graph)
    assert "partition" not in doc["graph"]
    assert all("community" not in n for n in doc["nodes"])


def test_gexf_round_trip_with_gexf_safe_attributes(partition, tmp_path):
    path = exports.export_gexf(partition, tmp_path / "graph.gexf")
    text = path.read_text()
    assert text.startswith("<?xml") and "http://www.gexf.net/1.2draft" in text
    assert "lastmodifieddate" not in text  # no date: the bytes do not change from day to day
    assert "topic=mathematics" in text and "metric=mean_cosine" in text
    back = nx.read_gexf(path)
    assert sorted(back.nodes) == sorted(partition.graph.nodes)
    membership = partition.membership()
    assert {n: d["community"] for n, d in back.nodes(data=True)} == membership
    assert back.nodes["ada"]["labels"] == "math;algebra"  # lists become strings
    assert json.loads(back.nodes["ada"]["sampling"]) == {"max_tokens": 16, "temperature": 0.8}
    assert back.nodes["bob"]["labels"] == ""
    assert back.nodes["hippo"]["persona"] == "A physician."
    # community colours for Gephi: members of one community share a colour
    color = {n: tuple(d["viz"]["color"][c] for c in "rgb") for n, d in back.nodes(data=True)}
    for members in partition.teams:
        assert len({color[m] for m in members}) == 1
    assert back.number_of_edges() == partition.graph.number_of_edges()
    for u, v, d in partition.graph.edges(data=True):
        assert back[u][v]["weight"] == pytest.approx(d["weight"], abs=1e-6)
        assert back[u][v]["conversations"].split(";") == d["conversations"]
        assert back[u][v]["n_conversations"] == d["n_conversations"]
    assert "OPENAI_API_KEY" not in text


def test_identical_inputs_give_byte_identical_exports(partition, tmp_path):
    shuffled = partition_of(seed_order=7)
    assert list(shuffled.graph.nodes) != list(partition.graph.nodes) or list(shuffled.graph.edges) != list(partition.graph.edges)
    a = exports.export_gexf(partition, tmp_path / "a.gexf")
    b = exports.export_gexf(shuffled, tmp_path / "b" / "graph.gexf")
    assert a.read_bytes() == b.read_bytes()
    a = exports.export_node_link(partition, tmp_path / "a.json")
    b = exports.export_node_link(shuffled, tmp_path / "b" / "graph.json")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().endswith("}\n")


def test_gexf_safe_values():
    assert exports.gexf_safe(["math", "medical"]) == "math;medical"
    assert exports.gexf_safe(("a",)) == "a"
    assert exports.gexf_safe({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert exports.gexf_safe(None) is None and exports.gexf_safe(float("nan")) is None
    assert exports.gexf_safe(np.float32(0.5)) == 0.5 and isinstance(exports.gexf_safe(np.int64(3)), int)
    assert exports.gexf_safe(True) is True
    assert exports.gexf_safe(1 / 3) == round(1 / 3, 6)


def test_bad_inputs_raise_input_errors(partition, tmp_path):
    with pytest.raises(InputError, match="undirected"):
        exports.export_gexf(nx.DiGraph([("a", "b")]), tmp_path / "x.gexf")
    with pytest.raises(InputError, match="Graph or a Partition"):
        exports.graph_node_link({"nodes": []})
    other = tg.find_communities(nx.Graph([("x", "y", {"weight": 1.0})]), n_seeds=1)
    with pytest.raises(InputError, match="does not cover"):
        exports.graph_node_link(partition.graph, other)
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match="invalid JSON"):
        exports.read_node_link(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(InputError, match="not a node-link document"):
        exports.read_node_link(tmp_path / "list.json")
