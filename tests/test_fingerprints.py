"""Probe fingerprints, the pairs filter of the plan and ``conversation.pairs`` (issue 13), with a fake backend.

The pipeline with real components (the corpus backend and MiniLM) is in tests/test_knn_run.py.
"""
import logging

import numpy as np
import pytest

from teamgraph.backends.base import GenerationResult
from teamgraph.config import ConversationConfig, PairsConfig, config_from_dict
from teamgraph.dialogue import plan_conversations
from teamgraph.embedding import Embedder
from teamgraph.errors import ConfigError, InputError
from teamgraph.fingerprints import PROBE_LINES, fingerprints, plan_probes, run_probes
from teamgraph.roster import Agent, Roster
from teamgraph.store import Store

from .conftest import CountingEncoder


class TopicBackend:
    """Replies with the agent's fixed word and the probe's line; records every batch it was given."""

    def __init__(self, words, max_batch=None, silent=()):
        self.words, self.max_batch, self.silent = words, max_batch, set(silent)
        self.batches = []

    def generate(self, requests):
        self.batches.append(requests)
        out = []
        for r in requests:
            if r.agent in self.silent:
                out.append(GenerationResult.from_text(""))
            else:
                last = r.prompt.splitlines()[-2] if r.prompt is not None else r.messages[-1]["content"]
                out.append(GenerationResult.from_text(f"{self.words[r.agent]} {last}"))
        return out

    def describe(self):
        return {"type": "topic-fake"}

    def close(self):
        pass


def roster(n=4):
    return Roster([Agent(f"a{i}", backend="x", persona=f"persona {i}") for i in range(n)])


def test_plan_probes_counts_lines_and_ids():
    settings = ConversationConfig(topic_line="Let's discuss {topic}.")
    specs = plan_probes(roster(3), ["maths", "law"], 3, settings)
    assert len(specs) == 3 * 2 * 3
    assert [s.line for s in specs[:3]] == ["Let's discuss {topic}.", PROBE_LINES[0], PROBE_LINES[1]]
    assert len({s.id for s in specs}) == len(specs) and len({s.seed for s in specs}) == len(specs)
    again = plan_probes(roster(3), ["maths", "law"], 3, settings)
    assert [s.id for s in again] == [s.id for s in specs]
    reseeded = plan_probes(roster(3), ["maths", "law"], 3, ConversationConfig(seed=1))
    assert not {s.id for s in reseeded} & {s.id for s in specs}
    # more probes than lines: the lines cycle
    many = plan_probes(roster(2), ["t"], len(PROBE_LINES) + 2, settings)
    assert many[len(PROBE_LINES) + 1].line == PROBE_LINES[0]


def test_run_probes_prompts_batches_and_resumes():
    agents = roster(4)
    backend = TopicBackend({a.name: f"w{a.name}" for a in agents}, max_batch=5)
    settings = ConversationConfig()
    specs = plan_probes(agents, ["maths"], 2, settings)
    store = Store()
    replies = run_probes(specs, {"x": backend}, store, settings, progress=False)
    assert [len(b) for b in backend.batches] == [5, 3]
    assert set(replies) == {s.id for s in specs}
    first = next(s for s in specs if s.agent.name == "a1" and s.probe == 1)
    request = backend.batches[0][0]
    assert request.prompt.splitlines()[0].startswith(settings.instruction)  # the run's instruction comes first
    assert replies[first.id]["text"] == "wa1 " + PROBE_LINES[0].format(topic="maths")
    assert store.counts()["probes"] == 8
    # a second call asks nothing: every probe is stored
    backend.batches.clear()
    assert run_probes(specs, {"x": backend}, store, settings, progress=False) == replies
    assert backend.batches == []


def test_probe_zero_is_the_conversations_opening_turn():
    from teamgraph.dialogue import build_request

    agents = roster(2)
    settings = ConversationConfig()
    backend = TopicBackend({a.name: "w" for a in agents})
    run_probes(plan_probes(agents, ["maths"], 1, settings), {"x": backend}, Store(), settings, progress=False)
    conv = plan_conversations(agents, ["maths"], settings)[0]
    opening = build_request(conv, [], settings)
    probe = next(r for r in backend.batches[0] if r.agent == conv.opener.name)
    assert probe.prompt == opening.prompt and probe.seed != opening.seed


