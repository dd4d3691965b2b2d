"""Who speaks when: the harness's two schedulers, behind :func:`teamgraph.dialogue.run_conversations`.

- :func:`run_turn_synchronous`: at each step the next turn of every live conversation is requested
  together, grouped by backend and agent, in chunks of the backend's ``max_batch``. It suits
  in-process engines (llama.cpp, vLLM ``LLM``), which batch or run one request at a time anyway.
- :func:`run_continuous`: used as soon as one backend of the run is a
  :class:`~teamgraph.backends.base.ConcurrentBackend` (a remote server). Every such backend works at
  the same time, each with up to ``max_in_flight`` requests running, and a conversation asks for its
  next turn as soon as its previous reply is stored. In-process backends of the same run still get
  batches: the ready turns of one of them, whenever the scheduler has no reply waiting to be stored.

Both keep what the store promises: one writer thread (the caller's: SQLite), each reply written as it
arrives, one turn at a time per conversation, so the turns of a conversation are in order and each
request depends only on the conversation's seed and its stored history. The stored conversations of a
fixed seed are therefore the same whichever reply comes back first, and an interrupted run resumes
from the store.

Threads, not asyncio. A remote call spends its time waiting on a socket, which releases the GIL, so a
thread per request in flight costs little at the sizes a run uses (tens to a few hundred per backend;
threads start on demand). Threads let the ``openai`` backend keep its one synchronous, tested path
(retries, backoff, replica routing, secret scrubbing) instead of a second asynchronous copy that would
drift from it; they work where an event loop is already running (Jupyter, which ``asyncio.run``
refuses); the store never leaves the calling thread, which is also the thread where Ctrl-C and
SIGTERM arrive, so stopping is a plain ``try``/``except`` around the wait for replies.
"""
from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .backends.base import Backend, ConcurrentBackend, GenerationRequest, GenerationResult, batch_size, generate_in_batches
from .store import Store

if TYPE_CHECKING:
    from .dialogue import ConversationSpec

__all__ = ["is_concurrent", "run_turn_synchronous", "run_continuous"]

log = logging.getLogger("teamgraph.scheduler")

History = dict[str, list[tuple[str, str]]]
RequestFor = Callable[["ConversationSpec", Sequence[tuple[str, str]]], GenerationRequest]

_POLL_S = 0.5  # longest wait for a reply in one go: the main thread stays responsive to signals


def is_concurrent(backend: Backend) -> bool:
    """Whether ``backend`` is served continuously (a remote server the harness may call from many threads)."""
    return isinstance(backend, ConcurrentBackend)


def run_turn_synchronous(specs: Sequence[ConversationSpec], backends: Mapping[str, Backend], store: Store,
                         history: History, request_for: RequestFor, progress: Any) -> None:
    """Run the missing turns of ``specs`` step by step: all live conversations' next turns together.

    ``history`` (conversation id -> stored (speaker, text) turns) is extended as replies are stored;
    ``progress`` is a tqdm bar (``update`` per reply).
    """
    while True:
        live = [s for s in specs if len(history[s.id]) < s.turns]
        if not live:
            return
        jobs = []
        for s in live:
            me = s.speaker(len(history[s.id]))
            jobs.append(((me.backend, me.model, me.name, s.id), s, request_for(s, history[s.id])))
        jobs.sort(key=lambda job: job[0])
        for backend_name, group in itertools.groupby(jobs, key=lambda job: job[0][0]):
            _generate_group(backends[backend_name], [(s, req) for _, s, req in group], store, history, progress)


def _generate_group(backend: Backend, group: list[tuple[ConversationSpec, GenerationRequest]], store: Store,
                    history: History, progress: Any) -> None:
    """``group``'s requests to one backend, in chunks of its ``max_batch``, each chunk stored as it returns."""
    for chunk, results in generate_in_batches(backend, group, lambda job: job[1]):
        _store(store, history, [(spec, len(history[spec.id]), req, res) for (spec, req), res in zip(chunk, results)])
        progress.update(len(chunk))


def _store(store: Store, history: History,
           replies: Sequence[tuple[ConversationSpec, int, GenerationRequest, GenerationResult]]) -> None:
    """Write ``replies`` (spec, turn, request, result; each the next turn of its conversation) in one
    transaction, then extend ``history``: interrupted before the write returns, ``history`` is unchanged."""
    rows = []
    for spec, turn, req, res in replies:
        if turn != len(history[spec.id]):
            raise RuntimeError(f"conversation {spec.id}: reply for turn {turn}, but {len(history[spec.id])} are stored")
        rows.append({"conversation_id": spec.id, "turn": turn, "speaker": req.agent, "text": res.text,
                     "status": res.status, "error": res.error, "n_tokens": res.n_tokens, "seconds": res.seconds})
    store.add_utterances(rows)
    for spec, _, req, res in replies:
        history[spec.id].append((req.agent, res.text))


# -- continuous ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    backend: str
    spec: ConversationSpec
    turn: int
    request: GenerationRequest


@dataclass(frozen=True)
class _Done:
    job: _Job
    result: GenerationResult | None
    error: BaseException | None


