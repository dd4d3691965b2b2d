import numpy as np
import pytest

import teamgraph as tg
from teamgraph.embedding import Embedder
from teamgraph.errors import InputError


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
