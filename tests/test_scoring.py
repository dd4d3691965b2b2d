import numpy as np
import pandas as pd
import pytest

import teamgraph as tg
from teamgraph.embedding import Embedder
from teamgraph.errors import InputError
from teamgraph.scoring import VALUE_COLUMNS, aggregate_topics, check_values, topic_values
from teamgraph.validation import label_gap


def conv(a, b, topic, texts, conv_id=None):
    return tg.Conversation(a, b, topic, [tg.Utterance((a, b)[i % 2], t) for i, t in enumerate(texts)], conv_id)


CONVS = [
    conv("hippo", "ada", "mathematics", ["primes are infinite", "primes are infinite", "primes are infinite"], "c1"),
    conv("ada", "hippo", "mathematics", ["sum of angles", "angles of a triangle", "triangle sums"], "c2"),
    conv("ada", "cleo", "mathematics", ["the heart pumps", "blood flows", "the liver filters"], "c3"),
]


def test_values_average_pairs_sort_names_and_keep_provenance(counting_encoder):
    emb = Embedder(counting_encoder)
    values = tg.relationship_values(CONVS, metric="mean_cosine", embedder=emb)
    assert list(values.columns) == ["agent_a", "agent_b", "topic", "weight", "n_conversations", "conversation_ids"]
    assert (values["agent_a"] < values["agent_b"]).all()
    per = tg.score_conversations(CONVS, metric="mean_cosine", embedder=emb).set_index("conversation_id")["value"]
    row = values.set_index(["agent_a", "agent_b"]).loc[("ada", "hippo")]
    assert row["weight"] == pytest.approx((per["c1"] + per["c2"]) / 2)
    assert row["n_conversations"] == 2 and row["conversation_ids"] == ["c1", "c2"]
    assert values.attrs["metric"] == "mean_cosine"


def test_one_batched_deduplicated_call_and_cache(counting_encoder, tmp_path):
    store = tg.Store(tmp_path / "s.sqlite")
    emb = Embedder(counting_encoder, store=store)
    tg.relationship_values(CONVS, embedder=emb)
    assert counting_encoder.calls == 1
    assert counting_encoder.texts_seen == 7  # 9 utterances, 7 distinct texts
    tg.relationship_values(CONVS, embedder=emb)
    assert counting_encoder.calls == 1  # in-memory cache
    fresh = Embedder(counting_encoder, store=tg.Store(tmp_path / "s.sqlite"))
    tg.relationship_values(CONVS, embedder=fresh)
    assert counting_encoder.calls == 1  # persistent cache in the store
    assert store.counts()["embeddings"] == 7


def test_failed_utterances_embed_as_zero(counting_encoder):
    c = tg.Conversation("a", "b", "t", [tg.Utterance("a", "hello there"), tg.Utterance("b", "boom", "error"),
                                        tg.Utterance("a", "hello there")])
    value = tg.score_conversations([c], metric="cumulative_cosine", embedder=Embedder(counting_encoder))["value"][0]
    assert value == 0.0


def test_real_embedder_loop_gets_top_cumulative_weight_but_not_echo_discounted(real_embedder):
    loop = conv("a", "b", "t", ["I like it."] * 6, "loop")
    talk = conv("a", "c", "t", ["Is every even number above two a sum of two primes?",
                                "That is Goldbach's conjecture; it is verified up to very large numbers.",
                                "Verification is not proof, though.",
                                "Right, a proof must cover all even numbers.",
                                "Some think it may be undecidable.",
                                "Unlikely, but we cannot rule it out."], "talk")
    cum = tg.relationship_values([loop, talk], metric="cumulative_cosine", embedder=real_embedder)
    echo = tg.relationship_values([loop, talk], metric="echo_discounted_cosine", embedder=real_embedder)
    w = lambda v, b: v.set_index("agent_b").loc[b, "weight"]  # noqa: E731
    assert w(cum, "b") == pytest.approx(5.0, abs=1e-4) and w(cum, "b") > w(cum, "c")
    assert w(echo, "b") == 0.0 and w(echo, "c") > 0.0