class _Workers:
    """Up to ``max_in_flight`` daemon threads calling one backend's ``generate_one``; replies go to ``done``.

    Daemon threads: after a Ctrl-C the process need not wait for a reply in flight (it is asked again on
    resume). Threads start as requests need them.
    """

    def __init__(self, name: str, backend: ConcurrentBackend, done: queue.SimpleQueue[_Done]):
        self.name = name
        self.backend = backend
        self.limit = max(1, int(backend.max_in_flight))
        self.in_flight = 0
        self._done = done
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def submit(self, job: _Job) -> None:
        self.in_flight += 1
        if len(self._threads) < self.in_flight:
            thread = threading.Thread(target=self._work, name=f"teamgraph-{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._jobs.put(job)

    def stop(self) -> None:
        """No new request starts; the threads end as their requests in flight return."""
        self._stopped.set()
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopped.is_set():
                return
            try:
                self._done.put(_Done(job, self.backend.generate_one(job.request), None))
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread, which raises it)
                self._done.put(_Done(job, None, exc))


def run_continuous(specs: Sequence[ConversationSpec], backends: Mapping[str, Backend], store: Store,
                   history: History, request_for: RequestFor, progress: Any) -> None:
    """Run the missing turns of ``specs``, each conversation at its own pace (see the module docstring).

    Same arguments as :func:`run_turn_synchronous`. Replies are stored by the calling thread as they come
    back, those that arrived together in one transaction. On any exception (Ctrl-C, SIGTERM raised as an
    exception, a backend's ``BackendError``) no new request starts, the replies already received are
    stored, and the exception propagates; requests still in flight are dropped (asked again on resume).
    """
    done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
    workers = {name: _Workers(name, b, done) for name, b in backends.items() if isinstance(b, ConcurrentBackend)}
    ready: dict[str, collections.deque[ConversationSpec]] = {name: collections.deque() for name in workers}
    batched: list[ConversationSpec] = []  # ready turns for in-process backends, sent as batches

    def enqueue(spec: ConversationSpec) -> None:
        turn = len(history[spec.id])
        if turn < spec.turns:
            name = spec.speaker(turn).backend
            if name in ready:
                ready[name].append(spec)
            else:
                batched.append(spec)

    def dispatch() -> None:
        for name, pool in workers.items():
            while ready[name] and pool.in_flight < pool.limit:
                spec = ready[name].popleft()
                pool.submit(_Job(name, spec, len(history[spec.id]), request_for(spec, history[spec.id])))

    taken: list[_Done] = []  # replies off the queue, being stored

    def store_replies(replies: list[_Done]) -> None:
        """Store the replies that came back; then raise the first failure among them, if any."""
        failure = None
        for d in replies:
            workers[d.job.backend].in_flight -= 1
            if d.result is not None:
                taken.append(d)
            elif failure is None:
                failure = d.error
        if taken:
            _store(store, history, [(d.job.spec, d.job.turn, d.job.request, d.result) for d in taken if d.result])
            progress.update(len(taken))
        ok = taken[:]
        taken.clear()
        if failure is not None:
            raise failure
        for d in ok:
            enqueue(d.job.spec)

    for spec in specs:
        enqueue(spec)
    try:
        while True:
            dispatch()
            waiting = sum(pool.in_flight for pool in workers.values())
            if not waiting and not batched:
                return
            if batched and done.empty():
                _run_one_batch(batched, backends, store, history, request_for, progress, enqueue)
                continue
            try:
                first = done.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            store_replies([first] + _drain(done))
    except BaseException:
        for pool in workers.values():
            pool.stop()
        try:  # replies already received are kept (those not stored yet: a reply's turn is still the next one)
            received = [(d.job.spec, d.job.turn, d.job.request, d.result) for d in taken + _drain(done)
                        if d.result is not None and d.job.turn == len(history[d.job.spec.id])]
            if received:
                _store(store, history, received)
                progress.update(len(received))
        except Exception:  # noqa: BLE001  (e.g. the store itself failed: the first error is the one to see)
            log.exception("could not store the replies received before stopping")
        raise
    finally:
        for pool in workers.values():
            pool.stop()


def _drain(done: queue.SimpleQueue[_Done]) -> list[_Done]:
    """Every reply waiting in ``done``, without blocking."""
    out = []
    while True:
        try:
            out.append(done.get_nowait())
        except queue.Empty:
            return out


def _run_one_batch(batched: list[ConversationSpec], backends: Mapping[str, Backend], store: Store, history: History,
                   request_for: RequestFor, progress: Any, enqueue: Callable[[ConversationSpec], None]) -> None:
    """One batch (up to ``max_batch``) of ready turns for one in-process backend, taken out of ``batched``.

    Turns are grouped as :func:`run_turn_synchronous` groups them (backend, model, agent, conversation).
    """
    def key(spec: ConversationSpec) -> tuple[str, str, str, str]:
        me = spec.speaker(len(history[spec.id]))
        return me.backend, me.model, me.name, spec.id

    batched.sort(key=key)
    name = key(batched[0])[0]
    backend = backends[name]
    group = [s for s in batched if key(s)[0] == name]
    chunk = group[:batch_size(backend, len(group))]
    taken = {s.id for s in chunk}
    batched[:] = [s for s in batched if s.id not in taken]
    _generate_group(backend, [(s, request_for(s, history[s.id])) for s in chunk], store, history, progress)
    for spec in chunk:
        enqueue(spec)
