"""Run records: every run, evaluate and study says what produced it (fake backends and encoder, no model)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from teamgraph.backends.base import GenerationResult
from teamgraph.cli import main
from teamgraph.config import load_config
from teamgraph.errors import InputError
from teamgraph.lease import StoreLease
from teamgraph.records import RECORD_FORMAT, read_run_records
from teamgraph.store import SCHEMA_VERSION, Store

from .conftest import CountingEncoder

CONFIG = """
name: records-test
output: {out}
backends:
  local: {{type: llamacpp}}
  server: {{type: openai, base_url: "http://user:sekrit-pw@127.0.0.1:9/v1", api_key_env: MY_SECRET_VAR}}
agents:
  - {{name: Ada, persona: "Ada is a mathematician.", labels: {{family: f1, role: math}}}}
  - {{name: Bob, persona: "Bob is a mathematician.", labels: {{family: f2, role: math}}}}
  - {{name: Cleo, persona: "Cleo is a physician.", labels: {{family: f1, role: medical}}}}
  - {{name: Dan, persona: "Dan is a physician.", labels: {{family: f2, role: medical}}}}
topics: [general, medicine]
conversation: {{turns: {turns}}}
communities: {{n_seeds: 2, n_permutations: 0}}
evaluation: {{benchmarks: [mmlu_math], n_items: 6, max_tokens: 8, random_draws: 20}}
"""


def write_config(tmp_path, turns=2):
    path = tmp_path / "records.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(out=tmp_path / "out", turns=turns)))
    return path


class TalkBackend:
    """Replies '<agent> says <n>' (a few distinct words per turn), after ``delay`` seconds per request."""

    max_batch = 1

    def __init__(self, delay=0.0):
        self.delay = delay
        self.calls = 0

    def describe(self):
        return {"type": "fake-talk"}

    def close(self):
        pass

    def generate(self, requests):
        time.sleep(self.delay)
        self.calls += len(requests)
        return [GenerationResult.from_text(f"{r.agent} says {r.seed % 97} and {r.seed % 13} B") for r in requests]


@pytest.fixture
def fakes(monkeypatch):
    """Backends and the embedder of every run in this test are fakes: (the backend, patch to swap it)."""
    backend = TalkBackend()
    monkeypatch.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test:bag-of-words"))
    monkeypatch.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())
    monkeypatch.setattr("teamgraph.pipeline.open_backends", lambda config: {"local": backend})
    monkeypatch.setenv("MY_SECRET_VAR", "sk-should-never-appear")
    return backend


# -- a run ------------------------------------------------------------------------------------------

def test_a_run_record_round_trips_through_the_store_and_its_json_file(tmp_path, fakes):
    from teamgraph.pipeline import run

    config = load_config(write_config(tmp_path))
    result = run(config, progress=False, figures=False)
    out = tmp_path / "out"
    on_disk = json.loads((out / "run_record.json").read_text())
    [stored] = read_run_records(out / "store.sqlite")
    assert stored == on_disk  # the store's row and the file say the same
    assert stored["id"] == result.record_id and stored["format"] == RECORD_FORMAT
    assert stored["kind"] == "run" and stored["status"] == "success" and stored["message"] is None
    assert stored["name"] == "records-test" and stored["parent"] is None
    assert stored["finished_at"] >= stored["started_at"] and stored["duration_s"] >= 0
    assert set(stored["timings"]) == {"conversations_s", "scoring_s", "communities_s", "outputs_s"}
    assert stored["agents"] == {name: {"type": "fake-talk"} for name in ("Ada", "Bob", "Cleo", "Dan")}
    assert stored["embedder"] == "test:bag-of-words"
    assert set(stored["packages"]) >= {"torch", "sentence-transformers", "llama-cpp-python", "networkx",
                                       "python-louvain", "scikit-learn", "numpy"}
    assert stored["packages"]["numpy"] == np.__version__
    assert stored["teamgraph_version"] and "revision" in stored and "revision_dirty" in stored
    # 6 pairs x 2 topics x 2 turns, all made now; nothing reused
    assert stored["model_calls"]["made"]["utterances"] == 24 == fakes.calls
    assert stored["model_calls"]["reused"]["utterances"] == 0
    assert stored["store_rows"]["after"]["utterances"] == 24
    # the resolved config, without secrets
    assert stored["config"]["conversation"]["turns"] == 2 and stored["config"]["communities"]["n_seeds"] == 2
    assert [a["name"] for a in stored["config"]["agents"]] == ["Ada", "Bob", "Cleo", "Dan"]
    assert stored["config"]["backends"]["server"]["base_url"] == "http://***@127.0.0.1:9/v1"
    text = (out / "run_record.json").read_text() + json.dumps(read_run_records(out / "store.sqlite"))
    for secret in ("sekrit-pw", "sk-should-never-appear", "MY_SECRET_VAR", "api_key_env"):
        assert secret not in text

    # the teams JSON names the record and the embedder
    for topic in ("general", "medicine", "all"):
        doc = json.loads((out / f"teams_{topic}.json").read_text())
        assert doc["schema"] == "teamgraph.teams/2"
        assert doc["run_record"] == result.record_id and doc["embedder"] == "test:bag-of-words"
        assert doc["metric"] == "cumulative_cosine" and doc["run"] == "records-test"

    # a second run makes no call, and is a new record that says so
    fakes.calls = 0
    again = run(config, progress=False, figures=False)
    first, second = read_run_records(out / "store.sqlite")
    assert first["id"] == result.record_id and second["id"] == again.record_id != result.record_id
    assert fakes.calls == 0 and second["model_calls"]["made"]["utterances"] == 0
    assert second["model_calls"]["reused"]["utterances"] == 24
    assert json.loads((out / "run_record.json").read_text())["id"] == again.record_id


def test_an_interrupted_run_is_cancelled_and_a_failed_one_says_why(tmp_path, fakes, monkeypatch):
    from teamgraph import pipeline

    config = load_config(write_config(tmp_path))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "preflight", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(config, progress=False, figures=False)

    def broken(*args, **kwargs):
        raise InputError("the endpoint said no\nsecond line")

    monkeypatch.setattr(pipeline, "preflight", broken)
    with pytest.raises(InputError):
        pipeline.run(config, progress=False, figures=False)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pipeline, "preflight", bug)
    with pytest.raises(ZeroDivisionError):
        pipeline.run(config, progress=False, figures=False)
    cancelled, failed, crashed = read_run_records(tmp_path / "out" / "store.sqlite")
    assert (cancelled["status"], cancelled["message"]) == ("cancelled", "interrupted (Ctrl-C)")
    assert (failed["status"], failed["message"]) == ("error", "the endpoint said no second line")
    assert (crashed["status"], crashed["message"]) == ("error", "ZeroDivisionError: division by zero")
    assert all(r["finished_at"] is not None for r in (cancelled, failed, crashed))
    assert json.loads((tmp_path / "out" / "run_record.json").read_text())["status"] == "error"

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    with pytest.raises(OSError):
        pipeline.run(config, out_dir=blocked / "out", store_path=tmp_path / "out" / "store.sqlite", progress=False)
    unwritable = read_run_records(tmp_path / "out" / "store.sqlite")[-1]
    assert unwritable["status"] == "error" and unwritable["finished_at"] is not None  # not left "started"


# A run in its own process whose backend sleeps, so that it can be killed mid-way.
SLOW_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    import teamgraph.embedding as embedding, teamgraph.pipeline as pipeline
    from teamgraph.backends.base import GenerationResult
    from teamgraph.config import load_config

    class Bag:
        teamgraph_model_id = "test:bag-of-words"
        def encode(self, texts, **kwargs):
            out = np.zeros((len(texts), 16), dtype=np.float32)
            for i, t in enumerate(texts):
                for word in t.split():
                    out[i, sum(map(ord, word)) % 16] += 1
            return out

    class Slow:
        max_batch = 1
        def describe(self):
            return {"type": "fake-talk"}
        def close(self):
            pass
        def generate(self, requests):
            time.sleep(0.3)
            return [GenerationResult.from_text(f"{r.agent} says {r.seed % 97} and {r.seed % 13} B") for r in requests]

    embedding._resolve_model_path = lambda name: (name, "test:bag-of-words")
    embedding._load_sentence_transformer = lambda *a: Bag()
    pipeline.open_backends = lambda config: {"local": Slow()}
    pipeline.run(load_config(sys.argv[1]), progress=False, figures=False)
    print("finished", flush=True)
""")


