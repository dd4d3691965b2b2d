"""The corpus backend: real MMLU sentences, nearest-neighbour replies, the planted testbed at scale."""
import textwrap

import numpy as np
import pytest

from teamgraph.backends import make_backend
from teamgraph.backends import corpus as corpus_module
from teamgraph.backends.base import GenerationRequest
from teamgraph.backends.corpus import CorpusBackend, own_lines, parse_corpus_model, partner_line
from teamgraph.config import ConversationConfig, load_config
from teamgraph.dialogue import plan_conversations, run_conversations
from teamgraph.errors import ConfigError
from teamgraph.pipeline import open_backends, run
from teamgraph.roster import Agent, Roster
from teamgraph.scoring import relationship_values
from teamgraph.store import Store

PHYSICS, ANATOMY = "mmlu:high_school_physics", "mmlu:anatomy"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One disk cache for the module: each subject is embedded once."""
    return str(tmp_path_factory.mktemp("corpus-cache"))


@pytest.fixture(scope="module")
def backend(real_embedder, cache):
    b = CorpusBackend(fraction=0.5, seed=0, embedder=real_embedder, cache_dir=cache)
    yield b
    b.close()


def transcript(agent, model, lines, seed=0, topic="Let's discuss science."):
    prompt = "\n".join(["Be critical.", topic, *[f"{s}: {t}" for s, t in lines], f"{agent}:"])
    return GenerationRequest(agent=agent, model=model, prompt=prompt, seed=seed, stop=("\n",))


def roster(models, fmt="transcript"):
    return Roster([Agent(name, backend="c", model=model, format=fmt) for name, model in models])


def converse(backend, agents, turns=4, fmt="transcript", store=None, seed=0):
    settings = ConversationConfig(turns=turns, seed=seed)
    specs = plan_conversations(roster(agents, fmt), ["science"], settings)
    return run_conversations(specs, {"c": backend}, store or Store(":memory:"), settings, progress=False)


def texts(conversations):
    return [[(u.speaker, u.text) for u in c.utterances] for c in conversations]


# -- parsing requests -----------------------------------------------------------------------

def test_partner_line_and_own_lines_from_both_prompt_formats():
    req = transcript("A", PHYSICS, [("A", "first"), ("B", "the answer is: 5"), ("A", "second"), ("B", "")])
    assert partner_line(req) == "" and own_lines(req) == {"first", "second"}
    req = transcript("A", PHYSICS, [("A", "first"), ("B", "the answer is: 5")])
    assert partner_line(req) == "the answer is: 5"
    assert partner_line(transcript("A", PHYSICS, [])) == "Let's discuss science."  # no partner yet: the topic line
    chat = GenerationRequest(agent="B", model=PHYSICS, messages=(
        {"role": "system", "content": "Be critical."}, {"role": "user", "content": "Let's discuss science.\n\nopening"},
        {"role": "assistant", "content": "mine"}, {"role": "user", "content": "latest"}))
    assert partner_line(chat) == "latest" and own_lines(chat) == {"mine"}
    first = GenerationRequest(agent="B", model=PHYSICS, messages=(
        {"role": "system", "content": ""}, {"role": "user", "content": "Let's discuss science.\n\nopening"}))
    assert partner_line(first) == "opening" and own_lines(first) == set()


# -- replies --------------------------------------------------------------------------------

def test_reply_is_the_speakers_own_sentence_nearest_to_the_partner_line(backend):
    own = backend.corpus("A", PHYSICS)
    assert 0 < len(own) < len(backend.corpus("A", "mmlu:high_school_physics+anatomy"))
    vectors = backend.embedder.encode(own)
    line = "What is the acceleration of a ball dropped from a bridge, ignoring air resistance?"
    expected = own[int(np.argmax(vectors @ backend.embedder.encode([line])[0]))]
    [reply] = backend.generate([transcript("A", PHYSICS, [("B", line)])])
    assert reply.status == "ok" and reply.text == expected


def test_same_requests_give_same_replies_and_the_seed_changes_subsets_and_replies(real_embedder, cache, backend):
    agents = [("A", PHYSICS), ("B", PHYSICS), ("C", ANATOMY), ("D", ANATOMY)]
    again = CorpusBackend(fraction=0.5, seed=0, embedder=real_embedder, cache_dir=cache)
    other = CorpusBackend(fraction=0.5, seed=1, embedder=real_embedder, cache_dir=cache)
    first = texts(converse(backend, agents))
    assert texts(converse(again, agents)) == first
    assert backend.corpus("A", PHYSICS) == again.corpus("A", PHYSICS)
    assert backend.corpus("A", PHYSICS) != backend.corpus("B", PHYSICS)  # two agents on one subject differ
    assert other.corpus("A", PHYSICS) != backend.corpus("A", PHYSICS)
    assert texts(converse(other, agents)) != first
    assert backend.describe() == again.describe() != other.describe()


def test_ties_are_broken_by_the_request_seed(backend):
    # An empty partner line embeds as the zero vector: every sentence ties, the request's seed picks one.
    picks = [backend.generate([transcript("A", PHYSICS, [("B", "")], seed=s)])[0].text for s in range(8)]
    assert picks == [backend.generate([transcript("A", PHYSICS, [("B", "")], seed=s)])[0].text for s in range(8)]
    assert len(set(picks)) > 1 and set(picks) <= set(backend.corpus("A", PHYSICS))


@pytest.mark.parametrize("fmt", ["transcript", "chat"])
def test_no_sentence_is_repeated_within_a_conversation(real_embedder, cache, fmt):
    small = CorpusBackend(fraction=0.1, seed=0, embedder=real_embedder, cache_dir=cache)  # 10 sentences each
    store = Store(":memory:")
    [conv] = converse(small, [("A", "mmlu:abstract_algebra"), ("B", "mmlu:abstract_algebra")], turns=22, fmt=fmt,
                      store=store)
    said = {name: [u.text for u in conv.utterances if u.speaker == name and u.status == "ok"] for name in "AB"}
    assert all(len(lines) == 10 and len(set(lines)) == 10 for lines in said.values())
    assert set(said["A"]) == set(small.corpus("A", "mmlu:abstract_algebra"))  # it used up its corpus ...
    assert [u.status for u in conv.utterances[-2:]] == ["error", "error"]  # ... and then says so
    assert "agent B: has said all 10 sentences" in store.utterances(conv.id)[-1]["error"]


def test_query_lines_from_the_corpus_are_not_embedded_again(backend, monkeypatch):
    backend.check([("A", PHYSICS), ("B", PHYSICS)])
    calls = []
    monkeypatch.setattr(backend.embedder, "encode", lambda batch, **kw: calls.append(list(batch)))
    line = backend.corpus("B", PHYSICS)[0]
    assert backend.generate([transcript("A", PHYSICS, [("B", line)])])[0].status == "ok"
    assert calls == []


def test_corpus_embeddings_come_from_the_disk_cache(real_embedder, cache, monkeypatch, tmp_path):
    fresh = CorpusBackend(embedder=real_embedder, cache_dir=str(tmp_path))
    fresh.check([("A", "mmlu:virology")])
    assert len(list(tmp_path.glob("mmlu-test-virology-*.npy"))) == 1
    monkeypatch.setattr(corpus_module, "_PROCESS_CACHE", {})
    calls = []
    monkeypatch.setattr(real_embedder, "encode", lambda batch, **kw: calls.append(list(batch)))
    cached = CorpusBackend(embedder=real_embedder, cache_dir=str(tmp_path))
    cached.check([("A", "mmlu:virology")])
    assert calls == [] and np.array_equal(cached._matrix, fresh._matrix)


# -- the planted signal ---------------------------------------------------------------------

def test_same_subject_pairs_converse_more_coherently_than_cross_subject_pairs(backend, real_embedder, monkeypatch):
    agents = [("P1", PHYSICS), ("P2", PHYSICS), ("A1", ANATOMY), ("A2", ANATOMY)]
    subject = dict(agents)

    def weights():
        values = relationship_values(converse(backend, agents, turns=6), embedder=real_embedder)
        same = [r.weight for r in values.itertuples() if subject[r.agent_a] == subject[r.agent_b]]
        cross = [r.weight for r in values.itertuples() if subject[r.agent_a] != subject[r.agent_b]]
        return same, cross

    same, cross = weights()
    assert len(same) == 2 and len(cross) == 4
    assert min(same) > max(cross)
    # The replies answer the partner: ignoring it (every reply a seeded draw from the speaker's corpus)
    # leaves same-subject conversations less coherent.
    monkeypatch.setattr(corpus_module, "partner_line", lambda request: "")
    same_blind, _ = weights()
    assert np.mean(same) > np.mean(same_blind)


# -- resuming -------------------------------------------------------------------------------

def test_an_interrupted_run_resumes_to_the_same_conversations(backend, real_embedder, cache, tmp_path):
    agents = [("A", PHYSICS), ("B", ANATOMY), ("C", PHYSICS)]
    whole = texts(converse(backend, agents, turns=6))

    class Crashing(CorpusBackend):
        calls = 0

        def generate(self, requests):
            Crashing.calls += 1
            if Crashing.calls > 2:
                raise KeyboardInterrupt
            return super().generate(requests)

    path = tmp_path / "store.sqlite"
    with pytest.raises(KeyboardInterrupt):
        converse(Crashing(embedder=real_embedder, cache_dir=cache), agents, turns=6, store=Store(path))
    assert Store(path).counts()["utterances"] == 6  # two turns of three conversations
    fresh = CorpusBackend(embedder=real_embedder, cache_dir=cache)  # a new process would build a new backend
    assert texts(converse(fresh, agents, turns=6, store=Store(path))) == whole
    assert Store(path).counts()["utterances"] == 18


# -- errors ---------------------------------------------------------------------------------

def test_bad_models_and_settings_give_one_clear_line_naming_the_field(backend):
    with pytest.raises(ConfigError, match=r"agents\.Ada\.model: unknown MMLU subject 'anatomyy'.*did you mean "
                                          r"'anatomy'.*MMLU_SUBJECTS"):
        backend.check([("Ada", "mmlu:anatomyy")])
    with pytest.raises(ConfigError, match=r"agents\.Bo\.model: .*'mmlu:high_school_physics'.*\(got 'physics'\)"):
        backend.generate([transcript("Bo", "physics", [])])
    with pytest.raises(ConfigError, match=r"unknown MMLU subject 'virologyy'"):
        parse_corpus_model("mmlu:anatomy+virologyy", "Cy")
    assert parse_corpus_model("mmlu:anatomy+virology", "Cy") == ("anatomy", "virology")
    for settings, field in [({"fraction": 0}, "fraction"), ({"fraction": 1.5}, "fraction"),
                            ({"split": "train"}, "split"), ({"seed": -1}, "seed")]:
        with pytest.raises(ConfigError) as err:
            make_backend("c", "corpus", settings)
        assert err.value.field == field
    with pytest.raises(ConfigError, match=r"backends\.c\.temperature: unknown setting for a corpus backend"):
        make_backend("c", "corpus", {"temperature": 0.5})


# -- through the pipeline -------------------------------------------------------------------

CONFIG = """
name: corpus-testbed
backends:
  corpus: {{type: corpus, fraction: 0.5, seed: 0, cache_dir: "{cache}", device: cpu}}
