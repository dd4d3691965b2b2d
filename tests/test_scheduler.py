"""Continuous scheduling (teamgraph.scheduler) with fake remote backends whose replies come back in random order.

A fake's reply is a function of its request alone (agent, whole prompt, seed), as a seeded server's is,
so any mix-up of histories, turns or speakers changes the stored texts.
"""
import os
import random
import signal
import threading
import time

import pytest

from teamgraph.backends.base import ConcurrentBackend, GenerationResult
from teamgraph.cli import Terminated, _sigterm_stops
from teamgraph.config import ConversationConfig
from teamgraph.dialogue import plan_conversations, run_conversations
from teamgraph.errors import BackendError
from teamgraph.roster import Agent, Roster
from teamgraph.scheduler import is_concurrent
from teamgraph.store import Store, stable_hash

SETTINGS = ConversationConfig(turns=5, both_orders=True, seed=3)


def reply_for(request):
    """What a seeded server would answer: determined by the request."""
    digest = stable_hash([request.agent, request.prompt, request.seed])[:10]
    if digest[0] in "01":
        return GenerationResult.from_text("")  # some empty replies, stored as such
    return GenerationResult.from_text(f"{request.agent} {digest}")


class Batching:
    """An in-process stand-in: whole batches through ``generate`` (no ``generate_one``)."""

    max_batch = None

    def __init__(self):
        self.batches = []

    def generate(self, requests):
        self.batches.append(len(requests))
        return [reply_for(r) for r in requests]

    def describe(self):
        return {"type": "batching"}

    def close(self):
        pass


class Remote:
    """A remote stand-in: ``generate_one`` from many threads, each call sleeping a random 0-15 ms.

    ``on_call`` (call number -> None) runs at the start of a call, from the worker thread.
    """

    def __init__(self, limit=3, seed=0, on_call=None):
        self.max_in_flight = limit
        self.on_call = on_call
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.started, self.finished = [], []

    def generate_one(self, request):
        with self._lock:
            self.calls += 1
            n = self.calls
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.started.append(n)
            delay = self._rng.uniform(0, 0.015)
        try:
            if self.on_call is not None:
                self.on_call(n)
            time.sleep(delay)
            return reply_for(request)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.finished.append(n)

    def generate(self, requests):
        return [self.generate_one(r) for r in requests]

    def describe(self):
        return {"type": "remote"}

    def close(self):
        pass


def roster(backend_of):
    return Roster([Agent(f"a{i}", backend=b, persona=f"persona {i}") for i, b in enumerate(backend_of)])


def stored(convs):
    return [(c.id, [(u.speaker, u.text, u.status) for u in c.utterances]) for c in convs]


def reference(specs):
    """The same conversations, turn-synchronously through in-process stand-ins."""
    names = {a.backend for s in specs for a in (s.opener, s.partner)}
    return stored(run_conversations(specs, {n: Batching() for n in names}, Store(), SETTINGS, progress=False))


def test_fakes_are_what_they_stand_for():
    assert is_concurrent(Remote()) and isinstance(Remote(), ConcurrentBackend)
    assert not is_concurrent(Batching())


def test_same_conversations_whatever_order_replies_come_back_in():
    specs = plan_conversations(roster(["r1", "r2", "r1", "r2", "r1"]), ["t", "u"], SETTINGS)
    want = reference(specs)
    for seed in (0, 1):
        backends = {"r1": Remote(limit=3, seed=seed), "r2": Remote(limit=2, seed=seed + 10)}
        got = stored(run_conversations(specs, backends, Store(), SETTINGS, progress=False))
        assert got == want
        assert len(got) == 40 and all(len(turns) == 5 for _, turns in got)
        assert sum(b.calls for b in backends.values()) == 200  # each turn asked once
        for b in backends.values():
            assert 1 < b.peak <= b.max_in_flight  # concurrent, within the backend's limit
            assert b.finished != sorted(b.finished)  # replies did come back out of order


def test_remote_and_in_process_backends_in_one_run():
    specs = plan_conversations(roster(["r", "local", "r", "local"]), ["t"], SETTINGS)
    local, remote = Batching(), Remote(limit=2)
    got = stored(run_conversations(specs, {"r": remote, "local": local}, Store(), SETTINGS, progress=False))
    assert got == reference(specs)
    local_turns = sum(1 for s in specs for t in range(s.turns) if s.speaker(t).backend == "local")
    assert sum(local.batches) == local_turns and remote.calls == 60 - local_turns


@pytest.mark.parametrize("how", ["sigint", "sigterm", "backend_error"])
def test_stopped_mid_run_keeps_what_arrived_and_resumes_to_the_same(tmp_path, how):
    specs = plan_conversations(roster(["r1", "r2", "r1", "r2"]), ["t"], SETTINGS)
    want = dict(reference(specs))
    path = tmp_path / "s.sqlite"

    def stop(n):
        if n == 13:
            if how == "backend_error":
                raise BackendError("agent a1: cannot reach http://127.0.0.1:9/v1 (connection refused)")
            os.kill(os.getpid(), signal.SIGINT if how == "sigint" else signal.SIGTERM)

    expected = {"sigint": KeyboardInterrupt, "sigterm": Terminated, "backend_error": BackendError}[how]
    backends = {"r1": Remote(limit=3, on_call=stop), "r2": Remote(limit=3, seed=5)}
    with _sigterm_stops(), pytest.raises(expected):
        run_conversations(specs, backends, Store(path), SETTINGS, progress=False)
        time.sleep(5)  # not reached: a signal sent at the end of the run still lands inside pytest.raises

    with Store(path) as store:
        partial = {s.id: store.utterances(s.id) for s in specs}
    n_stored = sum(len(u) for u in partial.values())
    assert 0 < n_stored < 60
    for conv_id, rows in partial.items():  # each conversation: turns 0..k-1, as the full run has them
        assert [r["turn"] for r in rows] == list(range(len(rows)))
        assert [(r["speaker"], r["text"], r["status"]) for r in rows] == want[conv_id][:len(rows)]

    again = {"r1": Remote(limit=3, seed=7), "r2": Remote(limit=3, seed=8)}
    with Store(path) as store:
        got = stored(run_conversations(specs, again, store, SETTINGS, progress=False))
    assert got == list(want.items())
    assert sum(b.calls for b in again.values()) == 60 - n_stored  # nothing stored was asked again


