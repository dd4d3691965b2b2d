"""``make run`` after install (issue 3): wall time and peak memory of the demo, from a fresh store.

    python benchmarks/bench_make_run.py [--quick] [--config data/demo_zoo.yaml] [--json OUT]

Runs ``teamgraph run CONFIG --out <tmp>`` (what ``make run`` runs once .venv exists) as a child
process with a new output folder, hence a new store: every conversation is generated and every
utterance embedded. Zoo models are assembled into the cache on first use; a model already
assembled is not paid again (``--fresh-cache`` times a first run with an empty model cache). Peak
memory is the child's maximum resident set size (``wait4``). Targets: under 5 minutes on 2 cores,
under 2 GB. ``--quick`` runs the demo roster on its first topic only: its time is reported, not judged.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def teamgraph_command() -> list[str]:
    exe = Path(sys.executable).with_name("teamgraph")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "teamgraph"]


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(C.ROOT / "data" / "demo_zoo.yaml"))
    p.add_argument("--threads", type=int, default=None,
                   help="set the llamacpp backends' n_threads in a copy of the config (default: the config's)")
    p.add_argument("--fresh-cache", action="store_true", help="an empty model cache: zoo models are assembled in the run")
    args = p.parse_args()

    import yaml

    with tempfile.TemporaryDirectory(prefix="tg-bench-run-") as tmp:
        config = Path(args.config)
        if args.quick or args.threads:
            data = yaml.safe_load(config.read_text())
            if args.quick:
                data["topics"] = data["topics"][:1]
            if args.threads:
                for spec in data.get("backends", {}).values():
                    if spec.get("type") == "llamacpp":
                        spec["n_threads"] = args.threads
            config = Path(tmp) / config.name
            config.write_text(yaml.safe_dump(data, sort_keys=False))
        out = Path(tmp) / "out"
        cmd = [*teamgraph_command(), "run", str(config), "--out", str(out), "--quiet"]
        print("  $ " + " ".join(cmd), flush=True)
        load_before = C.load_average()
        start = time.perf_counter()
        log = Path(tmp) / "run.log"
        with open(log, "w") as sink:  # a file, not a pipe: a full pipe would block the child while we wait
            env = {**os.environ, **({"TEAMGRAPH_CACHE": str(Path(tmp) / "cache")} if args.fresh_cache else {})}
            proc = subprocess.Popen(cmd, cwd=C.ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        output = log.read_text(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        peak_mb = usage.ru_maxrss / 1024
        files = sorted(f.name for f in out.glob("*")) if out.exists() else []
        store_counts = {}
        if (out / "store.sqlite").exists():
            sys.path.insert(0, str(C.ROOT))
            from teamgraph.store import Store

            with Store(out / "store.sqlite") as store:
                store_counts = store.counts()
        shutil.rmtree(out, ignore_errors=True)

    tail = "\n".join(output.strip().splitlines()[-6:])
    print("  " + tail.replace("\n", "\n  "), flush=True)
    detail = {"exit_code": code, "seconds": seconds, "peak_rss_mb": peak_mb, "files": files, "store": store_counts,
              "config": str(args.config), "quick": args.quick, "fresh_cache": args.fresh_cache, "threads": args.threads, "load_before": load_before,
              "user_cpu_s": usage.ru_utime, "system_cpu_s": usage.ru_stime, "output_tail": tail}
    what = "first topic only (quick)" if args.quick else "all topics"
    if args.fresh_cache:
        what += ", empty model cache"
    if args.threads:
        what += f", n_threads={args.threads}"
    if code != 0:
        results = [C.result("make_run.wall_time", f"teamgraph run demo, {what}", None, "s", status="ERROR",
                            detail=detail, note=f"exit code {code}: {tail.splitlines()[-1] if tail else ''}")]
    else:
        convs = store_counts.get("conversations", "?")
        utts = store_counts.get("utterances", "?")
        note = f"{convs} conversations, {utts} utterances; CPU {usage.ru_utime + usage.ru_stime:.0f} s"
        results = [
            C.result("make_run.wall_time", f"teamgraph run {Path(args.config).name}, fresh store, {what}", seconds / 60,
                     "min", *((None, None) if args.quick else (5, "<")), detail=detail,
                     note=note + ("; quick: not judged, the target is for the whole demo" if args.quick else "")),
            C.result("make_run.peak_rss", f"peak RSS of that run ({what})", peak_mb / 1024, "GB", 2, "<",
                     detail=detail, note="model, embedder, store and graphs in one process"),
        ]
    C.emit(results, args.json)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
