import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import teamgraph as tg
from teamgraph.errors import InputError
from teamgraph.graph import Threshold
from teamgraph.significance import Significance, _thresholded, _topic_pairs, permutation_test, verdict, weight_gap

GROUPS = [["m1", "m2", "m3", "m4"], ["d1", "d2", "d3", "d4"], ["c1", "c2", "c3", "c4"]]


def planted_values(groups=GROUPS, p_in=0.8, p_out=0.3, noise=0.2, seed=0, topic="t"):
    """Relationship values of every pair: higher inside the planted groups, uniform noise on top."""
    rng = np.random.default_rng(seed)
    label = {n: i for i, g in enumerate(groups) for n in g}
    nodes = sorted(label)
    rows = [(u, v, topic, (p_in if label[u] == label[v] else p_out) + rng.uniform(0, noise))
            for i, u in enumerate(nodes) for v in nodes[i + 1:]]
    return pd.DataFrame(rows, columns=["agent_a", "agent_b", "topic", "weight"])


def shuffled(values, seed):
    """The same values with the weights permuted over the pairs: no structure left, same distribution."""
    return values.assign(weight=np.random.default_rng(seed).permutation(values["weight"].to_numpy()))


def analysed(values, threshold="mean", n_permutations=200, seed=0, **kw):
    """A 5-seed partition and its test; the null runs one seed per graph unless told (5x cheaper: these
    tests check the null's calibration; the default, the partition's own seeds, is tested below)."""
    partition = tg.find_communities(tg.build_graph(values, threshold=threshold, topic="t"), n_seeds=5, seed=0)
    kw.setdefault("n_seeds", 1)
    return partition, permutation_test(partition, n_permutations=n_permutations, seed=seed, values=values, **kw)


@pytest.mark.parametrize("threshold", ["mean", "none", "top_k:3", "quantile:0.6"])
def test_planted_partition_is_significant(threshold):
    partition, sig = analysed(planted_values(), threshold)
    assert partition.significance is None  # the test returns a value and leaves the partition as it was
    assert partition.with_significance(sig).significance is sig
    assert sig.p_value == pytest.approx(1 / 201)  # no shuffled graph came close
    assert sig.gap_p_value < 0.01
    assert sig.modularity > sig.null_modularity_mean + 3 * sig.null_modularity_std
    assert sig.null_modularity_mean > 0.02  # Louvain finds "communities" in noise too: why nulls are re-clustered
    assert sig.significant and verdict(sig).startswith("evidence of team structure (p=0.00498")


@pytest.mark.parametrize("threshold", ["mean", "top_k:3"])
def test_shuffled_planted_graph_is_not_significant(threshold):
    values = shuffled(planted_values(), seed=1)
    _, sig = analysed(values, threshold)
    assert sig.p_value > 0.05 and sig.gap_p_value > 0.05, sig
    assert not sig.significant
    assert verdict(sig) == f"no evidence of team structure (p={sig.p_value:.3g})"


