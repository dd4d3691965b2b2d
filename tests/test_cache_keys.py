"""Labels are not part of cache keys; stores written with the old (labelled) keys are re-keyed, not regenerated.

Fake backends count every call: these tests check keys and the store, not a model.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import sqlite3

import pytest

from teamgraph.backends.base import GenerationResult, ScoreRequest
from teamgraph.config import ConversationConfig
from teamgraph.dialogue import plan_conversations, rekey_legacy_conversations, run_conversations, stored_conversations
from teamgraph.evaluation import collect_answers, load_benchmark, run_debates
from teamgraph.evaluation.answers import make_job
from teamgraph.evaluation.likelihood import _key, cloze_prompt, likelihood_prompt
from teamgraph.roster import Agent, Roster, Sampling, legacy_key_dict
from teamgraph.store import Store, stable_hash

SETTINGS = ConversationConfig(turns=3, seed=0)
IDENTITY = {"type": "fake"}


class CountingBackend:
    """Replies from a hash of the request, scores options likewise; counts every model call."""

    max_batch = 4

    def __init__(self):
        self.calls = 0

    def describe(self):
        return dict(IDENTITY)

    def close(self):
        pass

    def generate(self, requests):
        self.calls += len(requests)
        out = []
        for r in requests:
            text = r.prompt if r.prompt is not None else str(r.messages)
            out.append(GenerationResult.from_text(f" {'ABCD'[int(stable_hash([r.agent, text])[:4], 16) % 4]}. ok"))
        return out

    def option_logprobs(self, requests):
        self.calls += len(requests)
        return [{o: -float(int(stable_hash([r.agent, r.prompt, o])[:4], 16) % 97) for o in r.options} for r in requests]

    def continuation_logprobs(self, agent, model, prompt, continuations):
        self.calls += 1
        return [(-float(int(stable_hash([agent, prompt, c])[:4], 16) % 97), 2) for c in continuations]


def agents(labels=("family:a", "role:math")):
    return [Agent("Ada", backend="local", persona="Ada is a mathematician.", labels=tuple(labels)),
            Agent("Euler", backend="local", persona="Euler is a mathematician.", format="chat", labels=("role:math",)),
            Agent("Galen", backend="local", persona="Galen is a physician.", labels=())]


def relabel(roster, suffix="-edited"):
    return [dataclasses.replace(a, labels=tuple(f"{label}{suffix}" for label in a.labels) + ("kind:new",))
            for a in roster]


@pytest.fixture(scope="module")
def mc_items():
    return load_benchmark("mmlu_math", n_items=5, seed=3)


def rows(path):
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in ("conversations", "utterances", "answers")}
    finally:
        db.close()


# -- keys --------------------------------------------------------------------------------------

def test_identity_dict_is_the_public_dict_without_labels():
    a = agents()[0]
    assert a.identity_dict() == {k: v for k, v in a.public_dict().items() if k != "labels"}
    assert a.public_dict()["labels"] == ["family:a", "role:math"]  # exports keep them
    assert dataclasses.replace(a, labels=("x",)).identity_dict() == a.identity_dict()
    for field, value in (("persona", "other"), ("model", "m2"), ("backend", "b2"), ("format", "chat"),
                         ("sampling", Sampling(temperature=0.1)), ("name", "Bob")):
        assert dataclasses.replace(a, **{field: value}).identity_dict() != a.identity_dict(), field


def test_legacy_keys_are_the_keys_teamgraph_made_before():
    """Golden values computed by the code before this change (git a0c42ff): the legacy formula must keep them."""
    a = Agent("Ada", backend="x", model="m1", persona="Ada is a mathematician.", labels=("family:m1", "role:math"))
    b = Agent("Galen", backend="x", model="m2", persona="Galen is a physician.", format="chat",
              sampling=Sampling(max_tokens=12, repeat_penalty=1.3), labels=("family:m2", "role:medical"))
    ident = {"Ada": {"type": "echo", "weights": "m1.gguf:1"}, "Galen": {"type": "echo", "weights": "m2.gguf:2"}}
    [spec] = plan_conversations(Roster([a, b]), ["medicine"], ConversationConfig(turns=4, seed=3), ident)
    assert spec.legacy_id == "7a4e89c24e6c7b58" != spec.id
    item = {"item_id": "q1", "benchmark": "b", "kind": "multiple_choice", "question": "2+2?", "choices": ["3", "4", "5"]}
    job = make_job(b, item, ident["Galen"], seed=1, max_tokens=8)
    assert job.legacy_key == "6799d9d1a7a10323c598db67d3a6261cf5833e9ff259f6061bbe1c8a198301d0" != job.key
    for mode, prompt, old in (
            ("likelihood", likelihood_prompt(a, item), "9e25aae11e082a6a0bc29bd6b860d6ab3356da82db0a32cefa4d187eb19577f3"),
            ("cloze", cloze_prompt(a, item), "6e19d186f9563312826236a575ce88dc549b5b4c68ae7733734e6da0b5381467")):
        req = ScoreRequest(a.name, a.model, prompt, ("A", "B", "C"))
        assert _key(a, ident["Ada"], "q1", req, mode, item["choices"], legacy=True) == old
        assert _key(a, ident["Ada"], "q1", req, mode, item["choices"]) != old
    assert legacy_key_dict(a) == a.public_dict()  # today's exports still equal the old key dict


# -- editing a label generates nothing ---------------------------------------------------------

def test_editing_labels_generates_no_conversation_and_no_answer_again(tmp_path, mc_items):
    store = Store(tmp_path / "s.sqlite")
    fake = CountingBackend()
    backends = {"local": fake}
    specs = plan_conversations(Roster(agents()), ["t", "u"], SETTINGS)
    first = run_conversations(specs, backends, store, SETTINGS, progress=False)
    answers = {mode: collect_answers(agents(), mc_items, backends, store, scoring=mode, progress=False)
               for mode in ("generation", "likelihood", "cloze")}
    team = {"T": agents()}
    debate = run_debates(team, mc_items, backends, store, rounds=1, progress=False)
    made, before = fake.calls, rows(tmp_path / "s.sqlite")
    assert made > 0

    edited = relabel(agents())
    specs2 = plan_conversations(Roster(edited), ["t", "u"], SETTINGS)
    assert [s.id for s in specs2] == [s.id for s in specs] and [s.legacy_id for s in specs2] != [s.legacy_id for s in specs]
    again = run_conversations(specs2, backends, store, SETTINGS, progress=False)
    for mode, frame in answers.items():
        assert collect_answers(edited, mc_items, backends, store, scoring=mode, progress=False).equals(frame)
    assert run_debates({"T": edited}, mc_items, backends, store, rounds=1, progress=False).equals(debate)
    assert fake.calls == made  # not one model call
    assert [c.to_dict() for c in again] == [c.to_dict() for c in first]
    assert rows(tmp_path / "s.sqlite") == before  # and no row added or moved


# -- a store written with the old keys ---------------------------------------------------------

def test_a_store_written_with_labelled_keys_is_rekeyed_and_reused_with_zero_model_calls(tmp_path, mc_items,
                                                                                      monkeypatch, caplog):
    path = tmp_path / "old.sqlite"
    roster = agents()
    specs = plan_conversations(Roster(roster), ["t", "u"], SETTINGS)
    new_backends = {"local": CountingBackend()}  # the reference: what the new code makes on a fresh store
    with Store() as fresh:
        reference = run_conversations(specs, new_backends, fresh, SETTINGS, progress=False)
        ref_answers = {m: collect_answers(roster, mc_items, new_backends, fresh, scoring=m, progress=False)
                       for m in ("generation", "likelihood", "cloze")}
        ref_debate = run_debates({"T": roster}, mc_items, new_backends, fresh, rounds=1, progress=False)

    with monkeypatch.context() as m:  # write the store as the old code did: keys hash public_dict(), labels in
        m.setattr(Agent, "identity_dict", Agent.public_dict)
        old_specs = plan_conversations(Roster(roster), ["t", "u"], SETTINGS)
        assert [s.id for s in old_specs] == [s.legacy_id for s in specs]
        with Store(path) as store:
            old = {"local": CountingBackend()}
            run_conversations(old_specs, old, store, SETTINGS, progress=False)
            for mode in ("generation", "likelihood", "cloze"):
                collect_answers(roster, mc_items, old, store, scoring=mode, progress=False)
            run_debates({"T": roster}, mc_items, old, store, rounds=1, progress=False)
            # an unrelated conversation and answer, which re-keying must leave alone
            store.add_conversation("other-conversation", "X", "Y", "t", 1, {})
            store.add_utterances([{"conversation_id": "other-conversation", "turn": 0, "speaker": "X", "text": "hi"}])
            store.put_answers([{"key": "other-answer", "agent": "X", "benchmark": "b", "item_id": "1", "raw": "A"}])
    before = rows(path)
    n_conv, n_utt, n_ans = len(before["conversations"]), len(before["utterances"]), len(before["answers"])

    fake = CountingBackend()
    backends = {"local": fake}
    with Store(path) as store, caplog.at_level(logging.WARNING, logger="teamgraph.store"):
        convs = run_conversations(specs, backends, store, SETTINGS, progress=False)
        got = {m: collect_answers(roster, mc_items, backends, store, scoring=m, progress=False)
               for m in ("generation", "likelihood", "cloze")}
        debate = run_debates({"T": roster}, mc_items, backends, store, rounds=1, progress=False)
    assert fake.calls == 0
    assert [c.to_dict() for c in convs] == [c.to_dict() for c in reference]  # same ids and texts as the new code makes
    for mode in got:
        assert got[mode].equals(ref_answers[mode]), mode
    assert debate.equals(ref_debate)
    moved = [tuple(map(int, m)) for m in re.findall(r"re-keyed (\d+) conversations and (\d+) answers from labelled keys",
                                                    caplog.text)]
    # every planned row moved: the conversations, and generation, likelihood, cloze, debate round 1 answers
    assert sum(c for c, _ in moved) == len(specs) and sum(a for _, a in moved) == 4 * 3 * len(mc_items) == n_ans - 1
    after = rows(path)
    assert (len(after["conversations"]), len(after["utterances"]), len(after["answers"])) == (n_conv, n_utt, n_ans)
    assert [r for r in after["conversations"] if r[0] == "other-conversation"] == \
        [r for r in before["conversations"] if r[0] == "other-conversation"]
    assert [r for r in after["utterances"] if r[0] == "other-conversation"] == \
        [r for r in before["utterances"] if r[0] == "other-conversation"]
    assert [r for r in after["answers"] if r[0] == "other-answer"] == [r for r in before["answers"] if r[0] == "other-answer"]
    # only keys changed: every row's other columns are as they were
    assert sorted(r[1:] for r in after["conversations"]) == sorted(r[1:] for r in before["conversations"])
    assert sorted(r[1:] for r in after["utterances"]) == sorted(r[1:] for r in before["utterances"])
    assert sorted(r[1:] for r in after["answers"]) == sorted(r[1:] for r in before["answers"])

    # idempotent: planning, collecting and re-keying again change nothing and log nothing
    caplog.clear()
    with Store(path) as store, caplog.at_level(logging.WARNING, logger="teamgraph.store"):
        assert rekey_legacy_conversations(store, specs) == 0
        run_conversations(specs, backends, store, SETTINGS, progress=False)
        collect_answers(roster, mc_items, backends, store, scoring="cloze", progress=False)
    assert fake.calls == 0 and "re-keyed" not in caplog.text
    assert rows(path) == after


def test_rekey_leaves_a_key_that_exists_under_both_forms_and_keys_it_does_not_plan():
    with Store() as store:
        store.add_conversation("old1", "a", "b", "t", 1, {})
        store.add_utterances([{"conversation_id": "old1", "turn": 0, "speaker": "a", "text": "old"}])
        store.add_conversation("new1", "a", "b", "t", 1, {})  # already there under its new id: kept as is
        store.add_utterances([{"conversation_id": "new1", "turn": 0, "speaker": "a", "text": "new"}])
        store.add_conversation("old2", "a", "b", "t", 1, {})
        store.add_utterances([{"conversation_id": "new2", "turn": 0, "speaker": "a", "text": "x"}])  # an orphan: blocks new2
        store.put_answers([{"key": k, "agent": "a", "benchmark": "b", "item_id": "1", "raw": k}
                           for k in ("oldA", "newA", "oldB", "unplanned")])
        assert store.rekey(conversations={"new1": "old1", "new2": "old2", "new3": "missing"},
                           answers={"newA": "oldA", "newB": "oldB", "newC": "missing"}) == (0, 1)
        ids = {r[0] for r in store._db.execute("SELECT id FROM conversations")}
        assert ids == {"old1", "new1", "old2"}
        keys = {r[0]: r[1] for r in store._db.execute("SELECT key, raw FROM answers")}
        assert keys == {"oldA": "oldA", "newA": "newA", "newB": "oldB", "unplanned": "unplanned"}
        assert store.utterances("new1")[0]["text"] == "new" and store.utterances("old1")[0]["text"] == "old"
        assert store.rekey(conversations={"new1": "old1"}, answers={"newB": "oldB"}) == (0, 0)


def test_readers_find_legacy_conversations_without_writing(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    roster = Roster(agents())
    with monkeypatch.context() as m:
        m.setattr(Agent, "identity_dict", Agent.public_dict)
        with Store(path) as store:
            run_conversations(plan_conversations(roster, ["t"], SETTINGS), {"local": CountingBackend()}, store,
                              SETTINGS, progress=False)
    before = rows(path)
    specs = plan_conversations(roster, ["t"], SETTINGS)
    with Store(path) as store:
        found = stored_conversations(store, specs)
    assert sorted(c.id for c in found) == sorted(s.id for s in specs)  # under their new ids
    assert rows(path) == before  # nothing written
