"""The ``openai`` backend against a real local server, concurrency 1 vs N (issue 6).

    python benchmarks/bench_openai.py [--quick] [--concurrency 4] [--json OUT]

Starts ``python -m llama_cpp.server`` with the packaged Gemma 3 270M on 127.0.0.1 (tests/servers.py),
then runs the harness on a small roster through the ``openai`` backend (completions endpoint,
transcript prompts) with ``concurrency=1`` and with ``concurrency=N``, alternated, each on a fresh
store. Reported: generated tokens per second of each and their ratio. llama-cpp-python's server
decodes one request at a time, so N in flight can only hide the HTTP and prompt-building gaps;
an engine that batches (``vllm serve``) is where concurrency pays.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_llamacpp import roster  # noqa: E402


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="server threads (default: all cores)")
    args = p.parse_args()
    n_agents, turns = (3, 4) if args.quick else (4, 6)
    repeats = args.repeats or (1 if args.quick else 2)

    from teamgraph.backends.openai_compat import OpenAIBackend
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.models import packaged_gguf_path
    from teamgraph.store import Store
    from tests.servers import _warm_up, llama_server

    settings = ConversationConfig(turns=turns, seed=0)
    specs = plan_conversations(roster(n_agents, 48), ["mathematics"], settings)
    # The roster's model name is the server's alias for the packaged model.
    seconds: dict[int, list[float]] = {1: [], args.concurrency: []}
    tokens: dict[int, int] = {}
    texts: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp, \
            llama_server(packaged_gguf_path(), n_ctx=2048, n_threads=args.threads or os.cpu_count() or 2) as url:
        _warm_up(url)
        for r in range(repeats):
            for conc in (1, args.concurrency):
                backend = OpenAIBackend(base_url=url, concurrency=conc, timeout=120)
                with Store(Path(tmp) / f"s{conc}_{r}.sqlite") as store:
                    t0 = time.perf_counter()
                    convs = run_conversations(specs, {"local": backend}, store, settings, progress=False)
                    seconds[conc].append(time.perf_counter() - t0)
                    rows = [u for c in convs for u in store.utterances(c.id)]
                backend.close()
                tokens[conc] = sum(u["n_tokens"] or 0 for u in rows)
                texts[conc] = [u["text"] for u in rows]
                print(f"  repeat {r + 1}/{repeats}, concurrency {conc}: {seconds[conc][-1]:.2f}s, {tokens[conc]} tokens, "
                      f"load {C.load_average()}", flush=True)
    rate = {c: tokens[c] / C.median(s) for c, s in seconds.items()}
    same = sum(a == b for a, b in zip(texts[1], texts[args.concurrency]))
    n = args.concurrency
    detail = {"seconds": {str(k): v for k, v in seconds.items()}, "tokens": {str(k): v for k, v in tokens.items()},
              "conversations": len(specs), "turns": turns, "identical_replies": f"{same}/{len(texts[1])}"}
    results = [
        C.result("openai.concurrency_1", "openai backend -> llama_cpp.server, concurrency 1", rate[1], "tok/s", detail=detail),
        C.result(f"openai.concurrency_{n}", f"openai backend -> llama_cpp.server, concurrency {n}", rate[n], "tok/s",
                 detail=detail),
        C.result("openai.concurrency_speedup", f"throughput concurrency {n} / concurrency 1", rate[n] / rate[1], "x",
                 detail=detail, note=f"INFO (no target): the server decodes one request at a time; "
                                     f"same replies {same}/{len(texts[1])}"),
    ]
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
