"""The ``openai`` backend: any OpenAI-compatible server (OpenAI, vLLM serve, llama.cpp server, ...).

Transcript requests go to ``/v1/completions``, chat requests to ``/v1/chat/completions``. Requests
run concurrently on a thread pool. Retries are ours and visible: 429, 5xx, timeouts, connection
errors and 200 answers whose JSON body does not parse are retried with exponential backoff and a
warning per retry; when retries run out the run stops with a ``BackendError`` (nothing half-done
is stored, so the next run resumes). The API key comes from an
environment variable and is never shown in ``describe()``, ``repr``, log lines or error messages; nor is a
password or key written into ``base_url`` (``https://user:password@host/v1``, ``...?api_key=...``): the URL
is shown, logged and hashed into cache keys as ``redact_url`` leaves it.

Replicas: ``base_url`` may list several servers that serve the same models. Each request goes to the
least-loaded replica in service (at most ``concurrency`` in flight on each); a replica that refuses
connections (or drops them) is taken out at once, one that fails ``REPLICA_FAILURES`` calls in a row
(timeouts, 429, 5xx) after those, and the request moves on to another replica. A replica taken out is
tried again by one real request after ``probe_interval`` seconds (doubled after each failed probe, up
to ``MAX_PROBE_INTERVAL``). When every replica is out the run stops with a ``BackendError`` naming
them; the next run resumes. The first URL identifies the backend in cache keys (replicas serve the
same weights), so adding or removing replicas after it keeps every stored reply.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import openai

from ..errors import BackendError, ConfigError, RequestFailed
from .base import TOP_LOGPROBS, GenerationRequest, GenerationResult, ScoreRequest, options_from_top

__all__ = ["redact_url", "url_secrets", "OpenAIBackend"]

log = logging.getLogger("teamgraph.backends.openai")

T = TypeVar("T")

_NO_KEY = "EMPTY"  # local servers (llama.cpp, vLLM) accept any key
_MAX_LISTED = 8  # served models named in an error message
#: Retryable failures in a row (timeouts, 429, 5xx, bad bodies) after which a replica is taken out.
REPLICA_FAILURES = 3
#: The longest wait, in seconds, before a replica taken out is tried again.
MAX_PROBE_INTERVAL = 300.0


class _Retryable(Exception):
    """One attempt failed in a way worth retrying; ``reason`` is a short phrase for the log."""

    def __init__(self, reason: str, unreachable: bool, retry_after: float | None = None, refused: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.retry_after = retry_after  # the server's Retry-After, in seconds, when it sent one
        self.refused = refused  # no connection at all, or one dropped (not a timeout): a replica is taken out at once


#: Query parameters shown as they are; every other value in a base_url's query is redacted.
_PUBLIC_QUERY = frozenset({"api-version", "api_version", "version", "model", "deployment"})
_REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` without credentials: user and password, query values (but ``api-version`` and the like)
    and any fragment become ``***``. ``http://u:pw@h:8000/v1?key=sk-1`` -> ``http://***@h:8000/v1?key=***``.
    A URL with none of these is returned unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (e.g. a broken IPv6 host): cut everything that may hold a secret
        url = re.sub(r"//[^/?#]*@", f"//{_REDACTED}@", url)
        return re.sub(r"[?#].*", f"?{_REDACTED}", url, flags=re.S)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    pairs = []
    for pair in parts.query.split("&"):
        key, eq, value = pair.partition("=")
        if pair:
            pairs.append(pair if eq and key.lower() in _PUBLIC_QUERY else f"{key}={_REDACTED}" if eq else _REDACTED)
    fragment = _REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), fragment))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that ``redact_url`` hides (raw and percent-decoded), longest first: to
    scrub them from free text such as a client's error message."""
    found: set[str] = set()
    userinfo = re.search(r"//([^/?#]*)@", url)
    if userinfo:
        user, colon, password = userinfo.group(1).partition(":")
        found.update([userinfo.group(1), password] if colon else [user])  # a lone user part may be a token
    tail = re.search(r"[?#](.*)", url, flags=re.S)
    if tail:
        for pair in re.split(r"[&#]", tail.group(1)):
            key, eq, value = pair.partition("=")
            if not eq:
                found.add(key)
            elif key.lower() not in _PUBLIC_QUERY:
                found.add(value)
    found |= {unquote(f) for f in found}
    return sorted((f for f in found if len(f) >= 4), key=len, reverse=True)  # shorter ones hide no secret


