"""One writer per store: a lease row in the store, naming its holder and kept fresh by a heartbeat.

Whatever generates into a store (``run``, ``evaluate``, ``study``) first takes its lease
(``hold_store``); a second writer gets ``StoreBusyError`` (one line naming the holder) or, with
``wait``, waits. Readers never take it and never wait for it.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import InputError, TeamgraphError

__all__ = ["LEASE_HEARTBEAT_S", "LEASE_STALE_S", "LEASE_POLL_S", "StoreBusyError", "describe_holder", "StoreLease",
           "lease_holder", "hold_store"]

logger = logging.getLogger(__name__)

# -- the writer's lease -------------------------------------------------------------------------
# One writer per store: two processes generating into one store would each continue conversations
# from the history they hold in memory, and INSERT OR IGNORE would keep a turn generated from a turn
# that is not the stored one. The lease is a single row, created on first use (CREATE TABLE IF NOT
# EXISTS: older stores and older teamgraph versions are unaffected; readers never create it).

LEASE_HEARTBEAT_S = 5.0   # the holder refreshes its heartbeat this often
LEASE_STALE_S = 60.0      # a holder on another host is presumed dead after this long without a heartbeat
LEASE_POLL_S = 1.0        # how often a waiting writer (--wait) tries again

_LEASE_TABLE = """CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 0), token TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    started REAL NOT NULL, heartbeat REAL NOT NULL, process TEXT
)"""
_LEASE_COLUMNS = ("token", "pid", "host", "started", "heartbeat", "process")
_HOST = socket.gethostname()
_held_tokens: set[str] = set()       # leases this process holds (any thread)
_held_lock = threading.Lock()
_local = threading.local()           # path -> lease held by this thread, for hold_store's re-entry


class StoreBusyError(TeamgraphError):
    """Another writer holds the store's lease. The message names the store and the holder."""

    def __init__(self, path: str, holder: dict[str, Any]):
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: store in use by {describe_holder(holder)}; wait for it with --wait "
                         "(wait=True in Python) or use another --store")


def describe_holder(holder: dict[str, Any], now: float | None = None) -> str:
    """``pid 123 on host h since 2025-01-01T12:00:00+00:00 (last heartbeat 3 s ago)``."""
    now = time.time() if now is None else now
    since = datetime.datetime.fromtimestamp(holder["started"]).astimezone().isoformat(timespec="seconds")
    beat = max(0.0, now - holder["heartbeat"])
    return f"pid {holder['pid']} on host {holder['host']} since {since} (last heartbeat {beat:.0f} s ago)"


def _unusable(path: str, exc: sqlite3.Error) -> InputError:
    if isinstance(exc, sqlite3.OperationalError):  # locked past the timeout, read-only file or folder, ...
        return InputError(f"{path}: cannot take the store's write lease ({exc})")
    return InputError(f"{path}: not a usable teamgraph store ({exc})")


def _process_identity(pid: int) -> str | None:
    """Boot id and start time of process ``pid`` (Linux), so a reused pid is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot}:{fields[19]}"  # field 22 of stat, counted after "pid (comm)"
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, process: str | None) -> bool:
    """Whether process ``pid`` on this host still exists (and is the one that took the lease)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        pass  # exists, owned by another user
    if process is not None:
        now = _process_identity(pid)
        if now is not None and now != process:
            return False  # the pid was reused by another process
    return True


