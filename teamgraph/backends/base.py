"""The one small protocol every model backend implements.

Backends are the only code that talks to models. The harness hands a backend a list of requests
(many at once, so batching or concurrent backends are fed well) and gets one result per request,
in the same order. A reply that comes back empty, or a request the model refuses, is a result
with ``status`` ``empty`` or ``error``; a backend that cannot work at all (unreachable URL, unknown
model) raises ``BackendError`` naming the agent and where it looked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

from teamgraph.errors import RequestFailed

T = TypeVar("T")

__all__ = ["GenerationRequest", "GenerationResult", "ScoreRequest", "OptionScorer", "ContinuationScorer",
           "TOP_LOGPROBS", "options_from_top", "Backend", "ConcurrentBackend"]


@dataclass(frozen=True)
class GenerationRequest:
    """One utterance to generate: either a transcript ``prompt`` or chat ``messages``."""

    agent: str
    model: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    max_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    repeat_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a GenerationRequest needs exactly one of prompt or messages")


@dataclass(frozen=True)
class GenerationResult:
    """What came back: ``status`` is ``ok``, ``empty`` (blank reply) or ``error`` (with ``error``)."""

    text: str
    status: str = "ok"
    error: str | None = None
    n_tokens: int | None = None
    seconds: float | None = None

    @classmethod
    def from_text(cls, text: str | None, n_tokens: int | None = None, seconds: float | None = None) -> "GenerationResult":
        clean = (text or "").strip()
        return cls(clean, "ok" if clean else "empty", None, n_tokens, seconds)

    @classmethod
    def failed(cls, error: str, seconds: float | None = None) -> "GenerationResult":
        return cls("", "error", error, None, seconds)


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probabilities of each option's first token right after ``prompt`` (one forward pass, no sampling)."""

    agent: str
    model: str
    prompt: str
    options: tuple[str, ...]


@runtime_checkable
class OptionScorer(Protocol):
    """What a backend offers when it can read next-token log-probabilities (likelihood scoring).

    ``option_logprobs`` returns, per request, option -> log-probability of that option's first token
    at the position after the prompt (normalised over the whole vocabulary; ``-inf`` for an option a
    remote server did not list among its top tokens).
    """

    def option_logprobs(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Per request, in order: option -> log-probability of its first token after the prompt."""
        ...


@runtime_checkable
class ContinuationScorer(Protocol):
    """What a backend offers when it can score whole continuations (cloze scoring)."""

    def continuation_logprobs(self, agent: str, model: str, prompt: str,
                              continuations: Sequence[str]) -> list[tuple[float, int]]:
        """(sum of token log-probabilities, number of tokens) of each continuation after ``prompt``."""
        ...


#: How many top next tokens a remote backend asks for when it scores options (vLLM's default limit, and
#: OpenAI's): an option letter outside them gets -inf.
TOP_LOGPROBS = 20


def options_from_top(top: Mapping[str, float], options: Sequence[str], agent: str) -> dict[str, float]:
    """Option -> log-probability from a server's top next tokens (token text -> log-probability).

    A token counts for an option when its text, stripped of spaces, is the option (" A" and "A" are
    different tokens; the more probable one is taken). Options not among the top tokens get ``-inf``.
    No option at all among them: RequestFailed (the item abstains).
    """
    found: dict[str, float] = {}
    for text, logprob in top.items():
        key = str(text).strip()
        if key in options and logprob is not None:
            found[key] = max(found.get(key, -math.inf), float(logprob))
    if not found:
        raise RequestFailed(f"agent {agent}: none of the options {', '.join(options)} is among the "
                           f"{len(top)} most probable next tokens")
    return {o: found.get(o, -math.inf) for o in options}


@runtime_checkable
class Backend(Protocol):
    """``generate`` returns one result per request, in order; ``describe`` feeds cache keys."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in request order: a request that fails alone comes back with status
        ``error``; BackendError when the backend itself fails (unreachable, unknown model)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What determines outputs (type, model files, endpoint): part of every cache key. No secrets."""
        ...

    def close(self) -> None:
        """Release models, engines and connections; the backend is not used afterwards."""
        ...


@runtime_checkable
class ConcurrentBackend(Protocol):
    """A remote backend the harness may call from many threads at once (continuous scheduling).

    ``generate_one`` is thread-safe and blocks for one request; the harness keeps up to
    ``max_in_flight`` of them running and stores each reply as soon as it returns (see
    :mod:`teamgraph.scheduler`). In-process engines do not offer it: they get whole batches.
    """

    @property
    def max_in_flight(self) -> int:
        """How many ``generate_one`` calls the harness may have running at once."""
        ...

    def generate_one(self, request: GenerationRequest) -> GenerationResult:
        """One result for one request (status ``error`` when it fails alone); BackendError when the backend
        itself fails. Safe to call from several threads at once."""
        ...


def batch_size(backend: Backend, n: int) -> int:
    """How many of ``n`` waiting requests go in one ``generate`` call: the backend's ``max_batch`` (absent
    or None: any batch, so all of them; at least 1)."""
    return getattr(backend, "max_batch", None) or max(1, n)


def generate_in_batches(backend: Backend, items: Sequence[T],
                        request: Callable[[T], GenerationRequest]) -> Iterator[tuple[list[T], list[GenerationResult]]]:
    """``items``' requests sent to ``backend`` in chunks of :func:`batch_size`.

    Yields each chunk with its results, in order, as the backend returns it, so the caller stores one
    chunk before the next is asked (an interrupted run keeps what came back). A backend that returns
    another number of results than it was asked for is a RuntimeError.
    """
    step = batch_size(backend, len(items))
    for start in range(0, len(items), step):
        chunk = list(items[start:start + step])
        results = backend.generate([request(x) for x in chunk])
        if len(results) != len(chunk):
            raise RuntimeError(f"backend returned {len(results)} results for {len(chunk)} requests")
        yield chunk, list(results)
