import networkx as nx
import pandas as pd
import pytest

import teamgraph as tg
from teamgraph.errors import InputError


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