class StoreLease:
    """The single-writer lease on the store at ``path``.

    ``acquire`` takes it atomically (``BEGIN IMMEDIATE``) or raises ``StoreBusyError`` naming the
    holder; with ``wait`` it polls every ``poll_every`` seconds until the lease is free. A holder is
    presumed dead, and its lease taken over, when on this host its pid no longer exists, or on
    another host when its heartbeat is older than ``stale_after`` seconds. While held, a daemon
    thread refreshes the heartbeat every ``heartbeat_every`` seconds. Not re-entrant: a second
    ``StoreLease`` on the same store is refused even in the same process (``hold_store`` re-enters).
    """

    def __init__(self, path: str | Path, *, wait: bool = False, stale_after: float = LEASE_STALE_S,
                 heartbeat_every: float = LEASE_HEARTBEAT_S, poll_every: float = LEASE_POLL_S,
                 on_wait: Callable[[str], None] | None = None):
        self.path = str(path)
        self.wait = wait
        self.stale_after = stale_after
        self.heartbeat_every = heartbeat_every
        self.poll_every = poll_every
        self.on_wait = on_wait or logger.warning
        self.token = uuid.uuid4().hex
        self.lost = False  # set when another writer took the lease over while this one held it
        self._db: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._db is not None

    def __enter__(self) -> "StoreLease":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> "StoreLease":
        """Take the lease, waiting while another live writer holds it (``wait``), else StoreBusyError;
        a heartbeat thread keeps it fresh until :meth:`release`."""
        if self.held:
            raise RuntimeError(f"{self.path}: this lease is already held")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: not a usable teamgraph store ({exc})") from None
        with _held_lock:  # ours from the moment our row may exist: another thread of this process must see it held
            _held_tokens.add(self.token)
        try:
            try:
                db.execute("PRAGMA journal_mode=WAL")  # as Store does: readers go on while the holder writes
            except sqlite3.Error as exc:
                raise _unusable(self.path, exc) from None
            announced = False
            while True:
                holder = self._try_take(db)
                if holder is None:
                    break
                if not self.wait:
                    raise StoreBusyError(self.path, holder)
                if not announced:
                    self.on_wait(f"{self.path}: store in use by {describe_holder(holder)}; waiting for it to be "
                                 "free (Ctrl-C to stop)")
                    announced = True
                time.sleep(self.poll_every)
        except BaseException:
            with _held_lock:
                _held_tokens.discard(self.token)
            db.close()
            raise
        self._db = db
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"teamgraph-lease-{self.token[:8]}", daemon=True)
        self._thread.start()
        return self

    def _try_take(self, db: sqlite3.Connection) -> dict[str, Any] | None:
        """Take the lease if it is free or its holder is dead; else return the live holder's row."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from None
        try:
            db.execute(_LEASE_TABLE)
            row = db.execute(f"SELECT {', '.join(_LEASE_COLUMNS)} FROM lease WHERE id=0").fetchone()
            now = time.time()
            if row is not None:
                holder = dict(zip(_LEASE_COLUMNS, row))
                if self._alive(holder, now):
                    db.execute("ROLLBACK")
                    return holder
                logger.warning("%s: taking over the store's lease from %s, which is gone",
                               self.path, describe_holder(holder, now))
            db.execute("INSERT OR REPLACE INTO lease (id, token, pid, host, started, heartbeat, process) "
                       "VALUES (0, ?, ?, ?, ?, ?, ?)",
                       (self.token, os.getpid(), _HOST, now, now, _process_identity(os.getpid())))
            db.execute("COMMIT")
            return None
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _unusable(self.path, exc) from None
            raise

    def _alive(self, holder: dict[str, Any], now: float) -> bool:
        with _held_lock:
            if holder["token"] in _held_tokens:
                return True  # held by this very process
        if holder["host"] == _HOST and os.name == "posix":
            if holder["pid"] == os.getpid():
                return False  # not one of ours (above): left by an earlier process that had our pid
            return _pid_alive(int(holder["pid"]), holder["process"])
        return now - float(holder["heartbeat"]) < self.stale_after

    def _beat(self) -> None:
        db = self._db
        while not self._stop.wait(self.heartbeat_every):
            try:
                cur = db.execute("UPDATE lease SET heartbeat=? WHERE id=0 AND token=?", (time.time(), self.token))
            except sqlite3.Error as exc:  # busy or gone: try again at the next beat
                logger.debug("%s: lease heartbeat failed (%s)", self.path, exc)
                continue
            if cur.rowcount == 0:
                self.lost = True
                logger.warning("%s: another writer took over this run's store lease (no heartbeat for %.0f s?); "
                               "stop one of them", self.path, self.stale_after)
                return

    def release(self) -> None:
        """Give the lease back (idempotent). Never raises for a store that cannot be written any more."""
        db, self._db = self._db, None
        if db is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        with _held_lock:
            _held_tokens.discard(self.token)
        try:
            db.execute("DELETE FROM lease WHERE id=0 AND token=?", (self.token,))
        except sqlite3.Error as exc:
            logger.warning("%s: could not release the store's lease (%s); the next writer takes it over",
                           self.path, exc)
        finally:
            db.close()


def lease_holder(path: str | Path) -> dict[str, Any] | None:
    """The current lease row of the store at ``path`` (None when free or never leased), read only."""
    if str(path) == ":memory:" or not Path(path).is_file():
        return None
    db = sqlite3.connect(f"file:{urllib.parse.quote(Path(path).resolve().as_posix())}?mode=ro", uri=True, timeout=30.0)
    try:
        row = db.execute(f"SELECT {', '.join(_LEASE_COLUMNS)} FROM lease WHERE id=0").fetchone()
    except sqlite3.OperationalError:
        return None  # no lease table: never leased
    finally:
        db.close()
    return dict(zip(_LEASE_COLUMNS, row)) if row else None


@contextlib.contextmanager
def hold_store(path: str | Path, wait: bool = False, **settings: Any) -> Iterator[StoreLease | None]:
    """Hold the writer's lease on ``path`` for the ``with`` block (released also on Ctrl-C).

    Re-entrant within a thread: a nested ``hold_store`` of the same file reuses the lease (so
    ``evaluate`` can run the pipeline under the lease it holds). ``":memory:"`` needs no lease.
    ``settings`` go to ``StoreLease`` (``stale_after``, ``poll_every``, ...).
    """
    if str(path) == ":memory:":
        yield None
        return
    key = os.path.realpath(path)
    held: dict[str, StoreLease] = _local.__dict__.setdefault("held", {})
    if key in held:
        yield held[key]
        return
    lease = StoreLease(path, wait=wait, **settings).acquire()
    held[key] = lease
    try:
        yield lease
    finally:
        held.pop(key, None)
        lease.release()
