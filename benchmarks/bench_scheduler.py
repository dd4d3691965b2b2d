"""Many servers at once (issue 15): harness throughput across K servers, and a replica killed mid-run.

    python benchmarks/bench_scheduler.py [--quick] [--ks 1,2,4,8] [--latency 0.2] [--concurrency 4]
                                         [--baseline TREE] [--tree TREE] [--no-replicas] [--json OUT]

(a) K = 1, 2, 4, 8 loopback OpenAI-compatible servers written for this benchmark (``ThreadingHTTPServer``
answering ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions`` after a fixed ``--latency``, with
keep-alive; a reply is a hash of its request, so the conversations are deterministic) run in a process of
their own. The harness (``run_conversations``, one ``openai`` backend per server with ``--concurrency``,
a SQLite store on disk) runs a roster of 16 agents (``--quick``: 12), agent i on server i mod K, every pair
once on one topic, 6 turns (``--quick``: 4), in a child process whose ``teamgraph`` comes from ``--tree``
(default: this checkout). Reported per K: utterances per second and the ratio to the ideal
K x concurrency / latency; target >= 0.8 of ideal at K = 8. ``--baseline TREE`` measures another checkout
the same way first (the code before issue 15: ``git worktree add /tmp/wt_old <commit>``), reports its
figures and the speed-up, and checks that both store the same conversations (digest of every text).

(b) Two real ``llama_cpp.server`` replicas of the packaged Gemma 3 270M on 127.0.0.1 (tests/servers.py, one
thread each) behind one ``openai`` backend; the second is SIGKILLed once a third of the run's utterances
are stored. PASS when the run completes every planned conversation with all its turns and no failed turn,
and the killed replica is out of service. ``--no-replicas`` skips it (it needs llama-cpp-python[server]).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MODEL = "bench"
TARGET = 0.8  # of ideal throughput at the largest K


# -- the loopback servers (run with --serve K) -------------------------------------------------------


def _handler(latency: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server

        def setup(self) -> None:
            super().setup()
            # headers and body leave in two writes: without this, Nagle + delayed ACK add 40 ms to each reply
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "b"}]})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency)
            text = "reply " + hashlib.sha256(raw).hexdigest()[:12]
            usage = {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
            if self.path.endswith("/chat/completions"):
                self._send({"id": "c", "object": "chat.completion", "created": 0, "model": MODEL, "usage": usage,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}]})
            else:
                self._send({"id": "c", "object": "text_completion", "created": 0, "model": MODEL, "usage": usage,
                            "choices": [{"index": 0, "text": " " + text, "finish_reason": "stop", "logprobs": None}]})

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(k: int, latency: float) -> int:
    """K servers in this process; prints their base URLs as one JSON line, serves until stdin closes."""
    servers = []
    for _ in range(k):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(latency))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print(json.dumps([f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers]), flush=True)
    sys.stdin.read()
    return 0


# -- the harness (run with --measure, teamgraph from the tree on PYTHONPATH) -------------------------


def measure(urls: list[str], concurrency: int, n_agents: int, turns: int, tree: str) -> int:
    sys.path.insert(0, tree)  # before this checkout, which _common put on the path
    import teamgraph
    from teamgraph.backends.openai_compat import OpenAIBackend
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.roster import Agent, Roster
    from teamgraph.store import Store

    k = len(urls)
    roster = Roster([Agent(f"A{i:02d}", backend=f"s{i % k}", model=MODEL, format="transcript",
                           persona=f"Agent {i} argues carefully.") for i in range(n_agents)])
    settings = ConversationConfig(turns=turns, seed=0)
    specs = plan_conversations(roster, ["scheduling"], settings)
    backends = {f"s{j}": OpenAIBackend(url, concurrency=concurrency, timeout=60) for j, url in enumerate(urls)}
    with tempfile.TemporaryDirectory(prefix="tg-bench-sched-") as tmp, Store(Path(tmp) / "s.sqlite") as store:
        t0 = time.perf_counter()
        convs = run_conversations(specs, backends, store, settings, progress=False)
        seconds = time.perf_counter() - t0
    for b in backends.values():
        b.close()
    texts = [[u.text for u in c.utterances] for c in convs]
    print(json.dumps({
        "seconds": seconds, "utterances": sum(map(len, texts)), "conversations": len(convs), "planned": len(specs),
        "digest": hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16],
        "teamgraph": str(Path(teamgraph.__file__).parent.parent),
        "scheduler": "continuous" if hasattr(sys.modules.get("teamgraph.dialogue"), "scheduler") else "turn-synchronous",
    }), flush=True)
    return 0


def run_tree(tree: Path, urls: list[str], args: Any) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", json.dumps(urls), "--tree", str(tree),
           "--concurrency", str(args.concurrency), "--agents", str(args.agents), "--turns", str(args.turns)]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"harness in {tree} failed:\n{out.stderr[-2000:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(doc["teamgraph"]).resolve() != tree.resolve():
        raise RuntimeError(f"expected teamgraph from {tree}, the child imported it from {doc['teamgraph']}")
    return doc


def throughput(args: Any) -> list[C.Result]:
    ks = [int(k) for k in args.ks.split(",")]
    trees = ([("before", Path(args.baseline))] if args.baseline else []) + [("after", Path(args.tree))]
    figures: dict[str, dict[int, dict[str, Any]]] = {label: {} for label, _ in trees}
    for k in ks:
        server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(k),
                                   "--latency", str(args.latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            urls = json.loads(server.stdout.readline())
            for label, tree in trees:
                doc = run_tree(tree, urls, args)
                doc["rate"] = doc["utterances"] / doc["seconds"]
                doc["ideal"] = k * args.concurrency / args.latency
                doc["load"] = C.load_average()
                figures[label][k] = doc
                print(f"  K={k} {label} ({doc['scheduler']}): {doc['utterances']} utterances in {doc['seconds']:.2f}s = "
                      f"{doc['rate']:.1f}/s, ideal {doc['ideal']:.0f}/s, ratio {doc['rate'] / doc['ideal']:.2f}  "
                      f"[load {doc['load']}]", flush=True)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=30)
    results = []
    for label, _ in trees:
        for k, doc in figures[label].items():
            last = k == max(ks) and label == "after"
            results.append(C.result(
                f"scheduler.{label}.k{k}", f"{label}: throughput / ideal, K={k} servers x concurrency {args.concurrency}, "
                f"{args.latency:g}s each ({doc['scheduler']})", doc["rate"] / doc["ideal"], "x",
                target=TARGET if last else None, op=">=" if last else None, detail=doc,
                note=f"{doc['rate']:.1f} of {doc['ideal']:.0f} utterances/s, {doc['utterances']} utterances"))
    if args.baseline:
        for k in ks:
            before, after = figures["before"][k], figures["after"][k]
            same = before["digest"] == after["digest"] and before["utterances"] == after["utterances"]
            results.append(C.result(f"scheduler.speedup.k{k}", f"after / before throughput, K={k}",
                                    after["rate"] / before["rate"], "x", detail={"before": before, "after": after},
                                    note=f"same conversations: {'yes' if same else 'NO'}",
                                    status="INFO" if same else "MISS"))
    return results


# -- (b) real replicas, one killed --------------------------------------------------------------------


def replicas(args: Any) -> list[C.Result]:
    import importlib.util

    name, what = "scheduler.replica_killed", "two llama_cpp.server replicas, one SIGKILLed mid-run: complete conversations"
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        return [C.result(name, what, None, "", status="SKIP", note="needs llama-cpp-python[server]")]
    sys.path.insert(0, str(C.ROOT))
    from teamgraph.backends.openai_compat import OpenAIBackend
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.models import packaged_gguf_path
    from teamgraph.roster import Agent, Roster, Sampling
    from teamgraph.store import Store
    from tests.servers import GEMMA_ALIAS, _warm_up, llama_server

    n_agents, turns = (3, 4) if args.quick else (4, 4)
    settings = ConversationConfig(turns=turns, seed=0)
    roster = Roster([Agent(f"A{i}", backend="s", model=GEMMA_ALIAS, persona=f"Agent {i} is a careful mathematician.",
                           sampling=Sampling(max_tokens=16)) for i in range(n_agents)])
    specs = plan_conversations(roster, ["mathematics"], settings)
    total = len(specs) * turns
    procs: list[subprocess.Popen[bytes]] = []
    killed_at: list[int] = []
    gguf = packaged_gguf_path()
    with tempfile.TemporaryDirectory(prefix="tg-bench-replicas-") as tmp, \
            llama_server(gguf, n_threads=1, processes=procs) as first, llama_server(gguf, n_threads=1, processes=procs) as second:
        _warm_up(first)
        _warm_up(second)
        backend = OpenAIBackend([first, second], concurrency=2, timeout=120, max_retries=2, backoff=0.1)

        class KillingStore(Store):
            stored = 0

            def add_utterances(self, rows: Any) -> None:
                super().add_utterances(rows)
                self.stored += len(rows)
                if self.stored * 3 >= total and not killed_at:
                    killed_at.append(self.stored)
                    procs[1].kill()
                    procs[1].wait(timeout=10)
                    print(f"  killed replica {second} after {self.stored}/{total} stored utterances", flush=True)

        try:
            with KillingStore(Path(tmp) / "s.sqlite") as store:
                t0 = time.perf_counter()
                convs = run_conversations(specs, {"s": backend}, store, settings, progress=False)
                seconds = time.perf_counter() - t0
                rows = [u for c in convs for u in store.utterances(c.id)]
            status = backend.replica_status()
        finally:
            backend.close()
    complete = sum(len(c.utterances) == turns for c in convs)
    failed = sum(u["status"] == "error" for u in rows)
    ok = complete == len(specs) and failed == 0 and not status[1]["in_service"]
    detail = {"planned": len(specs), "turns": turns, "complete": complete, "failed_turns": failed, "seconds": seconds,
              "killed_after": killed_at, "replicas": status}
    return [C.result(name, what, complete, f"of {len(specs)}", detail=detail, status="PASS" if ok else "MISS",
                     note=f"{turns} turns each, {failed} failed turns, {seconds:.1f}s; killed after "
                          f"{killed_at[0] if killed_at else '?'}/{total} utterances; served by replica 1/2: "
                          f"{status[0]['sent']}/{status[1]['sent']} calls; replica 2 "
                          f"{'out (' + status[1]['reason'] + ')' if not status[1]['in_service'] else 'STILL IN SERVICE'}")]


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--ks", default="1,2,4,8", help="numbers of servers")
    p.add_argument("--latency", type=float, default=0.2, help="seconds each loopback server takes per request")
    p.add_argument("--concurrency", type=int, default=4, help="the openai backend's concurrency per server")
    p.add_argument("--agents", type=int, default=None, help="roster size (default 16, --quick 12)")
    p.add_argument("--turns", type=int, default=None, help="turns per conversation (default 6, --quick 4)")
    p.add_argument("--tree", default=str(C.ROOT), help="checkout whose teamgraph is measured (default: this one)")
    p.add_argument("--baseline", default=None, help="another checkout measured first, e.g. the code before issue 15")
    p.add_argument("--no-replicas", action="store_true", help="skip (b), the real llama_cpp.server replicas")
    p.add_argument("--serve", type=int, default=None, help=argparse_hidden())
    p.add_argument("--measure", default=None, help=argparse_hidden())
    args = p.parse_args()
    args.agents = args.agents or (12 if args.quick else 16)
    args.turns = args.turns or (4 if args.quick else 6)
    if args.serve is not None:
        return serve(args.serve, args.latency)
    if args.measure is not None:
        return measure(json.loads(args.measure), args.concurrency, args.agents, args.turns, args.tree)
    results = throughput(args)
    if not args.no_replicas:
        results += replicas(args)
    C.emit(results, args.json, extra={"settings": {k: v for k, v in vars(args).items() if k not in ("serve", "measure")}})
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