def _utterances(db):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_killed_run_leaves_started_and_the_resume_adds_a_success_record(tmp_path, fakes):
    from teamgraph.pipeline import run

    config_path = write_config(tmp_path, turns=4)
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    db = tmp_path / "out" / "store.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while _utterances(db) < 3:  # 48 turns at 0.3 s each: killed well before the end
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the slow run made no progress"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and "finished" not in out
    [killed] = read_run_records(db)
    assert killed["status"] == "started" and killed["finished_at"] is None and killed["message"] is None
    assert killed["agents"] == {name: {"type": "fake-talk"} for name in ("Ada", "Bob", "Cleo", "Dan")}
    on_disk = json.loads((tmp_path / "out" / "run_record.json").read_text())
    assert on_disk["id"] == killed["id"] and on_disk["status"] == "started"
    stored = _utterances(db)

    result = run(load_config(config_path), progress=False, figures=False)  # resume (takes over the dead lease)
    first, resumed = read_run_records(db)
    assert first["id"] == killed["id"] and first["status"] == "started"  # the killed run's record is kept as it was
    assert resumed["id"] == result.record_id != killed["id"] and resumed["status"] == "success"
    assert resumed["model_calls"]["made"]["utterances"] == 48 - stored == fakes.calls
    assert resumed["model_calls"]["reused"]["utterances"] == stored
    code = main(["runs", str(db)])
    assert code == 0


