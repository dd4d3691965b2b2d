"""End to end on the real packaged model (Gemma 3 270M via llama.cpp) and the real embedder."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from teamgraph.config import load_config
from teamgraph.pipeline import run

pytestmark = pytest.mark.slow

TINY = """
name: tiny
backends:
  local: {{type: llamacpp, n_ctx: 1024}}
defaults:
  backend: local
  model: gemma-3-270m
  format: transcript
  sampling: {{max_tokens: {max_tokens}, temperature: 0.8, top_p: 0.95, repeat_penalty: 1.3}}
agents:
  - {{name: Ada, persona: "Ada is a mathematician.", labels: [math]}}
  - {{name: Euler, persona: "Euler is a mathematician.", labels: [math]}}
  - {{name: Galen, persona: "Galen is a physician.", labels: [medical]}}
  - {{name: Koch, persona: "Koch is a microbiologist.", labels: [medical]}}
topics: [{topics}]
conversation: {{turns: {turns}, seed: 0}}
scoring: {{metric: echo_discounted_cosine, device: cpu}}
communities: {{n_seeds: 3}}
"""


def write_config(tmp_path, turns=4, max_tokens=12, topics="mathematics"):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY.format(turns=turns, max_tokens=max_tokens, topics=topics)))
    return path


def test_small_roster_end_to_end(tmp_path):
    cfg = load_config(write_config(tmp_path, turns=4, topics="mathematics, medicine"))
    result = run(cfg, out_dir=tmp_path / "out", progress=False)
    assert len(result.conversations) == 12  # 6 pairs x 2 topics
    assert all(len(c.utterances) == 4 for c in result.conversations)
    assert sum(u.status == "ok" for c in result.conversations for u in c.utterances) >= 24  # most turns say something
    assert set(result.partitions) == {"mathematics", "medicine", "all"}
    for topic in ("mathematics", "medicine", "all"):
        doc = json.loads((tmp_path / "out" / f"teams_{topic}.json").read_text())
        listed = [m for t in doc["teams"] for m in t["members"]] + doc["isolates"]
        assert sorted(listed) == ["Ada", "Euler", "Galen", "Koch"]  # every agent exactly once
        assert doc["agents"][0]["labels"] == ["math"]
        assert (tmp_path / "out" / f"graph_{topic}.png").stat().st_size > 1000
    # Running again reuses every stored utterance and embedding: same teams, nothing generated.
    before = sqlite3.connect(tmp_path / "out" / "store.sqlite").execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
    again = run(cfg, out_dir=tmp_path / "out", progress=False)
    assert [c.utterances for c in again.conversations] == [c.utterances for c in result.conversations]
    assert again.partitions["all"].communities == result.partitions["all"].communities
    after = sqlite3.connect(tmp_path / "out" / "store.sqlite").execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
    assert before == after == 48


def _count(db):
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_resume_gives_exactly_the_expected_conversations(tmp_path):
    cfg = write_config(tmp_path, turns=6, max_tokens=24)
    out = tmp_path / "out"
    db = out / "store.sqlite"
    cmd = [sys.executable, "-m", "teamgraph", "run", str(cfg), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 900  # generous: on a machine shared with other work, model load and decoding slow down
    while _count(db) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _count(db)
    stderr = proc.stderr.read().decode(errors="replace")[-500:]
    assert 8 <= killed_at < 36, f"the kill should land mid-run (had {killed_at} of 36 utterances); stderr: {stderr}"
    with sqlite3.connect(db) as con:
        kept = con.execute("SELECT conversation_id, turn, text FROM utterances ORDER BY 1, 2").fetchall()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT conversation_id, turn, text FROM utterances ORDER BY 1, 2").fetchall()
        n_convs = con.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    assert n_convs == 6 and len(rows) == 36
    assert len({(c, t) for c, t, _ in rows}) == 36  # none twice
    by_conv = {}
    for c, t, _ in rows:
        by_conv.setdefault(c, []).append(t)
    assert all(turns == list(range(6)) for turns in by_conv.values())  # none lost
    assert set(kept) <= set(rows)  # what survived the kill was kept as it was, not regenerated
    exported = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert sorted(c["id"] for c in exported) == sorted(by_conv)


from .servers import gemma_server  # noqa: E402,F401  (session fixture: a real llama_cpp.server on 127.0.0.1)


def test_run_through_openai_backend_against_real_local_server(tmp_path, gemma_server):
    path = tmp_path / "remote.yaml"
    path.write_text(textwrap.dedent(f"""
        backends:
          server: {{type: openai, base_url: "{gemma_server}", concurrency: 2, timeout: 60}}
        defaults:
          backend: server
          model: gemma-3-270m
          format: transcript          # -> /v1/completions, the right endpoint for this base model
          sampling: {{max_tokens: 12, repeat_penalty: 1.3}}
        agents: [{{name: Ada}}, {{name: Euler}}, {{name: Galen}}]
        topics: [mathematics]
        conversation: {{turns: 4}}
        scoring: {{device: cpu}}
        communities: {{n_seeds: 3}}
    """))
    result = run(load_config(path), out_dir=tmp_path / "out", progress=False)
    assert len(result.conversations) == 3
    assert all(len(c.utterances) == 4 for c in result.conversations)
    assert sum(u.status == "ok" for c in result.conversations for u in c.utterances) >= 6
    doc = json.loads((tmp_path / "out" / "teams_mathematics.json").read_text())
    assert sorted([m for t in doc["teams"] for m in t["members"]] + doc["isolates"]) == ["Ada", "Euler", "Galen"]


MIXED = """
name: mixed
backends:
  local: {type: llamacpp, n_ctx: 512, n_threads: 2}
defaults:
  backend: local
  sampling: {max_tokens: 8, temperature: 0.8, top_p: 0.95, repeat_penalty: 1.2}
agents:
  - {name: Ada, model: smollm2-135m-instruct, persona: "You are Ada, a mathematician.", labels: {family: smollm2, role: math}}
  - {name: Galen, model: qwen2.5-coder-0.5b-instruct, persona: "You are Galen, a physician.", labels: {family: qwen2.5, role: medical}}
  - {name: Koch, model: gemma-3-270m, persona: "Koch is a microbiologist.", labels: {family: gemma3, role: medical}}
topics: [medicine]
conversation: {turns: 2, seed: 0}
scoring: {metric: cumulative_cosine, device: cpu}
communities: {n_seeds: 2, n_permutations: 10}
"""


def test_a_mixed_roster_of_chat_and_transcript_zoo_models_runs_and_resumes(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    cfg = load_config(path)
    assert [a.format for a in cfg.agents] == ["chat", "chat", "transcript"]
    result = run(cfg, out_dir=tmp_path / "out", progress=False, figures=False)
    assert len(result.conversations) == 3 and all(len(c.utterances) == 2 for c in result.conversations)
    speakers = {u.speaker for c in result.conversations for u in c.utterances if u.status == "ok" and u.text}
    assert {"Ada", "Galen"} <= speakers  # both chat models said something through their own templates
    doc = json.loads((tmp_path / "out" / "teams_medicine.json").read_text())
    assert len({a["model"] for a in doc["agents"]}) == 3
    assert set(doc["validation_by_kind"]) == {"family", "role"}
    db = tmp_path / "out" / "store.sqlite"
    before = _count(db)
    again = run(cfg, out_dir=tmp_path / "out", progress=False, figures=False)
    assert _count(db) == before == 6
    assert [c.utterances for c in again.conversations] == [c.utterances for c in result.conversations]
