"""One writer per store: the lease that `run`, `evaluate` and `study` take, and that readers never need."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from teamgraph.cli import main
from teamgraph.config import load_config
from teamgraph.errors import InputError
from teamgraph.lease import (
    _LEASE_TABLE,
    LEASE_STALE_S,
    StoreBusyError,
    StoreLease,
    hold_store,
    lease_holder,
)
from teamgraph.store import Store

# A process that takes the lease, says so, holds it for argv[2] seconds and gives it back.
HOLDER = textwrap.dedent("""
    import sys, time
    from teamgraph.lease import StoreLease
    lease = StoreLease(sys.argv[1], heartbeat_every=0.2).acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    lease.release()
""")


def hold_in_subprocess(path, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    assert line.strip() == "held", f"holder did not start (exit {proc.poll()})"
    return proc


@pytest.fixture
def holder_procs():
    procs = []
    yield procs
    for proc in procs:  # only the processes this test started
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def write_row(path, **row):
    """Write the lease row by hand, as another holder would have."""
    with sqlite3.connect(path) as db:
        db.execute(_LEASE_TABLE)
        db.execute("INSERT OR REPLACE INTO lease (id, token, pid, host, started, heartbeat, process) "
                   "VALUES (0, :token, :pid, :host, :started, :heartbeat, :process)",
                   {"token": "someone-else", "process": None, "started": time.time(), "heartbeat": time.time(), **row})
    db.close()


def test_a_second_lease_in_the_same_process_is_refused_with_the_holder(tmp_path):
    path = tmp_path / "s.sqlite"
    with StoreLease(path) as first:
        assert first.held
        with pytest.raises(StoreBusyError) as busy:
            StoreLease(path).acquire()
        message = str(busy.value)
        assert "\n" not in message and str(path) in message
        assert f"pid {os.getpid()} on host {socket.gethostname()} since " in message
        assert busy.value.holder["token"] == first.token
        # another thread of this process is another writer too
        errors = []
        thread = threading.Thread(target=lambda: errors.append(_try(lambda: hold_store(path).__enter__())))
        thread.start()
        thread.join()
        assert isinstance(errors[0], StoreBusyError)
    assert lease_holder(path) is None  # released
    with StoreLease(path):
        pass


def test_of_writers_starting_together_exactly_one_gets_the_lease(tmp_path):
    path = tmp_path / "s.sqlite"
    StoreLease(path).acquire().release()  # the table exists: the race is on the row
    start = threading.Barrier(6)
    won, refused = [], []

    def writer():
        lease = StoreLease(path)
        start.wait()
        try:
            won.append(lease.acquire())
        except StoreBusyError:
            refused.append(lease)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(won) == 1 and len(refused) == 5
        assert lease_holder(path)["token"] == won[0].token
    finally:
        for lease in won:
            lease.release()


def _try(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - handed back to the test
        return exc
    return None


def test_hold_store_reenters_in_its_thread_and_releases_once(tmp_path):
    path = tmp_path / "s.sqlite"
    with hold_store(path) as outer:
        with hold_store(tmp_path / "." / "s.sqlite") as inner:  # the same file, spelt differently
            assert inner is outer
        assert lease_holder(path)["token"] == outer.token  # the inner exit did not release it
    assert lease_holder(path) is None
    with hold_store(":memory:") as none:
        assert none is None


def test_a_lease_held_by_another_process_is_refused_and_taken_over_at_once_when_it_is_killed(tmp_path, holder_procs):
    path = tmp_path / "s.sqlite"
    proc = hold_in_subprocess(path, 60)
    holder_procs.append(proc)
    with pytest.raises(StoreBusyError, match=f"store in use by pid {proc.pid} on host "):
        StoreLease(path).acquire()
    os.kill(proc.pid, signal.SIGKILL)  # no chance to release
    proc.wait(timeout=30)
    assert lease_holder(path)["pid"] == proc.pid  # the row is still there
    t0 = time.monotonic()
    with StoreLease(path) as lease:  # no wait, no timeout: the pid is gone
        assert time.monotonic() - t0 < 5
        assert lease_holder(path)["token"] == lease.token and lease_holder(path)["pid"] == os.getpid()


def test_a_stale_lease_from_another_host_is_taken_over_only_after_the_timeout(tmp_path):
    path = tmp_path / "s.sqlite"
    write_row(path, pid=1, host="elsewhere.example", heartbeat=time.time())
    with pytest.raises(StoreBusyError, match="pid 1 on host elsewhere.example"):
        StoreLease(path, stale_after=1.0).acquire()
    time.sleep(1.2)  # no heartbeat for longer than the timeout
    with StoreLease(path, stale_after=1.0) as lease:
        assert lease_holder(path)["token"] == lease.token
    # the default timeout
    write_row(path, pid=1, host="elsewhere.example", heartbeat=time.time() - LEASE_STALE_S / 2)
    with pytest.raises(StoreBusyError):
        StoreLease(path).acquire()
    write_row(path, pid=1, host="elsewhere.example", heartbeat=time.time() - LEASE_STALE_S - 1)
    StoreLease(path).acquire().release()


def test_a_live_pid_on_this_host_holds_unless_it_is_a_reused_pid(tmp_path):
    path = tmp_path / "s.sqlite"
    parent = os.getppid()  # alive, and not this process
    write_row(path, pid=parent, host=socket.gethostname())
    with pytest.raises(StoreBusyError, match=f"pid {parent} "):
        StoreLease(path).acquire()
    if sys.platform.startswith("linux"):  # the holder's start time is recorded: another process with its pid is not it
        write_row(path, pid=parent, host=socket.gethostname(), process="another-boot:12345")
        StoreLease(path).acquire().release()
    # a row with this process's pid that this process does not hold: left by an earlier process
    write_row(path, pid=os.getpid(), host=socket.gethostname())
    StoreLease(path).acquire().release()


def test_the_holder_keeps_its_heartbeat_fresh_and_notices_a_takeover(tmp_path):
    path = tmp_path / "s.sqlite"
    lease = StoreLease(path, heartbeat_every=0.05).acquire()
    try:
        first = lease_holder(path)["heartbeat"]
        deadline = time.monotonic() + 10
        while lease_holder(path)["heartbeat"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease_holder(path)["heartbeat"] > first
        with sqlite3.connect(path) as db:  # someone took it over (as after a stale heartbeat)
            db.execute("UPDATE lease SET token='intruder'")
        db.close()
        deadline = time.monotonic() + 10
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.lost
    finally:
        lease.release()
    assert lease_holder(path)["token"] == "intruder"  # releasing never deletes another holder's row


def test_wait_waits_for_the_holder_and_then_proceeds(tmp_path, holder_procs):
    path = tmp_path / "s.sqlite"
    proc = hold_in_subprocess(path, 2)
    holder_procs.append(proc)
    messages = []
    t0 = time.monotonic()
    with StoreLease(path, wait=True, poll_every=0.1, on_wait=messages.append) as lease:
        waited = time.monotonic() - t0
        assert lease_holder(path)["token"] == lease.token
    assert waited > 1.0
    assert proc.wait(timeout=30) == 0  # the holder released it itself
    assert len(messages) == 1 and f"pid {proc.pid}" in messages[0] and "waiting" in messages[0]


def test_readers_need_no_lease_and_old_stores_keep_working(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:  # an old store: no lease table
        store.add_conversation("c1", "a", "b", "t", 1, {})
        store.add_utterances([{"conversation_id": "c1", "turn": 0, "speaker": "a", "text": "hi"}])
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "lease" not in tables and "runs" in tables  # opening a Store never creates the lease table
    assert lease_holder(path) is None
    with StoreLease(path):
        with Store(path) as reader:  # a reader while a writer holds the lease
            assert [c.id for c in reader.conversations()] == ["c1"]
            assert reader.counts()["utterances"] == 1
    with Store(path) as store:
        assert store.counts()["conversations"] == 1


def test_a_store_path_that_is_not_a_path_is_a_type_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in (None, 3):
        with pytest.raises(TypeError, match="path must be a file path or ':memory:'"):
            Store(bad)
    assert list(tmp_path.iterdir()) == []  # before this, Store(None) made a store file named "None"


def test_an_unusable_file_is_one_input_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite at all " * 100)
    with pytest.raises(InputError, match="not a usable teamgraph store"):
        StoreLease(bad).acquire()


# -- through the command line and the Python API ----------------------------------------------------

def fake_config(tmp_path):
    """Agents on an OpenAI endpoint nothing listens on: no model loads, and backends fail at once."""
    path = tmp_path / "fake.yaml"
    path.write_text(textwrap.dedent(f"""
        output: {tmp_path / "out"}
        backends:
          server: {{type: openai, base_url: "http://127.0.0.1:9/v1", max_retries: 0, timeout: 5}}
        defaults: {{backend: server, model: no-such-model, format: chat}}
        agents:
          - {{name: ada, labels: {{family: f1, role: math}}}}
          - {{name: bob, labels: {{family: f2, role: medical}}}}
        topics: [general]
        conversation: {{turns: 2}}
        evaluation: {{benchmarks: [mmlu_math], n_items: 2}}
    """))
    return path


@pytest.mark.parametrize("command", [
    ["run"], ["evaluate"], ["study", "--report", "REPORT"], ["sweep", "--run"], ["compare", "--run"],
])
def test_a_busy_store_exits_2_with_one_line_before_any_backend(tmp_path, capsys, monkeypatch, command):
    config = fake_config(tmp_path)
    store = tmp_path / "out" / "store.sqlite"
    opened = []
    monkeypatch.setattr("teamgraph.pipeline.make_backend", lambda *a, **k: opened.append(a))
    command = [str(tmp_path / "report.md") if arg == "REPORT" else arg for arg in command]
    with StoreLease(store):
        code = main([command[0], str(config), *command[1:]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("teamgraph: error: "), err
    assert f"{store}: store in use by pid {os.getpid()} on host {socket.gethostname()} since " in err
    assert not opened  # refused before any backend opened


def test_readers_of_a_busy_store_do_not_wait_for_it(tmp_path, capsys):
    config = fake_config(tmp_path)
    with StoreLease(tmp_path / "out" / "store.sqlite"):
        code = main(["sweep", str(config)])  # reads the store: its conversations are missing, not locked
    err = capsys.readouterr().err
    assert code == 2 and "not in the store" in err and "in use" not in err


def test_a_busy_store_via_the_real_console_has_one_line_and_no_traceback(tmp_path, holder_procs):
    config = fake_config(tmp_path)
    store = tmp_path / "out" / "store.sqlite"
    proc = hold_in_subprocess(store, 60)
    holder_procs.append(proc)
    run = subprocess.run([sys.executable, "-m", "teamgraph", "run", str(config), "--quiet"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert f"{store}: store in use by pid {proc.pid} on host {socket.gethostname()}" in run.stderr


def test_run_wait_waits_then_proceeds(tmp_path, capsys, caplog, holder_procs):
    config = fake_config(tmp_path)
    store = tmp_path / "out" / "store.sqlite"
    proc = hold_in_subprocess(store, 2)
    holder_procs.append(proc)
    code = main(["run", str(config), "--quiet", "--wait"])
    err = capsys.readouterr().err
    assert proc.wait(timeout=30) == 0
    said = caplog.text + err  # the waiting message is a logged warning (on stderr in the console)
    assert f"store in use by pid {proc.pid}" in said and "waiting" in said
    # then it went on to the backends, which fail here (nothing listens): the lease no longer stopped it
    assert code == 2 and "agent ada" in err.splitlines()[-1]
    assert lease_holder(store) is None  # and it gave the lease back


def test_the_python_run_takes_the_lease_before_backends_and_releases_it_on_interrupt(tmp_path, monkeypatch):
    from teamgraph import pipeline

    config = load_config(fake_config(tmp_path))
    store = tmp_path / "out" / "store.sqlite"

    def interrupted(*args, **kwargs):
        holder = lease_holder(store)
        assert holder is not None and holder["pid"] == os.getpid()  # held while backends open
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "open_backends", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(config)
    assert lease_holder(store) is None
    with StoreLease(store):
        with pytest.raises(StoreBusyError):
            pipeline.run(config)