# -- evaluate and study ------------------------------------------------------------------------------

def test_evaluate_writes_a_record_beside_its_report(tmp_path, fakes):
    from teamgraph.evaluation import evaluate

    from .test_evaluation_runner import FakeBackend

    config = load_config(write_config(tmp_path))
    teams = {"general": [["Ada", "Bob"], ["Cleo", "Dan"]]}
    out = tmp_path / "out" / "evaluation"
    result = evaluate(config, teams, backends={"local": FakeBackend()}, out_dir=out, progress=False)
    on_disk = json.loads((out / "evaluate_record.json").read_text())
    [stored] = read_run_records(tmp_path / "out" / "store.sqlite")
    assert stored == on_disk and stored["kind"] == "evaluate" and stored["status"] == "success"
    assert result.settings["run_record"] == stored["id"]
    assert json.loads((out / "evaluation.json").read_text())["settings"]["run_record"] == stored["id"]
    assert stored["model_calls"]["made"]["answers"] == 4 * 6 and stored["model_calls"]["reused"]["answers"] == 0
    assert stored["agents"]["Ada"] == {"type": "fake"} and set(stored["timings"]) >= {"answers_s", "scoring_s"}
    evaluate(config, teams, backends={"local": FakeBackend()}, out_dir=out, progress=False)
    again = read_run_records(tmp_path / "out" / "store.sqlite")[1]
    assert again["model_calls"]["made"]["answers"] == 0 and again["model_calls"]["reused"]["answers"] == 24


