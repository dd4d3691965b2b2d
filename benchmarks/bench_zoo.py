"""Generation speed of each zoo model through teamgraph's llama.cpp backend, side by side (issue 10).

    python benchmarks/bench_zoo.py [--quick] [--models NAME,NAME] [--threads N] [--json OUT]

Each installed zoo model (default: the three of the `make run` demo) answers the same persona-primed
requests in its own prompt format (chat for instruction models, transcript for the base model), with
the sampling of the demo and a token budget long enough to time decoding (no stop at the newline for the base model). Reported per model:
generated tokens per second of wall time (prompt evaluation included, as in a run), and the ratio to
the speed the registry records for `teamgraph plan` (``ZooModel.tokens_per_second``): a ratio far from
1 means the plan's estimate is off on this machine. Model load time is reported apart.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DEMO = "smollm2-135m-instruct,gemma-3-270m,qwen2.5-coder-0.5b-instruct"
QUESTIONS = ["Let's discuss mathematics.", "Let's discuss medicine.", "Is every even number a sum of two primes?",
             "How should a fever in a child be treated?", "Why does the harmonic series diverge?",
             "What does a vaccine teach the immune system?"]


def requests_for(name: str, fmt: str, n: int, max_tokens: int):
    from teamgraph.backends.base import GenerationRequest

    out = []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        common = dict(agent="Ada", model=name, max_tokens=max_tokens, temperature=0.8, top_p=0.95, seed=i)
        if fmt == "chat":
            out.append(GenerationRequest(messages=({"role": "system", "content": "You are Ada, a mathematician. Be critical."},
                                                   {"role": "user", "content": q}), **common))
        else:
            # No stop at the newline (a run has one): short base-model replies would time prompt evaluation, not decoding.
            out.append(GenerationRequest(prompt=f"Ada is a mathematician. Be critical.\nBob: {q}\nAda:",
                                         repeat_penalty=1.3, **common))
    return out


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default=DEMO, help="comma list of zoo model names (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    args = p.parse_args()
    from teamgraph.backends.llamacpp import LlamaCppBackend
    from teamgraph.models import get_model, model_path

    n, max_tokens = (3, 48) if args.quick else (8, 96)
    threads = args.threads or os.cpu_count() or 2
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model = get_model(name)
        if not model.installed():
            results.append(C.result(f"zoo.{name}.tok_s", f"{name} generation", None, "tok/s", status="SKIP",
                                    note=f"not installed: {model.install_hint}"))
            continue
        model_path(name)  # assembly is an install-time cost, not a generation cost
        backend = LlamaCppBackend(n_threads=threads, n_ctx=1024)
        try:
            load_s, _ = C.timed(lambda: backend._load(name))
            backend.generate(requests_for(name, model.format, 1, 8))  # warm-up
            start = time.perf_counter()
            replies = backend.generate(requests_for(name, model.format, n, max_tokens))
            seconds = time.perf_counter() - start
        finally:
            backend.close()
        tokens = sum(r.n_tokens or 0 for r in replies)
        speed = tokens / seconds if seconds else None
        detail = {"requests": n, "max_tokens": max_tokens, "tokens": tokens, "seconds": seconds, "load_s": load_s,
                  "threads": threads, "format": model.format, "empty": sum(r.status != "ok" for r in replies)}
        results.append(C.result(f"zoo.{name}.tok_s", f"{name} ({model.parameters} {model.quantisation}, {model.format}) "
                                f"generation, {n} requests, {threads} threads", speed, "tok/s", detail=detail,
                                note=f"{tokens} tokens in {seconds:.1f} s; load {load_s:.1f} s"))
        if speed:
            results.append(C.result(f"zoo.{name}.vs_registry", f"{name}: measured / recorded speed "
                                    f"({model.tokens_per_second:g} tok/s, used by teamgraph plan)",
                                    speed / model.tokens_per_second, "x", detail=detail))
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
