"""Crash figures (issue 12): SIGKILL a real ``teamgraph run`` at random moments, resume, check the store.

    python benchmarks/bench_crash.py [--kills 10] [--seed 0] [--quick] [--json OUT]

The run is real: four zoo agents (SmolLM2 and Gemma 3 270M on llama.cpp, in-process), one topic,
6 turns of 24 tokens: 6 conversations, 36 utterances. Each attempt starts ``teamgraph run`` in a child
process and kills it with SIGKILL after a seeded random delay (3 s .. ``--max-delay``, default 45 s; some kills land
while models load, some mid-turn); the last attempt runs to the end. The child is this script with
``--child``: it counts every reply the backend returns in a side file (appended and fsynced before the
harness can store it), so a reply generated, lost to a kill and generated again is counted twice.

Printed: kills survived; utterances lost (stored before a kill and missing or changed afterwards:
must be 0); conversations with turns other than exactly 0..T-1 once (must be 0); replies generated
twice (generated minus stored; the bound is the requests in flight at each kill: one per kill on
llama.cpp, whose batches hold one request).
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CONFIG = """\
name: crash
backends: {local: {type: llamacpp, n_ctx: 512, n_threads: 2}}
defaults:
  backend: local
  sampling: {max_tokens: 24, temperature: 0.8, top_p: 0.95, repeat_penalty: 1.2}
agents:
  - {name: Ada-s, model: smollm2-135m-instruct, persona: "You are Ada, a mathematician."}
  - {name: Galen-s, model: smollm2-135m-instruct, persona: "You are Galen, a physician."}
  - {name: Ada-g, model: gemma-3-270m, persona: "Ada-g is a mathematician.", sampling: {repeat_penalty: 1.3}}
  - {name: Galen-g, model: gemma-3-270m, persona: "Galen-g is a physician.", sampling: {repeat_penalty: 1.3}}
topics: [general]
conversation: {turns: 6, seed: 0}
scoring: {metric: cumulative_cosine, device: cpu}
communities: {n_seeds: 2, n_permutations: 20}
"""
TURNS = 6


def child(config: str, out: str, counter: str) -> int:
    """``teamgraph run`` with the llama.cpp backend's replies counted in ``counter`` as they return."""
    from teamgraph.backends.llamacpp import LlamaCppBackend
    from teamgraph.cli import main

    generate = LlamaCppBackend.generate

    def counted(self, requests):  # type: ignore[no-untyped-def]
        results = generate(self, requests)
        with open(counter, "a") as f:
            f.write("x\n" * len(results))
            f.flush()
            os.fsync(f.fileno())
        return results

    LlamaCppBackend.generate = counted  # type: ignore[method-assign]
    return main(["run", config, "--out", out, "--quiet"])


def snapshot(store: Path) -> dict[tuple[str, int], tuple]:
    """Every stored utterance: (conversation, turn) -> (speaker, text, status, created)."""
    if not store.exists():
        return {}
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT conversation_id, turn, speaker, text, status, created FROM utterances").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        return {}
    finally:
        db.close()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-delay", type=float, default=45.0, help="latest kill, seconds after the child starts")
    p.add_argument("--child", nargs=3, metavar=("CONFIG", "OUT", "COUNTER"), help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    kills = 3 if args.quick else args.kills

    import random

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tg-bench-crash-") as tmp:
        config, out, counter = Path(tmp) / "crash.yaml", Path(tmp) / "out", Path(tmp) / "generated.txt"
        config.write_text(CONFIG)
        store = out / "store.sqlite"
        cmd = [sys.executable, __file__, "--child", str(config), str(out), str(counter)]
        survived, lost, changed, finished_early, delays = 0, 0, 0, 0, []
        start = time.perf_counter()
        for attempt in range(kills + 1):
            before = snapshot(store)
            with open(Path(tmp) / f"attempt{attempt}.log", "w") as log:
                child_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
                if attempt < kills:
                    delay = rng.uniform(3.0, args.max_delay)
                    delays.append(round(delay, 1))
                    try:
                        child_proc.wait(timeout=delay)
                        finished_early += 1  # nothing left to kill: the run ended first
                    except subprocess.TimeoutExpired:
                        child_proc.send_signal(signal.SIGKILL)
                        child_proc.wait()
                        survived += 1
                else:
                    code = child_proc.wait()
                    if code != 0:
                        print((Path(tmp) / f"attempt{attempt}.log").read_text()[-2000:])
                        raise SystemExit(f"the final resume failed with exit code {code}")
            after = snapshot(store)
            lost += sum(1 for key in before if key not in after)
            changed += sum(1 for key, row in before.items() if key in after and after[key] != row)
            print(f"  attempt {attempt}: {len(before)} -> {len(after)} utterances stored", flush=True)
        seconds = time.perf_counter() - start
        final = snapshot(store)
        by_conv: dict[str, list[int]] = {}
        for conv, turn in final:
            by_conv.setdefault(conv, []).append(turn)
        bad = sum(1 for turns in by_conv.values() if sorted(turns) != list(range(TURNS)))
        generated = len(counter.read_text().splitlines()) if counter.exists() else 0
        twice = generated - len(final)
    detail = {"kills": survived, "finished_before_kill": finished_early, "delays_s": delays,
              "conversations": len(by_conv), "utterances": len(final), "generated": generated,
              "seconds": round(seconds, 1)}
    results = [
        C.result("crash.kills", "SIGKILLs survived (resumed to the end)", survived, "kills", detail=detail),
        C.result("crash.lost", "utterances stored before a kill and missing or changed after", lost + changed,
                 "utterances", 0, "<=", detail=detail),
        C.result("crash.turns", "conversations without exactly turns 0..5 once", bad + (6 - len(by_conv)),
                 "conversations", 0, "<=", detail=detail),
        C.result("crash.twice", "replies generated twice (lost in flight at a kill)", twice, "replies",
                 survived, "<=", detail=detail, note="bound: one in flight per kill on llama.cpp"),
    ]
    C.emit(results, args.json, {"machine": C.machine_info()})
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