def test_a_study_and_its_run_are_two_records_named_in_the_report(tmp_path, fakes, monkeypatch):
    from teamgraph import study

    from .test_evaluation_runner import FakeBackend

    monkeypatch.setattr("teamgraph.pipeline.open_backends", lambda config: {"local": FakeBackend()})
    monkeypatch.setattr(study, "recovery_table", lambda *a, **k: __import__("pandas").DataFrame(
        [{"metric": "cumulative_cosine", "topic": "all", "label": "family", "ari": 0.0, "ari_p": 1.0, "nmi": 0.0,
          "nmi_p": 1.0, "n_communities": 1, "modularity": 0.0, "structure_p": 1.0, "communities": ""}]))
    config = load_config(write_config(tmp_path))
    result = study.run_study(config, progress=False)
    study_rec, run_rec = read_run_records(tmp_path / "out" / "store.sqlite")
    assert (study_rec["kind"], run_rec["kind"]) == ("study", "run")
    assert study_rec["status"] == run_rec["status"] == "success"
    assert run_rec["parent"] == study_rec["id"] == result.record_id
    assert result.settings["run_record"] == run_rec["id"] and result.settings["embedder"] == "test:bag-of-words"
    assert json.loads((tmp_path / "out" / "study_record.json").read_text())["id"] == study_rec["id"]
    assert json.loads((tmp_path / "out" / "teams_all.json").read_text())["run_record"] == run_rec["id"]
    report = study.write_study_report(result, tmp_path / "study.md", "teamgraph study records.yaml")
    text = report.read_text()
    assert f"Run record: `{study_rec['id']}`" in text and f"run record `{run_rec['id']}`" in text
    assert "embedder `test:bag-of-words`" in text


# -- the store's schema ----------------------------------------------------------------------------

# The tables of a schema-1 store, as the code before run records created them.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, config TEXT NOT NULL, started REAL NOT NULL, finished REAL
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, agent_a TEXT NOT NULL, agent_b TEXT NOT NULL, topic TEXT NOT NULL,
    n_turns INTEGER NOT NULL, spec TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS utterances (
    conversation_id TEXT NOT NULL REFERENCES conversations(id), turn INTEGER NOT NULL,
    speaker TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    n_tokens INTEGER, seconds REAL, created REAL NOT NULL,
    PRIMARY KEY (conversation_id, turn)
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, agent TEXT NOT NULL, benchmark TEXT NOT NULL, item_id TEXT NOT NULL,
    round INTEGER NOT NULL, raw TEXT NOT NULL, answer TEXT, status TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_agent ON answers(agent, benchmark);
"""
DATA_TABLES = ("conversations", "utterances", "embeddings", "answers")


def old_store(path):
    """A schema-1 store with a row in every table, written as the old code wrote them."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO runs VALUES ('0123456789abcdef', ?, 1700000000.0, 1700000060.0)",
               (json.dumps({"name": "old-run"}),))
    db.execute("INSERT INTO conversations VALUES ('c1', 'ada', 'bob', 'general', 2, '{}', 1700000001.0)")
    db.executemany("INSERT INTO utterances VALUES ('c1', ?, ?, ?, 'ok', NULL, 5, 0.5, 1700000002.0)",
                   [(0, "ada", "Primes are infinite."), (1, "bob", "Euclid proved it.")])
    db.execute("INSERT INTO embeddings VALUES ('k1', 'test:bag-of-words', 2, ?)",
               (np.array([1.0, 0.0], dtype=np.float32).tobytes(),))
    db.execute("INSERT INTO answers VALUES ('a1', 'ada', 'mmlu_math', 'i1', 0, ' B. Because.', 'B', 'ok', 1700000003.0)")
    db.commit()
    db.close()


