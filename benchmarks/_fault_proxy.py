"""A fault-injecting HTTP proxy for the ``faults`` benchmark (issue 12): standard library only.

    with FaultProxy("http://127.0.0.1:8000", rate=0.3, seed=0, client_timeout=10) as proxy:
        url = proxy.url                      # http://127.0.0.1:PORT/v1, give it to the openai backend
        ...
        proxy.set_mode("fail")               # every call fails from now on; "forward": none does
        proxy.stats()                        # calls, forwarded, faults by kind, Retry-After gaps

It listens on 127.0.0.1 (``ThreadingHTTPServer``, HTTP/1.1 keep-alive like the real server) and forwards
each request unchanged to ``upstream`` with ``http.client``, except the ones it faults. In mode ``mix``
a seeded ``rate`` of the calls fails, stratified: exactly ``rate * 10`` of every 10 calls in arrival
order (of every 100 where ``rate * 10`` is not whole), at seeded places in each block; which kind comes
from a seeded deck of ``kinds``, reshuffled each time it runs out, so every kind occurs once in each
``len(kinds)`` consecutive faults. Decisions are drawn in arrival order, so a client that sends one
request at a time sees the same faults on every run with the same seed (as long as it retries only
the faults: a call it abandons on its own timeout shifts the sequence). A call whose client has gone
when its answer is ready (the client's own timeout) is counted as ``client_gone``. ``GET /v1/models`` is always forwarded (``fault_models=True`` faults it too),
so a client's preflight passes and the faults land on the generation calls.

Fault kinds (all on a call the client sent in full):

``http_500``, ``http_503``
    that status with an OpenAI-style JSON error body; not forwarded.
``http_429``
    429 with ``Retry-After: <retry_after>`` seconds and a JSON error body; not forwarded.
``timeout``
    nothing is sent back for ``client_timeout + hold_margin`` seconds, then the connection is closed;
    not forwarded (the client must give up on its own read timeout).
``reset``
    the connection is closed abruptly (``SO_LINGER`` 0: the client gets a TCP RST, no response).
``malformed``
    forwarded; the real answer comes back as 200 ``application/json`` with its first key unquoted,
    so the body no longer parses (the client must not take it for an answer).
``truncated``
    forwarded; the real answer's headers (with its full ``Content-Length``) and the first half of its
    body are sent, then the connection is closed: a reply cut off mid-body.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

KINDS = ("http_500", "http_503", "http_429", "timeout", "reset", "malformed", "truncated")
MODES = ("mix", "fail", "forward")
# Not passed on either way: hop-by-hop headers, and the body's framing, which the proxy sets itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "host", "accept-encoding"}


class FaultProxy:
    """Forward to ``upstream`` (``http://host:port``, with or without ``/v1``), faulting some calls."""

    def __init__(self, upstream: str, rate: float = 0.3, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 client_timeout: float = 10.0, hold_margin: float = 2.0, retry_after: float = 1.0,
                 fault_models: bool = False, upstream_timeout: float = 300.0, mode: str = "mix"):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"unknown fault kinds {unknown} (choose from {', '.join(KINDS)})")
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rate, self.kinds = rate, tuple(kinds)
        self.hold_s = client_timeout + hold_margin
        self.retry_after = retry_after
        self.fault_models = fault_models
        self.upstream_timeout = upstream_timeout
        self._rng = random.Random(seed)
        self._deck: list[str] = []
        self._block: list[bool] = []  # the rest of the current block: True = fault this call
        tenths = rate * 10
        self._block_size = 10 if abs(tenths - round(tenths)) < 1e-9 else 100
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.mode = "mix"
        self.set_mode(mode)
        self.fail_kinds = tuple(k for k in self.kinds if k != "timeout") or self.kinds
        self.calls: Counter[str] = Counter()       # path -> requests received
        self.forwarded: Counter[str] = Counter()   # path -> answered with the upstream's answer, unchanged
        self.faults: Counter[str] = Counter()      # kind -> injected
        self.client_gone = 0                       # forwarded, but the client had given up (its timeout)
        self.events: list[dict[str, Any]] = []     # one per request: time, path, body hash, outcome
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------

    def set_mode(self, mode: str, kinds: tuple[str, ...] | None = None) -> None:
        """``mix``: a seeded ``rate`` of calls fails; ``fail``: every call fails (with ``kinds``, by default
        all but ``timeout``, which would only make the client wait); ``forward``: none fails."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        with self._lock:
            self.mode = mode
            if kinds is not None:
                self.fail_kinds = tuple(kinds)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()  # releases held (timeout) connections at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.forwarded.clear()
            self.faults.clear()
            self.events.clear()
            self.client_gone = 0

    def stats(self) -> dict[str, Any]:
        """Counters so far, and for each 429 the seconds until the same request body came back."""
        with self._lock:
            events = list(self.events)
            out = {"calls": dict(self.calls), "forwarded": dict(self.forwarded),
                   "faults": {k: self.faults.get(k, 0) for k in KINDS}, "client_gone": self.client_gone}
        out["retry_after_gaps_s"] = _gaps_after(events, "http_429")
        out["events"] = len(events)
        return out

    # -- decisions -------------------------------------------------------------------------

    def _decide(self, path: str) -> str | None:
        """The fault for this call, or None to forward it."""
        if path.rstrip("/").endswith("/models") and not self.fault_models:
            return None
        with self._lock:
            if self.mode == "forward":
                return None
            if self.mode == "fail":
                return self._rng.choice(self.fail_kinds)
            if not self._block:
                n = self._block_size
                chosen = set(self._rng.sample(range(n), round(self.rate * n)))
                self._block = [i in chosen for i in range(n)]
            if not self._block.pop(0):
                return None
            if not self._deck:
                self._deck = list(self.kinds)
                self._rng.shuffle(self._deck)
            return self._deck.pop()

    def _note(self, path: str, digest: str, outcome: str, start: float, forwarded: bool) -> None:
        with self._lock:
            self.events.append({"t0": start, "t1": time.monotonic(), "path": path, "body": digest, "outcome": outcome})
            if outcome == "client_gone":
                self.client_gone += 1
            elif forwarded:
                self.forwarded[path] += 1
            elif outcome in KINDS:
                self.faults[outcome] += 1

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout)
        try:
            conn.request(method, path, body=body if body else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
            return response.status, response.reason, kept, data
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server: every answer carries Content-Length

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        proxy = self.owner
        start = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        digest = hashlib.sha256(body).hexdigest()[:16]
        with proxy._lock:
            proxy.calls[path] += 1
        kind = proxy._decide(path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Connection"] = "close"  # one upstream connection per call

        if kind in ("http_500", "http_503", "http_429"):
            status = int(kind[-3:])
            extra = {"Retry-After": _num(proxy.retry_after)} if status == 429 else {}
            self._reply(status, [("Content-Type", "application/json"), *extra.items()],
                        json.dumps({"error": {"message": f"injected {kind}", "type": "server_error",
                                              "code": status}}).encode())
            proxy._note(path, digest, kind, start, forwarded=False)
            return
        if kind == "timeout":
            proxy._stop.wait(proxy.hold_s)  # say nothing for longer than the client waits
            self.close_connection = True
            proxy._note(path, digest, kind, start, forwarded=False)
            return
        if kind == "reset":
            self._abort()
            proxy._note(path, digest, kind, start, forwarded=False)
            return

        try:
            status, reason, kept, data = proxy._forward(method, path, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            self._reply(502, [("Content-Type", "application/json")],
                        json.dumps({"error": {"message": f"proxy: upstream failed: {exc}"}}).encode())
            proxy._note(path, digest, "upstream_error", start, forwarded=False)
            return
        try:
            if kind == "malformed":
                self._reply(status, kept, _malform(data))
            elif kind == "truncated":
                self.send_response(status)
                for k, v in kept:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._abort(rst=False)
            else:
                self._reply(status, kept, data)
        except OSError:  # BrokenPipe / ConnectionReset: the client gave up waiting (its own timeout)
            self.close_connection = True
            proxy._note(path, digest, "client_gone", start, forwarded=False)
            return
        proxy._note(path, digest, kind or f"forwarded_{status}", start, forwarded=kind is None)

    def _reply(self, status: int, headers: list, data: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _abort(self, rst: bool = True) -> None:
        """Drop the connection now: with ``rst``, a TCP reset (SO_LINGER 0) rather than an orderly close."""
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass


def _malform(data: bytes) -> bytes:
    """The body with its first JSON key unquoted (``{id: ...``): no longer JSON, still looks like it."""
    text = data.decode("utf-8", "replace")
    start = text.find('"')
    end = text.find('"', start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return b"{not json" + data
    return (text[:start] + text[start + 1:end] + text[end + 1:]).encode()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _gaps_after(events: list[dict[str, Any]], kind: str) -> list[float]:
    """For each ``kind`` fault, seconds from its answer to the next request with the same body."""
    gaps = []
    for i, e in enumerate(events):
        if e["outcome"] != kind:
            continue
        later = [f["t0"] for f in events if f["body"] == e["body"] and f["t0"] >= e["t1"]]
        if later:
            gaps.append(round(min(later) - e["t1"], 3))
    return gaps
