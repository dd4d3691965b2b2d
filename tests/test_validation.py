import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import teamgraph as tg
from teamgraph.errors import InputError
from teamgraph.validation import ari_nmi, label_agreement, label_gap

TWELVE = [["m1", "m2", "m3", "m4"], ["d1", "d2", "d3", "d4"], ["c1", "c2", "c3", "c4"]]
LABELS = {n: [g[0][0] + "-label"] for g in TWELVE for n in g}


def test_communities_equal_to_labels_agree_perfectly_and_significantly():
    result = label_agreement(TWELVE, LABELS, n_permutations=999, seed=0)
    assert result.ari == 1.0 and result.nmi == pytest.approx(1.0)
    # a random relabelling of 12 agents into 4/4/4 is this good with probability 6 / 34650
    assert result.p_value == pytest.approx(1 / 1000) and result.nmi_p_value == pytest.approx(1 / 1000)
    assert (result.n_agents, result.n_labels, result.n_communities) == (12, 3, 3)
    assert "ARI 1.00 (p=0.001)" in result.summary()


def test_hand_computed_disagreement():
    # communities {a,b},{c,d} against labels a,c = x and b,d = y: every pair split differently.
    # Pair counts: 0 pairs together in both, 2 together in communities only, 2 in labels only, 2 in
    # neither -> ARI = (0 - 2*2/6) / ((2+2)/2 - 2*2/6) = -0.5; contingency all ones -> MI = 0 -> NMI 0.
    result = label_agreement([["a", "b"], ["c", "d"]], {"a": "x", "b": "y", "c": "x", "d": "y"}, n_permutations=200)
    assert result.ari == pytest.approx(-0.5) and result.nmi == pytest.approx(0.0)
    assert result.p_value == 1.0  # every relabelling agrees at least as well


def test_first_label_counts_and_unlabelled_agents_are_left_out():
    labels = {"a": ["math", "medical"], "b": ("math",), "c": "medical", "d": ["medical"], "e": [], "f": None}
    communities = [["a", "b", "e"], ["c", "d", "f"]]
    result = label_agreement(communities, labels, n_permutations=50)
    assert result.unlabelled == ["e", "f"] and result.n_agents == 4
    assert result.ari == 1.0
    # with a's second label counted instead, agreement would drop: the first one is used
    swapped = dict(labels, a=["medical", "math"])
    assert label_agreement(communities, swapped, n_permutations=50).ari < 1.0


def test_undefined_agreement_returns_none():
    assert label_agreement([["a", "b"], ["c"]], {"a": "x", "b": "x", "c": "x"}) is None  # one label only
    assert label_agreement([["a", "b"]], {"a": "x"}) is None  # one labelled agent
    with pytest.raises(InputError, match="needs labels"):
        label_agreement([["a", "b"]])
    with pytest.raises(InputError, match="n_permutations"):
        label_agreement([["a", "b"]], {"a": "x", "b": "y"}, n_permutations=0)


def test_partition_uses_graph_labels_and_returns_a_value():
    rows = [(u, v, "t", 1.0 if u[0] == v[0] else 0.1) for i, u in enumerate(sorted(LABELS))
            for v in sorted(LABELS)[i + 1:]]
    values = pd.DataFrame(rows, columns=["agent_a", "agent_b", "topic", "weight"])
    graph = tg.build_graph(values, threshold="mean", topic="t", agents={n: {"labels": l} for n, l in LABELS.items()})
    partition = tg.find_communities(graph, n_seeds=3)
    result = label_agreement(partition, n_permutations=100)
    assert partition.validation is None and result.ari == 1.0  # nothing attached behind the caller's back
    assert partition.with_validation(result).validation is result
    wrong = {n: ["x" if n in ("m1", "d1", "c1", "m2") else "y"] for n in LABELS}
    assert label_agreement(partition, wrong, n_permutations=100).ari < 0.2


def test_vectorised_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 15))
        comm = np.unique(rng.integers(0, rng.integers(1, 5), n), return_inverse=True)[1]
        lab = np.unique(rng.integers(0, rng.integers(1, 5), n), return_inverse=True)[1]
        ari, nmi = ari_nmi(comm, lab)
        assert ari[0] == pytest.approx(adjusted_rand_score(lab, comm), abs=1e-12)
        assert nmi[0] == pytest.approx(normalized_mutual_info_score(lab, comm), abs=1e-12)
    many = np.stack([rng.permutation(lab) for _ in range(5)])
    ari, nmi = ari_nmi(comm, many)
    assert ari.shape == (5,) and ari[3] == pytest.approx(adjusted_rand_score(many[3], comm))


