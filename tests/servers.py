"""A real OpenAI-compatible server for tests: ``python -m llama_cpp.server`` on a free local port.

Use ``with llama_server(path) as url: ...`` or the session fixture ``gemma_server`` (import it into a
test module: ``from .servers import gemma_server``). The packaged Gemma 3 270M is served under the
model name ``gemma-3-270m``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

GEMMA_ALIAS = "gemma-3-270m"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 30) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def _models_answer(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/models", timeout=2) as response:
            json.load(response)
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def llama_server(
    model_path: str | os.PathLike[str],
    port: int | None = None,
    n_ctx: int = 1024,
    n_threads: int = 2,
    model_alias: str | None = GEMMA_ALIAS,
    startup_timeout: float = 60.0,
    processes: list[subprocess.Popen[bytes]] | None = None,
    logits_all: bool = True,
) -> Iterator[str]:
    """Run ``llama_cpp.server`` on ``model_path``; yield its base URL ``http://127.0.0.1:PORT/v1``.

    ``processes``: the server's process is appended to it (to kill it mid-test).
    ``logits_all``: the server's own default, which logprobs need. False makes it compute what an
    in-process ``Llama()`` computes (the last layer for the last position only): the two differ in
    the last digits, enough to flip a near-tied greedy token on some CPUs (seen in CI, 2026-12-02)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
        "--verbose", "False", "--logits_all", str(logits_all),
    ]
    if model_alias:
        cmd += ["--model_alias", model_alias]
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if processes is not None:
            processes.append(proc)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _models_answer(url):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited with code {proc.returncode} before answering:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama_cpp.server did not answer {url}/models within {startup_timeout:g}s:\n{_tail(log_path)}"
                    )
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gemma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real llama.cpp server running the packaged Gemma 3 270M (model ``gemma-3-270m``)."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs llama-cpp-python[server]: pip install 'teamgraph[local]'")
    from teamgraph.models import packaged_gguf_path

    gguf = packaged_gguf_path(tmp_path_factory.mktemp("gguf"))
    with llama_server(gguf) as url:
        _warm_up(url)
        yield url


def _warm_up(url: str) -> None:
    """One throwaway completion: the first reply after start-up can differ from later ones for the same seed."""
    body = json.dumps({"model": GEMMA_ALIAS, "prompt": "Ada: Hello.\nBob:", "max_tokens": 4, "seed": 0}).encode()
    request = urllib.request.Request(url + "/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
