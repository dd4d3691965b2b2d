import json
import subprocess
import sys

import pytest

import teamgraph as tg
from teamgraph.cli import main

from .test_export import MORE


def run_cli(*args):
    """Run the real console entry point in a subprocess: exit code, stdout, stderr."""
    proc = subprocess.run([sys.executable, "-m", "teamgraph", *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_teams_command_writes_json(tmp_path):
    src = tmp_path / "convs.jsonl"
    tg.write_conversations(MORE, src)
    code, out, err = run_cli("teams", "--conversations", str(src), "--metric", "echo_discounted_cosine",
                             "--json", str(tmp_path / "teams.json"), "--device", "cpu")
    assert code == 0, err
    doc = json.loads((tmp_path / "teams.json").read_text())
    assert doc["metric"] == "echo_discounted_cosine" and doc["topic"] == "all"
    assert doc["embedder"] == "sentence-transformers/all-MiniLM-L6-v2" and doc["run_record"] is None
    assert "modularity" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["teams", "--json", "x.json"], "--conversations"),
        (["teams", "--conversations", "missing.jsonl", "--json", "x.json"], "missing.jsonl: cannot read"),
        (["teams", "--conversations", "BAD", "--json", "x.json"], "BAD:2: invalid JSON"),
        (["teams", "--conversations", "GOOD", "--json", "x.json", "--metric", "nope"], "unknown metric 'nope'"),
        (["teams", "--conversations", "GOOD", "--json", "x.json", "--threshold", "median"], "threshold: 'median'"),
        (["teams", "--conversations", "GOOD", "--json", "x.json", "--topic", "cooking"], "topic 'cooking'"),
        (["teams", "--conversations", "GOOD", "--json", "x.json", "--seeds", "zero"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    tg.write_conversations(MORE, tmp_path / "GOOD")
    (tmp_path / "BAD").write_text((tmp_path / "GOOD").read_text().splitlines()[0] + "\n{oops\n")
    # the bad-value cases fail before any embedding, except topic which needs scoring: use a tiny encoder
    monkeypatch.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test"))
    from .conftest import CountingEncoder
    monkeypatch.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("teamgraph: error:"), err
    assert message in err
    assert not (tmp_path / "x.json").exists()


def test_bad_input_via_real_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"agent_a": "a"}\n')
    code, out, err = run_cli("teams", "--conversations", str(tmp_path / "bad.jsonl"), "--json", str(tmp_path / "t.json"))
    assert code == 2
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert "bad.jsonl:1: missing field 'agent_b'" in err
