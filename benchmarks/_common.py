"""Shared helpers of the benchmark scripts: result records, timing, memory, machine load.

Every benchmark script is a standalone program (``python benchmarks/bench_X.py --json OUT``) that
``run_all.py`` starts in a subprocess of its own, so each one's peak memory is its own. Only the
standard library is imported here: the embedding benchmark must run on a machine that has torch,
sentence-transformers and teamgraph's core dependencies and nothing else.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # teamgraph from this checkout, installed or not
    sys.path.insert(0, str(ROOT))


def load_average() -> float | None:
    """The 1-minute load average: timings taken while other work runs are noisy; say so next to them."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (from /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


@dataclass
class Result:
    """One benchmark figure. ``status``: PASS/MISS against ``target``, INFO (no target), SKIP, ERROR."""

    name: str
    description: str
    value: float | None
    unit: str
    target: float | None = None
    op: str | None = None  # "<=", "<", ">=", ">"
    status: str = "INFO"
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    load: float | None = None

    def judge(self) -> "Result":
        if self.value is None or self.status in ("SKIP", "ERROR"):
            return self
        if self.target is not None and self.op:
            ok = {"<=": self.value <= self.target, "<": self.value < self.target,
                  ">=": self.value >= self.target, ">": self.value > self.target}[self.op]
            self.status = "PASS" if ok else "MISS"
        return self

    def line(self) -> str:
        value = "n/a" if self.value is None else _fmt(self.value)
        unit = self.unit if self.unit != "x" else "x"
        target = f" (target {self.op} {_fmt(self.target)}{unit})" if self.target is not None else ""
        sep = "" if unit == "x" else " "
        load = f"  [load {self.load}]" if self.load is not None else ""
        note = f"  -- {self.note}" if self.note else ""
        return f"{self.status:5s} {self.name}: {self.description} = {value}{sep}{unit}{target}{load}{note}"


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01:
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.2f}"
    return f"{v:.2e}"


def result(name: str, description: str, value: float | None, unit: str, target: float | None = None,
           op: str | None = None, **kwargs: Any) -> Result:
    r = Result(name, description, value, unit, target, op, load=load_average(), **kwargs)
    return r.judge()


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "executable": sys.executable, "load_1min": load_average(),
    }


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", help="write this benchmark's results to this JSON file")
    p.add_argument("--quick", action="store_true", help="smaller workloads, fewer repeats")
    return p


def emit(results: list[Result], path: str | None, extra: dict[str, Any] | None = None) -> None:
    """Print one line per result and write them (with machine info) to ``path``."""
    for r in results:
        print(r.line(), flush=True)
    if path:
        doc = {"machine": machine_info(), "results": [asdict(r) for r in results], **(extra or {})}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2, default=str))


def synthetic_utterances(n: int, seed: int = 0, words: tuple[int, int] = (25, 45)) -> list[str]:
    """``n`` distinct utterance-like sentences (about 46 tokens, like the packaged model's), seeded.

    All distinct on purpose: teamgraph embeds each distinct text once, so duplicates would flatter it.
    """
    import random

    rng = random.Random(seed)
    vocab = ("the proof integral prime series patient symptom vaccine infection ring group theorem "
             "equation bacteria hospital nurse diagnosis treatment dose study evidence claim result "
             "limit function matrix symmetry hygiene virus immune response trial cell data model error "
             "question answer because however therefore although measure risk outcome average sample "
             "doctor algebra number sequence converge bound derivative protein gene disease care ward").split()
    openers = ["I think", "No,", "That is wrong:", "Consider", "Actually,", "Yes, but", "Look,", "Well,"]
    out, seen = [], set()
    while len(out) < n:
        k = rng.randint(*words)
        text = f"{rng.choice(openers)} " + " ".join(rng.choice(vocab) for _ in range(k)) + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def asdict_result(r: Result) -> dict[str, Any]:
    return asdict(r)