defaults: {{backend: corpus, format: transcript}}
agents:
  - {{name: P1, model: "mmlu:high_school_physics", labels: [physics]}}
  - {{name: P2, model: "mmlu:high_school_physics", labels: [physics]}}
  - {{name: P3, model: "mmlu:high_school_physics", labels: [physics]}}
  - {{name: A1, model: "mmlu:anatomy", labels: [anatomy]}}
  - {{name: A2, model: "mmlu:anatomy", labels: [anatomy]}}
  - {{name: A3, model: "{bad}", labels: [anatomy]}}
topics: [science]
conversation: {{turns: 6, seed: 0}}
scoring: {{device: cpu}}
communities: {{n_seeds: 3, n_permutations: 20}}
"""


def test_a_corpus_config_loads_and_runs_through_the_pipeline(cache, tmp_path):
    path = tmp_path / "corpus.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(cache=cache, bad="mmlu:anatomy")))
    config = load_config(path)
    result = run(config, out_dir=tmp_path / "out", progress=False, figures=False)
    assert len(result.conversations) == 15
    assert all(u.status == "ok" for c in result.conversations for u in c.utterances)
    [backend] = open_backends(config).values()
    own = {a.name: set(backend.corpus(a.name, a.model)) for a in config.agents}
    assert all(u.text in own[u.speaker] for c in result.conversations for u in c.utterances)  # its own sentences
    teams = sorted(sorted(team) for team in result.partitions["science"].communities)
    assert teams == [["A1", "A2", "A3"], ["P1", "P2", "P3"]]  # the planted subjects

    path.write_text(textwrap.dedent(CONFIG.format(cache=cache, bad="mmlu:anatomi")))
    with pytest.raises(ConfigError, match=r"agents\.A3\.model: unknown MMLU subject 'anatomi'"):
        run(load_config(path), out_dir=tmp_path / "bad", progress=False, figures=False)