def test_a_failed_request_is_stored_as_failed_and_the_run_goes_on():
    class Flaky(Remote):
        def generate_one(self, request):
            result = super().generate_one(request)
            return GenerationResult.failed("HTTP 400: too long") if request.agent == "a1" else result

    specs = plan_conversations(roster(["r", "r", "r"]), ["t"], SETTINGS)
    convs = run_conversations(specs, {"r": Flaky()}, Store(), SETTINGS, progress=False)
    statuses = {(u.speaker, u.status) for c in convs for u in c.utterances}
    assert ("a1", "error") in statuses and len(convs) == 6
    assert all(len(c.utterances) == 5 for c in convs)


def test_replies_received_when_interrupted_are_stored(tmp_path):
    """Ctrl-C while replies wait to be stored (the main thread is held inside a store write): every reply
    that came back before the signal is in the store afterwards, none at a wrong turn."""
    specs = plan_conversations(roster(["r1", "r2", "r1", "r2"]), ["t"], SETTINGS)
    want = dict(reference(specs))
    hold, released = threading.Event(), threading.Event()
    came_back = []

    class HeldStore(Store):
        def add_utterances(self, rows):
            if hold.is_set() and not released.is_set():
                try:
                    released.wait(timeout=30)  # Ctrl-C lands here, before this write
                finally:
                    released.set()  # the writes after it go through
            super().add_utterances(rows)

    backends = {}

    def stop(n):
        if n != 9:
            return
        hold.set()  # the main thread's next write waits
        others = [b for b in backends.values()]
        deadline = time.monotonic() + 30
        while any(b.in_flight > (b is backends["r1"]) for b in others) and time.monotonic() < deadline:
            time.sleep(0.01)  # every other call in flight returns and hands its reply over
        time.sleep(0.2)
        came_back.extend(b.finished[:] for b in others)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # wakes the held write at once

    class Recording(Remote):
        def generate_one(self, request):
            result = super().generate_one(request)
            with self._lock:
                self.replies.append(result.text)
            return result

    backends.update(r1=Recording(limit=3, on_call=stop), r2=Recording(limit=3, seed=4))
    for b in backends.values():
        b.replies = []
    path = tmp_path / "s.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_conversations(specs, backends, HeldStore(path), SETTINGS, progress=False)
        time.sleep(5)
    with Store(path) as store:
        rows = {s.id: store.utterances(s.id) for s in specs}
    texts = [r["text"] for rs in rows.values() for r in rs]
    returned_before = [t for b, done in zip(backends.values(), came_back) for t in b.replies[:len(done)] if t]
    assert returned_before and set(returned_before) <= set(texts)
    for conv_id, rs in rows.items():
        assert [(r["speaker"], r["text"], r["status"]) for r in rs] == want[conv_id][:len(rs)]


# -- batches for in-process backends (conversations, probes and answers all send them this way) --------

class Chunked:
    """Records each batch it is sent; ``short`` drops the last result of every batch."""

    def __init__(self, max_batch, short=False):
        self.max_batch, self.short, self.batches = max_batch, short, []

    def generate(self, requests):
        self.batches.append([r.agent for r in requests])
        results = [GenerationResult.from_text(r.agent.upper()) for r in requests]
        return results[:-1] if self.short else results


@pytest.mark.parametrize("max_batch, sizes", [(2, [2, 2, 1]), (5, [5]), (None, [5]), (1, [1, 1, 1, 1, 1])])
def test_generate_in_batches_cuts_at_max_batch_and_keeps_order(max_batch, sizes):
    from teamgraph.backends.base import GenerationRequest, generate_in_batches

    items = ["a", "b", "c", "d", "e"]
    backend = Chunked(max_batch)
    got = [(chunk, [r.text for r in results])
           for chunk, results in generate_in_batches(backend, items, lambda x: GenerationRequest(agent=x, model="m", prompt=x))]
    assert [len(b) for b in backend.batches] == sizes
    assert [x for chunk, _ in got for x in chunk] == items
    assert all(texts == [x.upper() for x in chunk] for chunk, texts in got)


def test_generate_in_batches_yields_each_batch_before_asking_the_next_and_rejects_a_short_reply():
    from teamgraph.backends.base import GenerationRequest, generate_in_batches

    backend = Chunked(2)
    batches = generate_in_batches(backend, ["a", "b", "c"], lambda x: GenerationRequest(agent=x, model="m", prompt=x))
    next(batches)
    assert backend.batches == [["a", "b"]]  # the caller stores this batch before the next is asked
    assert list(generate_in_batches(backend, [], lambda x: None)) == [] and len(backend.batches) == 1
    short = Chunked(2, short=True)
    with pytest.raises(RuntimeError, match="backend returned 1 results for 2 requests"):
        list(generate_in_batches(short, ["a", "b"], lambda x: GenerationRequest(agent=x, model="m", prompt=x)))