def dump(path, tables=DATA_TABLES):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def test_an_old_store_is_listed_read_only_then_migrated_in_place_on_open(tmp_path, capsys):
    path = tmp_path / "old.sqlite"
    old_store(path)
    before = dump(path)
    # a reader lists it as it is, without migrating it (no write, no lease)
    [legacy] = read_run_records(path)
    assert legacy["id"] == "0123456789abcdef" and legacy["name"] == "old-run" and legacy["kind"] is None
    assert legacy["status"] == "finished" and legacy["finished_at"] - legacy["started_at"] == 60
    assert dump(path, ("meta",)) == {"meta": [("schema_version", "1")]}
    # a writer's open migrates it: run columns added, every data row untouched
    with Store(path) as store:
        assert store.conversation("c1").utterances[1].text == "Euclid proved it."
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert columns == ["id", "config", "started", "finished", "kind", "status", "message", "name",
                       "teamgraph_version", "revision", "record"]
    assert dump(path) == before
    [legacy_after] = read_run_records(path)
    assert legacy_after["id"] == legacy["id"] and legacy_after["status"] == "finished"
    with Store(path) as store:  # opening again changes nothing
        assert store.counts() == {"conversations": 1, "utterances": 2, "embeddings": 1, "answers": 1, "probes": 0}
    assert dump(path) == before
    assert main(["runs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0123456789abcdef" in out and "old-run" in out and "finished" in out


def test_a_store_newer_than_the_code_is_refused_not_misread(tmp_path, capsys):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
        db.execute("CREATE TABLE future (x)")
    with pytest.raises(InputError, match=f"store schema {SCHEMA_VERSION + 1} is newer than this teamgraph"):
        Store(path)
    with pytest.raises(InputError, match="newer than this teamgraph"):
        read_run_records(path)
    assert main(["runs", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer than this teamgraph" in err
    with sqlite3.connect(path) as db:  # and nothing was written to it
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION + 1),)


# -- teamgraph runs --------------------------------------------------------------------------------

def test_runs_lists_records_as_a_table_and_as_json_without_the_lease(tmp_path, fakes, capsys):
    from teamgraph.pipeline import run

    config = load_config(write_config(tmp_path))
    first = run(config, progress=False, figures=False)
    second = run(config, progress=False, figures=False)
    db = tmp_path / "out" / "store.sqlite"
    with StoreLease(db):  # a writer holds the store: readers neither wait nor fail
        assert main(["runs", str(db)]) == 0
        table = capsys.readouterr().out.splitlines()
        assert main(["runs", str(db), "--json"]) == 0
        records = json.loads(capsys.readouterr().out)
    assert table[0].split() == ["id", "kind", "status", "start", "duration", "config", "version", "revision"]
    assert [line.split()[:3] for line in table[1:]] == [[first.record_id, "run", "success"],
                                                        [second.record_id, "run", "success"]]
    assert all("records-test" in line and "0.1.0" in line for line in table[1:])
    assert [r["id"] for r in records] == [first.record_id, second.record_id]
    assert records[1] == json.loads((tmp_path / "out" / "run_record.json").read_text())


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such store file"),
    ("folder", "no such store file"),
    ("text", "not a usable teamgraph store"),
    ("other-sqlite", "not a teamgraph store"),
])
def test_runs_exits_2_with_one_line_on_a_bad_store(tmp_path, capsys, kind, message):
    path = tmp_path / "store.sqlite"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("not sqlite at all " * 100)
    elif kind == "other-sqlite":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE something (x)")
    assert main(["runs", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("teamgraph: error: ") and message in err, err
    if kind == "missing":
        assert not path.exists()  # a reader never creates a store


def test_an_empty_store_has_no_records(tmp_path, capsys):
    path = tmp_path / "store.sqlite"
    Store(path).close()
    assert main(["runs", str(path)]) == 0
    assert "no run records" in capsys.readouterr().out
    assert read_run_records(path) == []


def test_sigterm_stops_a_run_like_ctrl_c_one_line_cancelled_record_and_exit_143(tmp_path, fakes):
    config_path = write_config(tmp_path, turns=4)
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_RUN.replace(
        'pipeline.run(load_config(sys.argv[1]), progress=False, figures=False)\nprint("finished", flush=True)',
        'from teamgraph.cli import main\nsys.exit(main(["run", sys.argv[1], "--quiet"]))'))
    assert "teamgraph.cli import main" in script.read_text()
    db = tmp_path / "out" / "store.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while _utterances(db) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the slow run made no progress"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    last = [line for line in err.splitlines() if line.startswith("teamgraph:")][-1]
    assert last == "teamgraph: terminated; run the same command again to resume from the store"
    assert "Traceback" not in err
    [record] = read_run_records(db)
    assert (record["status"], record["message"]) == ("cancelled", "terminated (SIGTERM)")
    assert record["finished_at"] is not None


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path):
    from teamgraph.store import Store

    store = tmp_path / "store.sqlite"
    with Store(store):
        pass
    proc = subprocess.Popen([sys.executable, "-m", "teamgraph", "runs", str(store), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader goes away before the listing is written (as `| head` does)
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 128 + signal.SIGPIPE and err == "", err