def test_shuffled_graphs_reject_at_about_the_nominal_rate():
    # 20 structure-free data sets: a valid test rejects about 5% of them (binomial: <= 3 of 20 is 98%).
    # A test against a null that skipped re-clustering (null Q = 0) would reject every one.
    small = [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    rejected = [analysed(shuffled(planted_values(small, seed=s), seed=s), n_permutations=99, seed=s)[1].significant
                for s in range(20)]
    assert sum(rejected) <= 3, rejected
    planted = [analysed(planted_values(small, seed=s), n_permutations=99, seed=s)[1].significant for s in range(5)]
    assert all(planted)


def test_same_seed_same_result_other_seed_other_null():
    values = shuffled(planted_values(), seed=2)
    a, b = analysed(values, seed=7)[1], analysed(values, seed=7)[1]
    c = analysed(values, seed=8)[1]
    assert a == b
    assert (a.null_modularity_mean, a.p_value) != (c.null_modularity_mean, c.p_value)
    assert a.n_permutations == 200 and a.seed == 7 and a.null == "pairs" and a.n_seeds == 1


def test_edges_null_keeps_topology_and_is_conservative_after_thresholding():
    values = planted_values()
    # Unthresholded, both nulls shuffle the same weights over the same pairs: identical results.
    _, pairs = analysed(values, "none", null="pairs")
    _, edges = analysed(values, "none", null="edges")
    assert (pairs.p_value, pairs.null_modularity_mean) == (edges.p_value, edges.null_modularity_mean)
    # Mean-thresholded, only within-group edges survive; shuffling them among themselves keeps the
    # planted topology, so the edges null cannot see the structure the threshold already encoded.
    _, kept = analysed(values, "mean", null="edges")
    assert kept.null == "edges" and kept.p_value > 0.5
    assert kept.null_modularity_mean == pytest.approx(kept.modularity, abs=0.02)
    partition = tg.find_communities(tg.build_graph(values, threshold="mean", topic="t"))
    assert permutation_test(partition, 20).null == "edges"  # no values given: the only null available


def test_n_seeds_none_tests_the_partitions_own_modularity():
    partition, sig = analysed(planted_values(p_in=0.6, p_out=0.4, noise=0.4), n_permutations=30, n_seeds=None)
    assert sig.n_seeds == 5
    assert sig.modularity == partition.modularity


def test_every_graph_goes_through_find_communities_with_the_partitions_settings(monkeypatch):
    import teamgraph.significance as significance

    values = planted_values(p_in=0.6, p_out=0.4, noise=0.4)
    partition = tg.find_communities(tg.build_graph(values, threshold="mean", topic="t"), resolution=0.9, n_seeds=4, seed=3)
    calls = []
    real = significance.find_communities

    def spy(graph, **kw):
        calls.append(kw)
        return real(graph, **kw)

    monkeypatch.setattr(significance, "find_communities", spy)
    sig = permutation_test(partition, 7, values=values)  # default: the partition's own seeds
    # the observed graph is the partition's own graph and settings: the exported partition itself
    assert sig.modularity == partition.modularity and len(calls) == 7
    assert all(kw == {"resolution": 0.9, "n_seeds": 4, "seed": 3, "backend": partition.settings.backend} for kw in calls)
    calls.clear()
    sig = permutation_test(partition, 7, values=values, n_seeds=1)  # one seed: the observed graph is detected again
    assert len(calls) == 8 and all(kw["n_seeds"] == 1 and kw["seed"] == 3 for kw in calls)
    one = real(partition.graph, resolution=0.9, n_seeds=1, seed=3)
    assert sig.modularity == one.modularity


def test_weight_gap_by_hand():
    adj = np.array([[0, 4, 1], [4, 0, 0], [1, 0, 0]], dtype=float)
    assert weight_gap(adj, np.array([0, 0, 1])) == pytest.approx(4 - 0.5)  # within 4; between (1 + 0) / 2
    assert weight_gap(adj, np.array([0, 0, 0])) == 0.0


@pytest.mark.parametrize("rule", ["none", "mean", "quantile:0.3", "quantile:0.9", "top_k:1", "top_k:2", "top_k:4"])
def test_null_thresholding_matches_build_graph(rule):
    rng = np.random.default_rng(3)
    for trial in range(5):
        values = planted_values(seed=trial)
        values["weight"] = np.round(rng.normal(0.2, 0.5, len(values)), 1)  # ties and negatives on purpose
        graph = tg.build_graph(values, threshold=rule, topic="t")
        nodes = sorted(graph.nodes)
        pairs = _topic_pairs(values, graph, nodes)
        adj = _thresholded(pairs, pairs["weight"].to_numpy(), Threshold.parse(rule), len(nodes))
        assert np.array_equal(adj, nx.to_numpy_array(graph, nodelist=nodes, weight="weight"))
        # and on shuffled weights, as the null applies it, against build_graph on the shuffled values
        perm = np.random.default_rng(trial).permutation(len(pairs))
        shuffled_values = pairs[["agent_a", "agent_b"]].assign(topic="t", weight=pairs["weight"].to_numpy()[perm])
        null_graph = tg.build_graph(shuffled_values, threshold=rule, topic="t")
        null_adj = _thresholded(pairs, pairs["weight"].to_numpy()[perm], Threshold.parse(rule), len(nodes))
        assert np.array_equal(null_adj, nx.to_numpy_array(null_graph, nodelist=nodes, weight="weight"))


def test_all_topics_graph_uses_the_all_topics_mean():
    values = pd.concat([planted_values(topic="a", seed=0), planted_values(topic="b", seed=1)])
    partition = tg.find_communities(tg.build_graph(values, threshold="mean"))
    sig = permutation_test(partition, 50, values=values)
    assert partition.graph.graph["topic"] == "all" and sig.p_value == pytest.approx(1 / 51)


def test_bad_arguments_raise_input_error():
    values = planted_values()
    partition = tg.find_communities(tg.build_graph(values, topic="t"), n_seeds=2)
    with pytest.raises(InputError, match="n_permutations"):
        permutation_test(partition, 0)
    with pytest.raises(InputError, match="unknown null"):
        permutation_test(partition, 10, null="nodes")
    with pytest.raises(InputError, match="needs the relationship values"):
        permutation_test(partition, 10, null="pairs")
    with pytest.raises(InputError, match="topic 'u'"):
        other = tg.find_communities(tg.build_graph(planted_values(topic="u"), topic="u"), n_seeds=2)
        permutation_test(other, 10, values=values)
    with pytest.raises(InputError, match="do not give the partition's graph"):
        permutation_test(partition, 10, values=values.assign(weight=values["weight"] * 2))


def test_verdict_wording_and_too_few_permutations():
    sig = Significance(0.43, 0.2, 0.21, 0.05, 0.01, 0.5, 0.0, 200, "pairs", 1, 0)
    assert sig.verdict() == "no evidence of team structure (p=0.43)"
    few = Significance(1 / 11, 0.5, 0.1, 0.05, 0.3, 0.09, 0.0, 10, "pairs", 1, 0)
    assert "10 permutations cannot reach p<0.05" in few.verdict()
    assert verdict(None) == "significance not tested"


def test_export_carries_significance_and_validation(tmp_path):
    values = planted_values()
    agents = {n: {"labels": [n[0]]} for g in GROUPS for n in g}
    partition = tg.find_communities(tg.build_graph(values, topic="t", agents=agents), n_seeds=3)
    before = tg.teams_document(partition)
    assert "significance" not in before and "validation" not in before
    from teamgraph.validation import label_agreement

    tested = partition.with_significance(permutation_test(partition, 100, values=values))
    tested = tested.with_validation(label_agreement(partition))
    assert tg.teams_document(partition) == before  # the original is unchanged
    a = tg.export_teams(tested, tmp_path / "a.json").read_bytes()
    doc = json.loads(a)
    assert doc["significance"]["p_value"] == round(1 / 101, 6) and doc["significance"]["null"] == "pairs"
    assert doc["significance"]["verdict"].startswith("evidence of team structure")
    assert doc["validation"]["ari"] == 1.0 and doc["validation"]["n_agents"] == 12
    # identical inputs give identical bytes, significance included
    again = tg.find_communities(tg.build_graph(values, topic="t", agents=agents), n_seeds=3)
    again = again.with_significance(permutation_test(again, 100, values=values)).with_validation(label_agreement(again))
    assert tg.export_teams(again, tmp_path / "b.json").read_bytes() == a