def test_real_embedder_vectors_are_normalised_and_empty_is_zero(real_embedder):
    v = real_embedder.encode(["a sentence", "", "a sentence"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not v[1].any()
    assert real_embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"


def test_bad_embedder_and_empty_input(counting_encoder):
    with pytest.raises(InputError, match="no conversations"):
        tg.relationship_values([], embedder=Embedder(counting_encoder))
    with pytest.raises(InputError, match="cannot load embedder"):
        Embedder("no-such-model-anywhere", device="cpu").encode(["x"])
    with pytest.raises(InputError, match="encode"):
        Embedder(42)


# -- the relationship-values contract (scoring.check_values) -------------------------------------

def contract_frame(rows, **extra):
    frame = pd.DataFrame(rows, columns=["agent_a", "agent_b", "topic", "weight"])
    return frame.assign(**extra)


def test_check_values_fills_defaults_orders_pairs_and_keeps_attrs():
    frame = contract_frame([("b", "a", "t", 0.5), (2, 1, "t", "0.25")])
    frame.attrs["metric"] = "m"
    out = check_values(frame)
    assert list(out.columns) == VALUE_COLUMNS
    assert out[["agent_a", "agent_b"]].values.tolist() == [["1", "2"], ["a", "b"]]  # text names, ordered, sorted
    assert out["weight"].tolist() == [0.25, 0.5] and out["n_conversations"].tolist() == [1, 1]
    assert out["conversation_ids"].tolist() == [[], []] and out.attrs["metric"] == "m"
    assert frame.loc[0, "agent_a"] == "b"  # the input is left alone
    csv = contract_frame([("a", "b", "t", 0.5), ("a", "c", "t", 0.1)], conversation_ids=["c1 c2", np.nan],
                         n_conversations=[2, 1])
    assert check_values(csv)["conversation_ids"].tolist() == [["c1", "c2"], []]  # as the CSV export writes them


def test_a_pair_given_in_both_orders_is_merged_everywhere():
    both = contract_frame([("a", "b", "t", 0.2), ("b", "a", "t", 0.6), ("a", "c", "t", 0.1), ("c", "b", "u", 0.3)],
                          n_conversations=[1, 3, 1, 1], conversation_ids=[["x1"], ["x3", "x2"], ["y"], ["z"]])
    merged = check_values(both)
    assert merged[["agent_a", "agent_b", "topic"]].values.tolist() == [["a", "b", "t"], ["a", "c", "t"], ["b", "c", "u"]]
    ab = merged.iloc[0]
    assert ab["weight"] == pytest.approx((0.2 + 3 * 0.6) / 4) and ab["n_conversations"] == 4
    assert ab["conversation_ids"] == ["x1", "x2", "x3"]
    one_order = contract_frame([("a", "b", "t", 0.5), ("a", "c", "t", 0.1), ("b", "c", "u", 0.3)],
                               n_conversations=[4, 1, 1])
    g = tg.build_graph(both, "none", "t")
    assert g.edges["a", "b"]["weight"] == pytest.approx(0.5) and g.edges["a", "b"]["n_conversations"] == 4
    assert g.edges["a", "b"]["conversations"] == ["x1", "x2", "x3"]
    for topic in ("t", "u", "all"):
        mine, ref = tg.build_graphs(both, "none")[topic], tg.build_graphs(one_order, "none")[topic]
        assert {(u, v): w for u, v, w in mine.edges(data="weight")} == pytest.approx(
            {(u, v): w for u, v, w in ref.edges(data="weight")})
    assert aggregate_topics(both)["weight"].tolist() == pytest.approx(aggregate_topics(one_order)["weight"].tolist())
    assert topic_values(both, "t")["weight"].tolist() == pytest.approx([0.5, 0.1])
    labels = {"a": "x", "b": "x", "c": "y"}
    assert label_gap(both, labels, "t").gap == pytest.approx(label_gap(one_order, labels, "t").gap)
    part = tg.find_communities(tg.build_graph(both, "none", "t"), n_seeds=2)
    assert tg.permutation_test(part, n_permutations=5, values=both).p_value == pytest.approx(
        tg.permutation_test(part, n_permutations=5, values=one_order).p_value)
    table = tg.sweep(both, resolutions=[1.0], thresholds=["none"], topics=["t", "all"], n_seeds=2, n_permutations=0)
    ref = tg.sweep(one_order, resolutions=[1.0], thresholds=["none"], topics=["t", "all"], n_seeds=2, n_permutations=0)
    pd.testing.assert_frame_equal(table, ref)


def _plot_heatmap(values):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from teamgraph import viz

    try:
        viz.plot_value_heatmap(values)
    finally:
        plt.close("all")


def _sweep(values):
    tg.sweep(values, resolutions=[1.0], thresholds=["none"], topics=["t"], n_seeds=1, n_permutations=0)


def _significance(values):
    good = contract_frame([("a", "b", "t", 0.5), ("a", "c", "t", 0.1), ("b", "c", "t", 0.3)])
    part = tg.find_communities(tg.build_graph(good, "none", "t"), n_seeds=1)
    tg.permutation_test(part, n_permutations=2, values=values)


ENTRIES = {
    "check_values": check_values,
    "build_graph": lambda v: tg.build_graph(v, "none", "t"),
    "build_graphs": tg.build_graphs,
    "sweep": _sweep,
    "plot_value_heatmap": _plot_heatmap,
    "permutation_test": _significance,
    "label_gap": lambda v: label_gap(v, {"a": "x", "b": "x", "c": "y"}, "t"),
}

BAD_VALUES = [
    ({"agent_a": ["a"], "agent_b": ["b"], "topic": ["t"]}, r"lack column\(s\): weight"),
    ({"agent_a": ["a"], "agent_b": ["b"], "weight": [0.5]}, r"lack column\(s\): topic"),
    ({"agent_a": ["a", "b"], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, np.nan]},
     r"pair \('b', 'c'\) in topic 't' has weight nan; weights must be finite"),
    ({"agent_a": ["a", "c"], "agent_b": ["b", "b"], "topic": "t", "weight": [0.5, "heavy"]},
     r"pair \('c', 'b'\) in topic 't' has weight 'heavy'"),
    ({"agent_a": ["a", "a"], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, 0.2], "n_conversations": [1, 0]},
     r"pair \('a', 'c'\) in topic 't' has n_conversations 0"),
    ({"agent_a": ["a", "a"], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, 0.2], "conversation_ids": [[], 7]},
     r"pair \('a', 'c'\) in topic 't' has conversation_ids 7"),
    ({"agent_a": ["a", "c"], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, 0.2]}, r"pair \('c', 'c'\).*self-pair"),
    ({"agent_a": ["a", None], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, 0.2]}, "row 1 has no agent_a"),
    ({"agent_a": ["a", "a"], "agent_b": ["b", "c"], "topic": ["t", None], "weight": [0.5, 0.2]}, "row 1 has no topic"),
    ({"agent_a": [1, "1"], "agent_b": ["b", "c"], "topic": "t", "weight": [0.5, 0.2]}, "same as text"),
]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("bad, message", BAD_VALUES, ids=[m.split(" ")[0] for _, m in BAD_VALUES])
def test_every_entry_point_rejects_bad_values_naming_the_column_or_pair(entry, bad, message):
    with pytest.raises(InputError, match=message):
        ENTRIES[entry](pd.DataFrame(bad))


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_point_rejects_what_is_not_a_table(entry):
    with pytest.raises(InputError, match="DataFrame.* got list"):
        ENTRIES[entry]([("a", "b", 0.5)])
