import networkx as nx
import numpy as np
import pandas as pd
import pytest

import teamgraph as tg
from teamgraph.errors import InputError
from teamgraph.graph import Threshold, edge_mask


def values_frame(rows, topic="t"):
    return pd.DataFrame(
        [{"agent_a": a, "agent_b": b, "topic": topic, "weight": w, "n_conversations": 1, "conversation_ids": [f"{a}-{b}"]}
         for a, b, w in rows]
    )


ROWS = [("a", "b", 0.9), ("a", "c", 0.1), ("a", "d", 0.2), ("b", "c", 0.3), ("b", "d", 0.4), ("c", "d", 0.8)]


def edges(g):
    return sorted((u, v) for u, v in g.edges)


def test_mean_threshold_keeps_edges_at_or_above_mean():
    g = tg.build_graph(values_frame(ROWS), threshold="mean", topic="t")
    assert g.graph["threshold_value"] == pytest.approx(2.7 / 6)
    assert edges(g) == [("a", "b"), ("c", "d")]
    assert list(g.nodes) == ["a", "b", "c", "d"]  # sorted, none lost to the threshold


def test_none_quantile_and_top_k():
    v = values_frame(ROWS)
    assert len(tg.build_graph(v, "none", "t").edges) == 6
    assert edges(tg.build_graph(v, "quantile:0.5", "t")) == [("a", "b"), ("b", "d"), ("c", "d")]
    # top-1 per node: a->b, b->a, c->d, d->c
    assert edges(tg.build_graph(v, "top_k:1", "t")) == [("a", "b"), ("c", "d")]
    # top-2: a: b,d ; b: a,d ; c: d,b ; d: c,b
    assert edges(tg.build_graph(v, "top_k:2", "t")) == [("a", "b"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]


@pytest.mark.parametrize("bad", ["median", "quantile:2", "top_k:0", "top_k:x", "quantile"])
def test_bad_threshold_names_the_rules(bad):
    with pytest.raises(InputError, match="threshold"):
        tg.build_graph(values_frame(ROWS), bad, "t")


def test_non_positive_weights_are_dropped_and_provenance_kept():
    v = values_frame([("a", "b", 0.5), ("a", "c", -0.2), ("b", "c", 0.0)])
    g = tg.build_graph(v, "none", "t")
    assert edges(g) == [("a", "b")]
    assert g.edges["a", "b"]["conversations"] == ["a-b"]
    assert all(d["weight"] > 0 for *_, d in g.edges(data=True))


def test_unordered_pairs_are_normalised_and_unknown_topic_rejected():
    v = values_frame([("b", "a", 0.5)])
    g = tg.build_graph(v, "none", "t")
    assert edges(g) == [("a", "b")]
    with pytest.raises(InputError, match="topic 'zzz'"):
        tg.build_graph(v, "none", "zzz")


def test_all_topics_aggregate_is_conversation_weighted_mean():
    v = pd.concat([
        values_frame([("a", "b", 1.0), ("a", "c", 0.2)], "math"),
        values_frame([("a", "b", 0.0), ("a", "c", 0.4)], "med"),
    ], ignore_index=True)
    v.loc[0, "n_conversations"] = 3  # a-b in math: three conversations at mean 1.0
    graphs = tg.build_graphs(v, threshold="none")
    assert set(graphs) == {"math", "med", "all"}
    assert graphs["all"].edges["a", "b"]["weight"] == pytest.approx(3 / 4)
    assert graphs["all"].edges["a", "c"]["weight"] == pytest.approx(0.3)
    assert graphs["all"].graph["topic"] == "all"


def test_agent_attributes_exclude_secrets():
    agents = {"a": {"model": "m", "labels": ["math"], "api_key_env": "SECRET_VAR"}, "z": {"model": "m2"}}
    g = tg.build_graph(values_frame([("a", "b", 0.5)]), "none", "t", agents=agents)
    assert g.nodes["a"] == {"model": "m", "labels": ["math"]}
    assert "z" in g.nodes  # roster agents without conversations are still nodes (isolates)


def test_missing_columns_and_nan_weights():
    with pytest.raises(InputError, match="weight"):
        tg.build_graph(pd.DataFrame({"agent_a": ["a"], "agent_b": ["b"], "topic": ["t"]}))
    with pytest.raises(InputError, match="NaN"):
        tg.build_graph(values_frame([("a", "b", float("nan"))]), "none", "t")


def top_k_reference(values, k):
    """The top_k rule spelt out: each agent's k strongest pairs (ties: partner name), kept if either end keeps it."""
    keep = set()
    for agent in set(values["agent_a"]) | set(values["agent_b"]):
        mine = [(-w, b if a == agent else a, row) for row, (a, b, w) in
                enumerate(zip(values["agent_a"], values["agent_b"], values["weight"])) if agent in (a, b)]
        keep |= {row for *_, row in sorted(mine)[:k]}
    return np.array([row in keep for row in range(len(values))])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_mask_matches_the_rule_with_ties_and_missing_pairs(k):
    rng = np.random.default_rng(k)
    for trial in range(20):
        names = [f"n{i}" for i in rng.permutation(7)]
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if rng.random() < 0.7]
        weights = np.round(rng.normal(0.2, 0.5, len(pairs)), 1)  # ties and negatives on purpose
        values = values_frame([(a, b, w) for (a, b), w in zip(pairs, weights)])
        keep, cut = edge_mask(values, Threshold.parse(f"top_k:{k}"))
        assert cut is None and np.array_equal(keep, top_k_reference(values, k))


def test_integer_agent_names_become_strings():
    g = tg.build_graph(values_frame([(1, 2, 0.9), (2, 10, 0.1), (3, 1, 0.5)]), "none", "t", agents={7: {"model": "m"}})
    assert list(g.nodes) == ["1", "10", "2", "3", "7"] and g.nodes["7"] == {"model": "m"}
    assert edges(g) == [("1", "2"), ("1", "3"), ("10", "2")]
    p = tg.find_communities(g, n_seeds=2)
    assert sorted(n for c in p.communities for n in c) == sorted(g.nodes)
    mixed = values_frame([(1, "b", 0.5), ("a", "b", 0.2)])  # mixed types used to fail on sorting
    assert list(tg.build_graph(mixed, "none", "t").nodes) == ["1", "a", "b"]
    with pytest.raises(InputError, match="same as text"):
        tg.build_graph(values_frame([(1, "1", 0.5)]), "none", "t")
    with pytest.raises(InputError, match="no agent_b"):
        tg.build_graph(values_frame([("a", None, 0.5)]), "none", "t")


@pytest.mark.parametrize("threshold", ["mean", "none", "quantile:0.5", "top_k:1"])
def test_values_that_are_all_zero_give_an_edgeless_graph_of_isolates(threshold):
    g = tg.build_graph(values_frame([("a", "b", 0.0), ("a", "c", 0.0), ("b", "c", 0.0)]), threshold, "t")
    assert list(g.nodes) == ["a", "b", "c"] and g.number_of_edges() == 0
    p = tg.find_communities(g, n_seeds=3)
    assert p.isolates == ["a", "b", "c"] and p.modularity == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "heavy", None])
def test_weights_that_are_not_finite_numbers_name_the_pair(bad):
    v = values_frame([("a", "b", 0.5), ("b", "c", bad), ("c", "a", 0.2)])
    with pytest.raises(InputError, match=r"pair \('b', 'c'\) in topic 't'.*finite"):
        tg.build_graph(v, "none", "t")
    with pytest.raises(InputError, match=r"pair \('b', 'c'\)"):
        tg.build_graphs(v)
