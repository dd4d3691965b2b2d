"""Harness overhead over bare llama.cpp (issue 3): the same prompts, parameters and tokens, timed both ways.

    python benchmarks/bench_llamacpp.py [--quick] [--json OUT]

The harness (``run_conversations`` with the ``llamacpp`` backend and a SQLite store on disk) runs a
small roster on the packaged Gemma 3 270M; every request it sends is recorded. The recorded requests
are then replayed, in the same order, straight through ``llama_cpp.Llama.create_completion`` of the
same loaded model. Harness and bare runs alternate (each harness run on a fresh store, so it
generates everything again with the same seeds); the overhead is the ratio of the medians of wall
time per generated token, minus one. Target: under 10%.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def roster(n_agents: int, max_tokens: int):
    from teamgraph.roster import Agent, Roster, Sampling

    personas = [
        ("Ada", "Ada is a mathematician who proves theorems about prime numbers and always asks for a proof."),
        ("Galen", "Galen is a physician who diagnoses patients from their symptoms and prescribes treatment."),
        ("Euler", "Euler is a mathematician who computes integrals, series and equations step by step."),
        ("Koch", "Koch is a microbiologist who studies bacteria, viruses, vaccines and infectious diseases."),
        ("Noether", "Noether is an algebraist who explains groups, rings and symmetry with precise definitions."),
        ("Florence", "Florence is a nurse who cares for patients in hospital wards and talks about hygiene."),
    ]
    sampling = Sampling(max_tokens=max_tokens, temperature=0.8, top_p=0.95, repeat_penalty=1.3)
    return Roster([Agent(name, backend="local", model="gemma-3-270m", persona=p, sampling=sampling)
                   for name, p in personas[:n_agents]])


class Recorder:
    """Passes requests to the real backend and keeps them (and the replies) for the bare replay."""

    def __init__(self, backend):
        self.backend = backend
        self.max_batch = backend.max_batch
        self.calls: list[tuple[list, list]] = []

    def generate(self, requests):
        results = self.backend.generate(requests)
        self.calls.append((list(requests), results))
        return results

    def describe(self):
        return self.backend.describe()

    def close(self):
        pass


def bare_replay(create_completion, requests) -> tuple[list[str], int]:
    """The recorded requests, in order, straight to ``Llama.create_completion``: the kwargs the backend builds."""
    texts, tokens = [], 0
    for req in requests:
        kwargs = dict(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                      stop=list(req.stop) or None, **req.extra)
        if req.repeat_penalty is not None:
            kwargs["repeat_penalty"] = req.repeat_penalty
        out = create_completion(prompt=req.prompt, **kwargs)
        texts.append(out["choices"][0]["text"].strip())
        tokens += out["usage"]["completion_tokens"]
    return texts, tokens


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=None)
    p.add_argument("--turns", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores, as the backend)")
    args = p.parse_args()
    n_agents = args.agents or (3 if args.quick else 4)
    turns = args.turns or (4 if args.quick else 6)
    repeats = args.repeats or (2 if args.quick else 3)

    from teamgraph.backends.llamacpp import LlamaCppBackend
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.store import Store

    settings = ConversationConfig(turns=turns, seed=0)
    specs = plan_conversations(roster(n_agents, 48), ["mathematics"], settings)
    backend = LlamaCppBackend(n_threads=args.threads, n_ctx=2048)
    llm = backend._load("gemma-3-270m")  # loaded once, shared: model load is outside both timings
    llm.create_completion(prompt="Ada: Hello.\nBob:", max_tokens=4, seed=0)  # warm-up

    # Time spent inside llama.cpp during the harness run: the rest of the harness wall time is its overhead.
    original = llm.create_completion
    inside = [0.0]

    def timed_completion(*a, **kw):
        t = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            inside[0] += time.perf_counter() - t

    llm.create_completion = timed_completion  # the backend calls this instance attribute

    ratios, cpu_ratios, rows = [], [], []
    matches = total = 0
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        for r in range(repeats):
            rec = Recorder(backend)
            inside[0] = 0.0
            with Store(Path(tmp) / f"store{r}.sqlite") as store:
                c0, t0 = time.process_time(), time.perf_counter()
                run_conversations(specs, {"local": rec}, store, settings, progress=False)
                h_s, h_cpu = time.perf_counter() - t0, time.process_time() - c0
            in_llama = inside[0]
            requests = [req for reqs, _ in rec.calls for req in reqs]
            h_texts = [res.text for _, results in rec.calls for res in results]
            h_tok = sum(res.n_tokens or 0 for _, results in rec.calls for res in results)
            c0, t0 = time.process_time(), time.perf_counter()
            b_texts, b_tok = bare_replay(original, requests)
            b_s, b_cpu = time.perf_counter() - t0, time.process_time() - c0
            matches += sum(a == b for a, b in zip(h_texts, b_texts))
            total += len(requests)
            ratios.append((h_s / max(h_tok, 1)) / (b_s / max(b_tok, 1)))
            cpu_ratios.append((h_cpu / max(h_tok, 1)) / (b_cpu / max(b_tok, 1)))
            rows.append({"harness_s": h_s, "harness_tokens": h_tok, "inside_llama_s": in_llama, "bare_s": b_s,
                         "bare_tokens": b_tok, "harness_cpu_s": h_cpu, "bare_cpu_s": b_cpu, "load": C.load_average()})
            print(f"  repeat {r + 1}/{repeats}: harness {h_s:.2f}s ({h_tok} tok, {in_llama:.2f}s inside llama.cpp), "
                  f"bare {b_s:.2f}s ({b_tok} tok), per-token ratio {ratios[-1]:.3f}, load {C.load_average()}", flush=True)
    llm.create_completion = original
    backend.close()

    overhead = (C.median(ratios) - 1) * 100
    cpu_overhead = (C.median(cpu_ratios) - 1) * 100
    outside = C.median([(row["harness_s"] - row["inside_llama_s"]) / row["inside_llama_s"] for row in rows]) * 100
    tok_s = C.median([row["bare_tokens"] / row["bare_s"] for row in rows])
    detail = {"repeats": rows, "per_token_ratios": ratios, "cpu_ratios": cpu_ratios, "requests": total // repeats,
              "conversations": len(specs), "turns": turns, "identical_replies": f"{matches}/{total}",
              "n_threads": backend.n_threads}
    results = [
        C.result("harness.llamacpp_overhead", f"harness vs bare llama.cpp replay, wall time per generated token "
                 f"({len(specs)} conversations x {turns} turns, median of {repeats} paired runs)", overhead, "%",
                 10, "<", detail=detail,
                 note=f"same replies {matches}/{total}; bare {tok_s:.0f} tok/s; CPU-time overhead {cpu_overhead:+.1f}%"),
        C.result("harness.llamacpp_outside", "harness wall time outside llama.cpp calls / time inside them "
                 "(same run)", outside, "%", 10, "<", detail=detail,
                 note="load-robust view: store writes, prompt building, scheduling"),
    ]
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