def test_label_p_value_is_uniform_ish_for_unrelated_labels():
    rng = np.random.default_rng(1)
    names = [f"a{i:02d}" for i in range(12)]
    p = [label_agreement([names[:6], names[6:]], {n: str(rng.integers(0, 2)) for n in names},
                         n_permutations=199, seed=s).p_value for s in range(40)]
    assert 0.3 < float(np.mean(p)) < 0.8 and sum(x < 0.05 for x in p) <= 6


def test_label_gap_on_hand_made_values():
    names = ["a", "b", "c", "d"]
    labels = {"a": ["x"], "b": ["x"], "c": "y", "d": "y", "e": []}
    w = {("a", "b"): 1.0, ("c", "d"): 0.8, ("a", "c"): 0.1, ("a", "d"): 0.2, ("b", "c"): 0.3, ("b", "d"): 0.0,
         ("a", "e"): 5.0}  # e is unlabelled: its pair does not count
    values = pd.DataFrame([(u, v, "t", x) for (u, v), x in w.items()], columns=["agent_a", "agent_b", "topic", "weight"])
    gap = label_gap(values, labels, topic="t", n_permutations=500)
    assert gap.gap == pytest.approx((1.0 + 0.8) / 2 - (0.1 + 0.2 + 0.3 + 0.0) / 4)
    assert (gap.n_agents, gap.n_pairs) == (4, 6)
    # 3 distinct splits of 4 agents into 2+2; the true one is the largest: p about 1/3
    assert 0.25 < gap.p_value < 0.42
    flipped = label_gap(values.assign(weight=-values["weight"]), labels, topic="t", n_permutations=500)
    assert flipped.gap == pytest.approx(-gap.gap) and flipped.p_value == 1.0
    assert label_gap(values, {n: "x" for n in names}, topic="t") is None  # no mixed pairs
    two = pd.concat([values, values.assign(topic="u", weight=values["weight"] * 3)])
    assert label_gap(two, labels).gap == pytest.approx(2 * gap.gap)  # all topics: the mean of 1x and 3x
    with pytest.raises(InputError, match="topic 'v'"):
        label_gap(values, labels, topic="v")


def test_label_kinds_measure_family_and_role_separately_against_sklearn():
    # Two families x two roles; communities follow the family exactly and split every role.
    communities = [["a", "b"], ["c", "d"]]
    labels = {"a": ["family:qwen", "role:math"], "b": ["family:qwen", "role:medical"],
              "c": ["family:smol", "role:math"], "d": ["family:smol", "role:medical"]}
    assert tg.validation.label_kinds(labels) == ["family", "role"]
    family = label_agreement(communities, labels, kind="family", n_permutations=50)
    role = label_agreement(communities, labels, kind="role", n_permutations=50)
    comm = [0, 0, 1, 1]
    assert family.ari == pytest.approx(adjusted_rand_score(comm, ["qwen", "qwen", "smol", "smol"])) == pytest.approx(1.0)
    assert role.ari == pytest.approx(adjusted_rand_score(comm, ["math", "medical", "math", "medical"])) == pytest.approx(-0.5)
    assert (family.kind, role.kind) == ("family", "role")
    assert role.summary().startswith("labels[role]: ARI -0.50")
    # Without a kind the first label counts, whole: the family here.
    assert label_agreement(communities, labels, n_permutations=50).ari == pytest.approx(1.0)


def test_label_agreement_by_kind_goes_beside_the_first_label_result():
    g = tg.build_graph(pd.DataFrame({"agent_a": ["a", "c", "a"], "agent_b": ["b", "d", "c"], "topic": "t",
                                     "weight": [0.9, 0.9, 0.1]}), topic="t", threshold="none")
    for n, labs in {"a": ["family:x", "role:m"], "b": ["family:x", "role:d"],
                    "c": ["family:y", "role:m"], "d": ["family:y", "role:d"]}.items():
        g.nodes[n]["labels"] = labs
    partition = tg.find_communities(g, n_seeds=2)
    partition = partition.with_validation(label_agreement(partition, kind="family", n_permutations=20), "family")
    assert partition.validation is None and set(partition.validation_by_kind) == {"family"}
    doc = tg.teams_document(partition)
    assert doc["validation_by_kind"]["family"]["kind"] == "family"
    assert doc["validation_by_kind"]["family"]["ari"] == pytest.approx(1.0)