class _LogScrubber(logging.Filter):
    """Hides URL secrets in the records of the HTTP client's loggers (httpx logs each request's URL at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: list[str] = []

    def add(self, secrets: Sequence[str]) -> None:
        with self._lock:
            self._secrets = sorted(set(self._secrets) | set(secrets), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001  (a malformed record: logging reports it, a filter must not raise)
                return True
            scrubbed = _replace_all(message, self._secrets)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


def _replace_all(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


_LOG_SCRUBBER = _LogScrubber()
for _logger in ("httpx", "httpx2", "openai._base_client"):  # the HTTP client logs each request URL at INFO
    logging.getLogger(_logger).addFilter(_LOG_SCRUBBER)
del _logger


class _Replica:
    """One server of a backend: its client, its load and its health (in service, or out until a time)."""

    def __init__(self, url: str, key: str, timeout: float):
        self.url = url  # what the client uses; credentials in it stay here
        self.base_url = redact_url(url)  # what is shown and logged
        self.secrets = url_secrets(url)
        self.client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=timeout)
        self.in_flight = 0
        self.sent = 0  # calls started on it, all told
        self.failures = 0  # retryable failures in a row
        self.out_until: float | None = None  # time.monotonic() after which it may be probed; None: in service
        self.out_for = 0.0  # the current wait before a probe (doubles after each failed probe)
        self.probing = False  # one request is trying it again
        self.reason = ""  # why it was last taken out


class OpenAIBackend:
    """Generate through an OpenAI-compatible HTTP endpoint (``base_url`` ends in ``/v1``).

    ``base_url`` may be a list of replicas serving the same models (see the module docstring);
    ``concurrency`` is per replica, ``probe_interval`` the seconds before a replica taken out is tried
    again.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        probe_interval: float = 30.0,
    ):
        if concurrency < 1:
            raise ConfigError("concurrency", f"must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise ConfigError("max_retries", f"must be 0 or more, got {max_retries}")
        if not probe_interval > 0:
            raise ConfigError("probe_interval", f"must be > 0, got {probe_interval}")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise ConfigError("base_url", "expected a URL or a non-empty list of URLs")
        urls = [u.rstrip("/") for u in urls]
        if len(set(urls)) < len(urls):
            raise ConfigError("base_url", "lists the same URL twice")
        self._url = urls[0]  # what the client uses; credentials in it stay here
        self.base_url = redact_url(self._url)  # what is shown, logged and hashed into cache keys
        self.base_urls = [redact_url(u) for u in urls]  # every replica, as shown
        self._secrets = sorted({x for u in urls for x in url_secrets(u)}, key=len, reverse=True)
        _LOG_SCRUBBER.add(self._secrets)
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.probe_interval = probe_interval
        if api_key_env is None:
            key = _NO_KEY
        else:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ConfigError("api_key_env", f"environment variable {api_key_env} is not set")
        self._key = key
        self._replicas = [_Replica(u, key, timeout) for u in urls]
        self._client = self._replicas[0].client
        self._health = threading.Condition()  # guards every replica's load and health

    @property
    def max_batch(self) -> int:
        """Requests per harness call: enough to keep every slot busy, few enough to store replies often."""
        return 4 * self.max_in_flight

    @property
    def max_in_flight(self) -> int:
        """Requests the harness keeps running at once: ``concurrency`` per replica."""
        return self.concurrency * len(self._replicas)

    def __repr__(self) -> str:
        shown = self.base_url if len(self.base_urls) == 1 else self.base_urls
        return (
            f"OpenAIBackend(base_url={shown!r}, api_key_env={self.api_key_env!r}, "
            f"concurrency={self.concurrency}, timeout={self.timeout}, max_retries={self.max_retries})"
        )

    def describe(self) -> dict[str, Any]:
        """Type and endpoint (part of cache keys; the first replica's URL); never the key."""
        return {"type": "openai", "base_url": self.base_url}

    def replica_status(self) -> list[dict[str, Any]]:
        """Per replica, in the order given: ``base_url``, ``in_service``, ``in_flight``, ``sent`` (calls
        started on it), ``failures`` (in a row) and ``reason`` (why it was last taken out, or "")."""
        with self._health:
            return [{"base_url": r.base_url, "in_service": r.out_until is None, "in_flight": r.in_flight,
                     "sent": r.sent, "failures": r.failures, "reason": r.reason} for r in self._replicas]

    def close(self) -> None:
        """Close the HTTP clients."""
        for replica in self._replicas:
            replica.client.close()

    # -- generation --------------------------------------------------------------------------

    def generate_one(self, request: GenerationRequest) -> GenerationResult:
        """One result for one request; thread-safe (the harness calls it from ``max_in_flight`` threads)."""
        return self._generate_one(request)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in request order; at most ``max_in_flight`` calls in flight."""
        if not requests:
            return []
        if self.max_in_flight == 1 or len(requests) == 1:
            return [self._generate_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_in_flight, len(requests))) as pool:
            futures: list[Future[GenerationResult]] = [pool.submit(self._generate_one, r) for r in requests]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:  # a fatal error (unreachable, unknown model) stops what has not started
                    f.cancel()
                raise

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        start = time.perf_counter()
        try:
            response = self._with_retries(request.agent, request.model, lambda client: self._create(client, request))
        except _Failed as failed:
            return GenerationResult.failed(failed.message, seconds=time.perf_counter() - start)
        seconds = time.perf_counter() - start
        choice = response.choices[0] if response.choices else None
        if choice is None:
            text = None
        elif request.messages is not None:
            text = choice.message.content
        else:
            text = choice.text
        usage = getattr(response, "usage", None)
        n_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
        return GenerationResult.from_text(text, n_tokens=n_tokens, seconds=seconds)

    def _create(self, client: openai.OpenAI, request: GenerationRequest) -> Any:
        """One HTTP call, no retries: ``/chat/completions`` for messages, ``/completions`` for a prompt."""
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        extra_body = dict(request.extra)
        if request.repeat_penalty is not None:
            extra_body["repeat_penalty"] = request.repeat_penalty
        if extra_body:
            kwargs["extra_body"] = extra_body
        if request.messages is not None:
            return client.chat.completions.create(messages=[dict(m) for m in request.messages], **kwargs)
        return client.completions.create(prompt=request.prompt, **kwargs)

    # -- likelihood scoring ------------------------------------------------------------------

    def option_logprobs(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Option -> log-probability of its first token after the prompt, from ``/v1/completions``.

        One call per request: one greedy token with ``logprobs`` = ``TOP_LOGPROBS`` (the top next tokens
        and their log-probabilities, as vLLM and llama_cpp.server return them); an option outside those
        gets -inf (``options_from_top``). A server that returns no log-probabilities at all: BackendError;
        none for one prompt (llama_cpp.server, when the most probable next token ends the text): that item
        abstains.
        """
        def one(req: ScoreRequest) -> dict[str, float]:
            def call(client: openai.OpenAI) -> Any:
                # llama_cpp.server applies its default repeat_penalty (1.1) to the logits it reports: turn it off
                # (vLLM ignores the unknown field)
                return client.completions.create(model=req.model, prompt=req.prompt, max_tokens=1,
                                                       temperature=0.0, logprobs=TOP_LOGPROBS,
                                                       extra_body={"repeat_penalty": 1.0})
            try:
                response = self._with_retries(req.agent, req.model, call)
            except _Failed as failed:
                raise RequestFailed(f"agent {req.agent}: {failed.message}") from None
            logprobs = response.choices[0].logprobs if response.choices else None
            top = (getattr(logprobs, "top_logprobs", None) or [None])[0] if logprobs is not None else None
            if logprobs is None:
                raise BackendError(f"agent {req.agent}: {self.base_url} returns no log-probabilities for "
                                   f"{req.model}; use generation scoring")
            if not top:  # e.g. llama_cpp.server when the most probable next token ends the text
                raise RequestFailed(f"agent {req.agent}: no next-token log-probabilities (the reply was "
                                    f"{response.choices[0].finish_reason or 'empty'}); this item abstains")
            return options_from_top(top, req.options, req.agent)

        if self.max_in_flight == 1 or len(requests) <= 1:
            return [one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_in_flight, len(requests))) as pool:
            return list(pool.map(one, requests))

    # -- preflight ---------------------------------------------------------------------------

    def check(self, models: Sequence[tuple[str, str]]) -> None:
        """Preflight: every replica answers and serves every ``(agent, model)``; else ``BackendError``
        naming the replica (and the agent and model)."""
        if not models:
            return
        first_agent = models[0][0]
        for n, replica in enumerate(self._replicas, 1):
            try:
                page = self._with_retries(first_agent, None, lambda client: client.models.list(), pinned=replica)
            except _Failed as failed:
                raise BackendError(f"agent {first_agent}: {failed.message}") from None
            served = sorted(m.id for m in page.data)
            which = "" if len(self._replicas) == 1 else f" (replica {n} of {len(self._replicas)})"
            for agent, model in models:
                if model not in served:
                    listed = ", ".join(served[:_MAX_LISTED]) or "none"
                    if len(served) > _MAX_LISTED:
                        listed += f", ... ({len(served) - _MAX_LISTED} more)"
                    raise BackendError(f"agent {agent}: model '{model}' is not served by {replica.base_url}{which} "
                                       f"(served: {listed})")

    # -- errors and retries ------------------------------------------------------------------

    def _with_retries(self, agent: str, model: str | None, call: Callable[[openai.OpenAI], T],
                      pinned: _Replica | None = None) -> T:
        """Run ``call`` on a replica's client (``pinned``, else the least-loaded one in service), retrying
        429/5xx/timeouts/connection errors with exponential backoff. A retry after a replica was taken out
        goes to another one at once and does not count as an attempt."""
        attempts = self.max_retries + 1
        attempt = 1
        while True:
            replica = pinned or self._acquire(agent)
            try:
                result = self._classify(agent, model, replica, lambda: call(replica.client))
            except _Retryable as problem:
                if pinned is None and self._release(replica, problem) and self._any_left():
                    continue
                if attempt == attempts:
                    # Fatal, not a failed turn: the run stops and a later run resumes these requests.
                    if problem.unreachable:
                        raise BackendError(f"agent {agent}: cannot reach {replica.base_url} ({problem.reason})") from None
                    raise BackendError(f"agent {agent}: HTTP {problem.reason} from {replica.base_url} "
                                       f"after {attempts} attempts; run again later to resume") from None
                delay = max(self.backoff * 2 ** (attempt - 1), problem.retry_after or 0.0)
                log.warning(
                    "agent %s: %s from %s, retry %d/%d in %.1fs",
                    agent, problem.reason, replica.base_url, attempt, self.max_retries, delay,
                )
                time.sleep(delay)
                attempt += 1
            except BaseException:  # the server answered (a failed request, 401, 404) or we were interrupted
                if pinned is None:
                    self._release(replica, None)
                raise
            else:
                if pinned is None:
                    self._release(replica, None)
                return result

    # -- replicas ----------------------------------------------------------------------------

    def _acquire(self, agent: str) -> _Replica:
        """The least-loaded replica in service with a free slot (waits for one); a replica whose time out
        has passed takes one probing request. BackendError when every replica is out."""
        with self._health:
            while True:
                now = time.monotonic()
                usable = [r for r in self._replicas
                          if r.out_until is None or (now >= r.out_until and not r.probing)]
                free = [r for r in usable if r.in_flight < self.concurrency]
                if free:
                    # a replica whose time out has passed first (the probe), then the least loaded
                    replica = min(free, key=lambda r: (r.out_until is None, r.in_flight, r.sent))
                    if replica.out_until is not None:
                        replica.probing = True
                        log.info("probing replica %s again", replica.base_url)
                    replica.in_flight += 1
                    replica.sent += 1
                    return replica
                if not self._any_left():
                    gone = "; ".join(f"{r.base_url} ({r.reason})" for r in self._replicas)
                    raise BackendError(f"agent {agent}: every replica is out: {gone}; run again later to resume")
                self._health.wait(timeout=0.5)  # a slot frees, or a replica's time out passes

    def _any_left(self) -> bool:
        """Some replica is in service or being probed (call with ``_health`` held, or accept a stale answer)."""
        return any(r.out_until is None or r.probing for r in self._replicas)

    def _release(self, replica: _Replica, problem: _Retryable | None) -> bool:
        """Book the end of a call on ``replica`` (``problem``: the retryable failure, None: it answered);
        True when the replica is out of service now. With one replica nothing is ever taken out: its
        retries decide."""
        with self._health:
            replica.in_flight -= 1
            was_probing, replica.probing = replica.probing, False
            self._health.notify_all()
            if problem is None:
                replica.failures = 0
                if replica.out_until is not None:
                    replica.out_until, replica.out_for, replica.reason = None, 0.0, ""
                    log.info("replica %s is back in service", replica.base_url)
                return False
            replica.failures += 1
            if len(self._replicas) == 1:
                return False
            if replica.out_until is not None and not was_probing:
                return True  # already taken out by another request
            if was_probing or problem.refused or replica.failures >= REPLICA_FAILURES:
                replica.out_for = min(replica.out_for * 2, MAX_PROBE_INTERVAL) if was_probing else self.probe_interval
                replica.out_until = time.monotonic() + replica.out_for
                replica.reason = problem.reason if replica.failures == 1 else f"{problem.reason}, {replica.failures} in a row"
                left = sum(r.out_until is None for r in self._replicas)
                log.warning("replica %s taken out (%s); %d of %d left; trying it again in %gs",
                            replica.base_url, replica.reason, left, len(self._replicas), replica.out_for)
                return True
            return False

    def _classify(self, agent: str, model: str | None, replica: _Replica, call: Callable[[], T]) -> T:
        """Turn the client's exceptions into ours: retryable, fatal ``BackendError`` or a failed request."""
        base_url = replica.base_url
        try:
            result = call()
        except openai.APITimeoutError:
            raise _Retryable(f"timed out after {self.timeout:g}s", unreachable=True) from None
        except openai.APIConnectionError as exc:
            raise _Retryable(_connection_reason(exc, self._scrub), unreachable=True, refused=True) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status == 429 or status >= 500:
                raise _Retryable(str(status), unreachable=False, retry_after=_retry_after(exc)) from None
            if status in (401, 403):
                if self.api_key_env is None:
                    raise BackendError(
                        f"agent {agent}: {base_url} refused the request (HTTP {status}); "
                        "it needs an API key: set api_key_env"
                    ) from None
                raise BackendError(
                    f"agent {agent}: the API key in environment variable {self.api_key_env} "
                    f"was rejected by {base_url} (HTTP {status})"
                ) from None
            if status == 404:
                what = f"model '{model}'" if model else "the models list"
                raise BackendError(
                    f"agent {agent}: {what} not found at {base_url} (HTTP 404; check the model name "
                    "and that the URL ends in /v1)"
                ) from None
            raise _Failed(f"HTTP {status} from {base_url}: {self._scrub(_body_message(exc))}") from None
        except json.JSONDecodeError:  # a 200 whose JSON body does not parse (corrupted on the way): transient
            raise _Retryable("200 with a body that is not JSON", unreachable=False) from None
        except openai.APIError as exc:  # e.g. a response that does not parse
            raise _Failed(f"bad response from {base_url}: {self._scrub(str(exc))}") from None
        if isinstance(result, (str, bytes)):  # a 200 that is not JSON at all (e.g. text/html from a proxy)
            raise _Retryable("200 with a body that is not JSON", unreachable=False)
        return result

    def _scrub(self, text: str) -> str:
        """Servers may echo the key (or the URL with its credentials) back in an error body: never pass it on."""
        if self._key and self._key != _NO_KEY:
            text = text.replace(self._key, _REDACTED)
        for replica in self._replicas:
            text = text.replace(replica.url, replica.base_url)
        text = _replace_all(text, self._secrets)
        return " ".join(text.split())[:300]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a ``Retry-After: N`` header (capped at 60; an HTTP date or junk is ignored)."""
    try:
        value = float(exc.response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(value, 0.0), 60.0) if value == value else None


class _Failed(Exception):
    """This request failed for good, but the run can go on: it becomes a ``GenerationResult.failed``."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _connection_reason(exc: openai.APIConnectionError, scrub: Callable[[str], str] = str) -> str:
    """A short phrase for why a connection failed (``connection refused``, ...); ``scrub`` hides credentials
    in the client's own words before they are cut short (a cut could leave part of a secret)."""
    cause = exc.__cause__
    text = str(cause or exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    return f"connection error: {' '.join(scrub(str(cause or exc)).split())[:120]}"


def _body_message(exc: openai.APIStatusError) -> str:
    """The server's error message when the body has one, else the client's."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(exc)
