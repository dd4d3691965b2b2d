"""teamgraph benchmark suite: one entry point, one line per figure with PASS/MISS, a JSON summary.

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME]] [--json PATH]
                                 [--device cuda] [--model EMBEDDER_DIR] [--vllm-python PATH]

Benchmarks (each runs in a process of its own, so peak memory figures are its own):
  scoring   issue 2/6: scoring vs bare SentenceTransformer.encode (<= 1.1x), cache (>= 20x faster),
            embedding/scoring throughput and peak memory, Louvain with 10 seeds on 500 agents
  llamacpp  issue 3: harness overhead over bare llama.cpp generation of the same tokens (< 10%)
  make_run  issue 3/10: `teamgraph run data/demo_zoo.yaml` from a fresh store (< 5 min, < 2 GB)
  zoo       issue 10: generation tok/s of each zoo model, side by side, and against the plan's figures
  scoring_modes  issue 11: multiple choice by generation vs likelihood vs cloze, items per second
  crash     issue 12: SIGKILL a real run 10 times, resume: utterances lost (0), generated twice (<= kills)
  openai    issue 6: openai backend against a real local llama_cpp.server, concurrency 1 vs N
  scheduler issue 15: throughput across K = 1, 2, 4, 8 loopback servers vs ideal K x concurrency / latency
            (>= 0.8 at K = 8); two real llama_cpp.server replicas, one killed mid-run: the run completes
  faults    issue 12: the same run direct and through a proxy failing 30% of calls (500/503/429/timeout/
            reset/bad JSON/cut-off body): same conversations; every call failing: exit 2, then resumes
  communities  issue 13: find_communities (default backend, 10 seeds + consensus) on a 1,000-agent
            complete graph vs ONE networkx louvain_communities run (<= 1.0x); python-louvain for comparison
  report    issue 14: the HTML report of a 200-agent, 20,000-edge synthetic run (and of out/demo when it exists):
            file size, first paint, first graph drawn, topic switch and edge click in headless Chromium
  vllm      issue 6: harness on vLLM vs one LLM.generate batch (>= 0.8x) and vs a naive loop;
            runs with --vllm-python (default .venv-vllm/bin/python, made by `make test-vllm`)

On a GPU machine with only torch, sentence-transformers and teamgraph's core dependencies:
    PYTHONPATH=. python benchmarks/run_all.py --only scoring --device cuda --model /path/to/all-MiniLM-L6-v2
Timings on a shared machine are noisy: every line carries the 1-minute load average taken with it, and
the targets are ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

BENCHMARKS = {
    "scoring": "bench_scoring.py",
    "llamacpp": "bench_llamacpp.py",
    "make_run": "bench_make_run.py",
    "openai": "bench_openai.py",
    "scheduler": "bench_scheduler.py",
    "vllm": "bench_vllm.py",
    "zoo": "bench_zoo.py",
    "scoring_modes": "bench_scoring_modes.py",
    "crash": "bench_crash.py",
    "faults": "bench_faults.py",
    "communities": "bench_communities.py",
    "report": "bench_report.py",
}
# What each benchmark needs importable; missing -> SKIP with the reason, not a crash.
NEEDS = {"llamacpp": ["llama_cpp"], "make_run": ["llama_cpp"], "zoo": ["llama_cpp"], "scoring_modes": ["llama_cpp"], "crash": ["llama_cpp"], "openai": ["llama_cpp", "uvicorn", "openai"],
         "faults": ["llama_cpp", "uvicorn", "openai"], "scheduler": ["openai"], "report": ["plotly", "playwright"]}


def _missing(modules: list[str], python: str) -> list[str]:
    code = "import importlib.util, sys; print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True)
    return [m for m in out.stdout.strip().split(",") if m]


def run_one(name: str, args: argparse.Namespace) -> tuple[list[dict], float]:
    python = sys.executable
    extra: list[str] = []
    if name == "scoring":
        if args.device:
            extra += ["--device", args.device]
        if args.model:
            extra += ["--model", args.model]
    if name in ("llamacpp", "openai", "make_run", "zoo", "faults") and args.llama_threads:
        extra += ["--threads", str(args.llama_threads)]
    if name == "vllm":
        python = args.vllm_python or str(C.ROOT / ".venv-vllm" / "bin" / "python")
        if not Path(python).exists():
            return [C.asdict_result(C.result("vllm.harness_vs_batch", "vLLM benchmarks", None, "x", status="SKIP",
                                             note=f"no {python}: run `make test-vllm` first (it builds .venv-vllm)"))], 0.0
        if args.vllm_model:
            extra += ["--model", args.vllm_model]
    missing = _missing(NEEDS.get(name, []), python)
    if missing:
        r = C.result(f"{name}", f"{name} benchmarks", None, "", status="SKIP",
                     note=f"not importable here: {', '.join(missing)} (pip install 'teamgraph[local]')")
        return [C.asdict_result(r)], 0.0
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [python, str(HERE / BENCHMARKS[name]), "--json", str(out), *(["--quick"] if args.quick else []), *extra]
    print(f"== {name}: {' '.join(cmd[1:])}  [load {C.load_average()}]", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(C.ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=C.ROOT, env=env)
    seconds = time.perf_counter() - start
    try:
        doc = json.loads(out.read_text())
        results = doc["results"]
    except (OSError, ValueError, KeyError):
        results = []
    finally:
        out.unlink(missing_ok=True)
    if proc.returncode != 0 and not results:
        results = [C.asdict_result(C.result(name, f"{name} benchmarks", None, "", status="ERROR",
                                            note=f"exit code {proc.returncode}; see the output above"))]
    return results, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[3:]))
    p.add_argument("--quick", action="store_true", help="smaller workloads and fewer repeats (minutes, not tens)")
    p.add_argument("--only", default="", help=f"comma list of: {', '.join(BENCHMARKS)}")
    p.add_argument("--json", default=str(C.ROOT / "out" / "bench" / "summary.json"), help="summary file")
    p.add_argument("--device", default=None, help="embedding device for the scoring benchmark (cpu, cuda)")
    p.add_argument("--model", default=None, help="embedder folder for the scoring benchmark")
    p.add_argument("--llama-threads", type=int, default=None,
                   help="llama.cpp threads for the llamacpp, openai, make_run, zoo and faults benchmarks (default: all cores; faults: 1)")
    p.add_argument("--vllm-python", default=None, help="python with vLLM (default .venv-vllm/bin/python)")
    p.add_argument("--vllm-model", default=None, help="Hugging Face folder for the vLLM benchmark")
    args = p.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)} (choose from: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2

    started = time.time()
    machine = C.machine_info()
    all_results: list[dict] = []
    durations: dict[str, float] = {}
    for name in names:
        results, seconds = run_one(name, args)
        all_results += results
        durations[name] = round(seconds, 1)

    print("\n== summary " + ("(quick) " if args.quick else "") + f"[load now {C.load_average()}, {os.cpu_count()} CPUs]")
    for r in all_results:
        print(C.Result(**r).line())
    counts = {s: sum(r["status"] == s for r in all_results) for s in ("PASS", "MISS", "INFO", "SKIP", "ERROR")}
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    summary = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), "quick": args.quick,
               "machine": machine, "durations_s": durations, "counts": counts, "results": all_results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {args.json}")
    return 1 if counts["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