def test_fingerprints_are_mean_embeddings_and_silent_agents_get_the_centre(caplog):
    agents = roster(3)
    settings = ConversationConfig()
    backend = TopicBackend({"a0": "alpha", "a1": "beta", "a2": "gamma"}, silent={"a2"})
    specs = plan_probes(agents, ["maths"], 2, settings)
    replies = run_probes(specs, {"x": backend}, Store(), settings, progress=False)
    embedder = Embedder(CountingEncoder(dim=32))
    with caplog.at_level(logging.WARNING, logger="teamgraph.fingerprints"):
        prints = fingerprints(specs, replies, embedder)["maths"]
    assert list(prints.index) == ["a0", "a1", "a2"]
    texts = [replies[s.id]["text"] for s in specs if s.agent.name == "a0"]
    expected = embedder.encode(texts).mean(axis=0)
    np.testing.assert_allclose(prints.loc["a0"].to_numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(prints.loc["a2"].to_numpy(), prints.loc[["a0", "a1"]].mean().to_numpy(), rtol=1e-6)
    assert "a2" in caplog.text and "no usable probe reply" in caplog.text
    everyone_silent = TopicBackend({}, silent={"a0", "a1", "a2"})
    replies = run_probes(specs, {"x": everyone_silent}, Store(), settings, progress=False)
    with pytest.raises(InputError, match="no agent gave a usable probe reply"):
        fingerprints(specs, replies, embedder)


def test_plan_with_pairs_keeps_those_pairs_with_the_same_ids():
    agents = roster(5)
    settings = ConversationConfig(both_orders=True)
    every = plan_conversations(agents, ["maths", "law"], settings)
    chosen = {"maths": [("a3", "a1"), ("a0", "a4")], "law": [("a0", "a1")]}
    kept = plan_conversations(agents, ["maths", "law"], settings, pairs=chosen)
    assert {(s.topic, tuple(sorted((s.opener.name, s.partner.name)))) for s in kept} == {
        ("maths", ("a1", "a3")), ("maths", ("a0", "a4")), ("law", ("a0", "a1"))}
    assert len(kept) == 6  # both orders
    assert {s.id for s in kept} <= {s.id for s in every}
    assert plan_conversations(agents, ["maths"], settings, pairs={}) == []


BASE = {"backends": {"x": {"type": "llamacpp"}}, "agents": [{"name": "a", "backend": "x"}, {"name": "b", "backend": "x"}]}


def test_config_pairs_default_shorthand_and_mapping():
    assert config_from_dict(BASE).conversation.pairs == PairsConfig()
    assert config_from_dict({**BASE, "conversation": {"pairs": "all"}}).conversation.pairs.strategy == "all"
    knn = config_from_dict({**BASE, "conversation": {"pairs": "knn"}}).conversation.pairs
    assert (knn.strategy, knn.k, knn.explore, knn.budget, knn.probes) == ("knn", 10, 2, 1.0, 4)
    knn = config_from_dict({**BASE, "conversation": {"pairs": {"strategy": "knn", "k": 3, "budget": 0.1,
                                                               "probes": 2}}}).conversation.pairs
    assert (knn.k, knn.explore, knn.budget, knn.probes) == (3, 2, 0.1, 2)


@pytest.mark.parametrize("pairs, field, words", [
    ("nearest", "conversation.pairs.strategy", "must be one of all, knn"),
    ({"strategy": "all", "k": 3}, "conversation.pairs.k", "applies to strategy knn only"),
    ({"strategy": "knn", "k": 0}, "conversation.pairs.k", "must be >= 1"),
    ({"strategy": "knn", "budget": 1.5}, "conversation.pairs.budget", "must be in (0, 1] (got 1.5)"),
    ({"strategy": "knn", "probes": 0}, "conversation.pairs.probes", "must be in 1 .. 1000 (got 0)"),
    ({"strategy": "knn", "neighbours": 5}, "conversation.pairs.neighbours", "unknown field"),
    ({"strategy": "knn", "k": "ten"}, "conversation.pairs.k", "expected an integer"),
])
def test_config_pairs_errors_name_the_field(pairs, field, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**BASE, "conversation": {"pairs": pairs}})
    assert info.value.field == field and words in str(info.value)
