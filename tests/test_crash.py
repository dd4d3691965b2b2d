"""A real run SIGKILLed twice at random moments and resumed: nothing stored is lost or changed, every
conversation ends with turns 0..T-1 exactly once (benchmarks/bench_crash.py does it 10 times)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_killed_runs_resume_without_losing_or_regenerating_stored_utterances(tmp_path):
    out = tmp_path / "crash.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_crash.py"), "--kills", "2", "--seed", "3",
                           "--max-delay", "25", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert figures["crash.lost"]["value"] == 0
    assert figures["crash.turns"]["value"] == 0
    detail = figures["crash.kills"]["detail"]
    assert detail["utterances"] == 36 and detail["conversations"] == 6
    assert figures["crash.twice"]["value"] <= detail["kills"]
