"""Scheduler and prompt logic with a fake backend (the real-model tests are in test_local_run.py)."""
import pytest

from teamgraph.backends.base import GenerationRequest, GenerationResult
from teamgraph.config import ConversationConfig
from teamgraph.dialogue import build_request, conversation_seed, plan_conversations, run_conversations
from teamgraph.roster import Agent, Roster
from teamgraph.store import Store


class EchoBackend:
    """Replies '<agent> turn <n>' and records every batch it was given."""

    def __init__(self, max_batch=None, fail_agent=None):
        self.batches = []
        self.max_batch = max_batch
        self.fail_agent = fail_agent

    def generate(self, requests):
        self.batches.append([r.agent for r in requests])
        out = []
        for r in requests:
            n = (r.prompt or "").count("\n") if r.prompt is not None else len(r.messages)
            if r.agent == self.fail_agent:
                out.append(GenerationResult.failed("boom"))
            else:
                out.append(GenerationResult.from_text(f"{r.agent} says {n} (seed {r.seed})"))
        return out

    def describe(self):
        return {"type": "echo"}

    def close(self):
        pass


def roster(n=4, backend="x", fmt="transcript"):
    return Roster([Agent(f"a{i}", backend=backend, persona=f"persona {i}", format=fmt) for i in range(n)])


def test_plan_counts_pairs_topics_repeats_and_orders():
    r = roster(5)
    assert len(plan_conversations(r, ["t"], ConversationConfig())) == 10
    assert len(plan_conversations(r, ["t", "u"], ConversationConfig(repeats=3))) == 60
    both = plan_conversations(r, ["t"], ConversationConfig(both_orders=True))
    assert len(both) == 20 and len({s.id for s in both}) == 20
    first = plan_conversations(r, ["t"], ConversationConfig())[0]
    assert (first.opener.name, first.partner.name) == ("a0", "a1")  # roster order decides the opener


def test_ids_and_seeds_are_deterministic_and_depend_on_settings():
    r = roster(3)
    a = plan_conversations(r, ["t"], ConversationConfig(seed=1))
    b = plan_conversations(r, ["t"], ConversationConfig(seed=1))
    c = plan_conversations(r, ["t"], ConversationConfig(seed=2))
    assert [s.id for s in a] == [s.id for s in b]
    assert all(x.id != y.id and x.seed != y.seed for x, y in zip(a, c))
    assert a[0].seed == conversation_seed(1, "a0", "a1", "t", 0)


def test_transcript_prompt_shape():
    spec = plan_conversations(roster(2), ["algebra"], ConversationConfig(instruction="Be critical."))[0]
    req = build_request(spec, [("a0", "hello"), ("a1", "")], ConversationConfig(instruction="Be critical."))
    assert req.prompt == "Be critical.\npersona 0\nLet's discuss algebra.\na0: hello\na1:\na0:"
    assert req.stop == ("\n",) and req.agent == "a0" and req.seed == (spec.seed + 2) % 2**31


def test_chat_prompt_roles_alternate_from_the_speakers_view():
    settings = ConversationConfig(instruction="Be critical.")
    spec = plan_conversations(roster(2, fmt="chat"), ["algebra"], settings)[0]
    opener = build_request(spec, [], settings)
    assert [m["role"] for m in opener.messages] == ["system", "user"]
    assert opener.messages[1]["content"] == "Let's discuss algebra."
    second = build_request(spec, [("a0", "x=1")], settings)  # partner: sees topic + opener as one user turn
    assert second.messages[0]["content"] == "Be critical.\npersona 1"
    assert second.messages[1] == {"role": "user", "content": "Let's discuss algebra.\n\nx=1"}
    third = build_request(spec, [("a0", "x=1"), ("a1", "no")], settings)
    assert [(m["role"], m["content"]) for m in third.messages[1:]] == [
        ("user", "Let's discuss algebra."), ("assistant", "x=1"), ("user", "no")]


def test_turn_synchronous_batches_feed_all_live_conversations_at_once():
    r = roster(4)
    settings = ConversationConfig(turns=4)
    specs = plan_conversations(r, ["t"], settings)
    backend = EchoBackend()
    convs = run_conversations(specs, {"x": backend}, Store(), settings, progress=False)
    assert len(backend.batches) == 4  # one call per turn, all 6 conversations in it
    assert all(len(b) == 6 for b in backend.batches)
    assert all(b == sorted(b) for b in backend.batches)  # grouped by agent
    assert len(convs) == 6 and all(len(c.utterances) == 4 for c in convs)


def test_max_batch_splits_calls_and_errors_are_recorded_not_dropped():
    settings = ConversationConfig(turns=2)
    specs = plan_conversations(roster(3), ["t"], settings)
    backend = EchoBackend(max_batch=1, fail_agent="a1")
    store = Store()
    convs = run_conversations(specs, {"x": backend}, store, settings, progress=False)
    assert all(len(b) == 1 for b in backend.batches) and len(backend.batches) == 6
    statuses = [(u.speaker, u.status) for c in convs for u in c.utterances]
    assert ("a1", "error") in statuses and len(statuses) == 6
    errors = [u for s in specs for u in store.utterances(s.id) if u["status"] == "error"]
    assert errors and all(u["error"] == "boom" for u in errors)


def test_resume_continues_without_duplicates_or_recomputation(tmp_path):
    settings = ConversationConfig(turns=4)
    specs = plan_conversations(roster(3), ["t"], settings)
    path = tmp_path / "s.sqlite"

    class Crash(Exception):
        pass

    class CrashingBackend(EchoBackend):
        def generate(self, requests):
            if len(self.batches) == 2:
                raise Crash()
            return super().generate(requests)

    with pytest.raises(Crash):
        run_conversations(specs, {"x": CrashingBackend()}, Store(path), settings, progress=False)
    assert Store(path).counts()["utterances"] == 6  # two turns of three conversations survived
    second = EchoBackend()
    convs = run_conversations(specs, {"x": second}, Store(path), settings, progress=False)
    assert sum(len(b) for b in second.batches) == 6  # only the missing turns were generated
    assert Store(path).counts()["utterances"] == 12
    assert [[u.text for u in c.utterances] for c in convs] == [
        [u.text for u in c.utterances] for c in run_conversations(specs, {"x": EchoBackend()}, Store(), settings, progress=False)]


def test_request_needs_prompt_or_messages():
    with pytest.raises(ValueError):
        GenerationRequest(agent="a", model="m")
