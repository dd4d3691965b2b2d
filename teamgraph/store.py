"""SQLite store: every model call and every embedding is written once, keyed by what produced it.

The store is the spine of a run. Re-running the same command finds what exists and computes only
what is missing; each utterance is committed as soon as it arrives, so a crash loses at most the
calls in flight. WAL mode lets a notebook read while a run writes.

A store has one writer at a time: see :mod:`teamgraph.lease`. Every ``run``, ``evaluate`` and
``study`` leaves a record of itself in the ``runs`` table (see :mod:`teamgraph.records`).

Schema versions (``meta.schema_version``): 1, the first; 2 adds the run-record columns to ``runs``
(kind, status, message, name, teamgraph_version, revision, record). A version-1 store is migrated in
place when it is opened (columns added; no other table is touched); a store newer than this code
knows is refused with an ``InputError``, never read.

Cache keys leave agent labels out (``Agent.identity_dict``); stores written before that hold rows
under keys that hashed the labels too. No table changed, so the schema version did not: such rows are
re-keyed lazily, when a run plans them (:meth:`Store.rekey`): the first move logs one line, and closing
the store logs the total.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .conversations import Conversation, Utterance
from .errors import InputError

__all__ = ["SCHEMA_VERSION", "RUN_COLUMNS_V2", "RUN_COLUMNS", "read_schema_version", "check_schema_version",
           "run_record_row", "records_from_rows", "stable_hash", "Store"]

logger = logging.getLogger(__name__)

#: The schema this code writes (``meta.schema_version``); older stores are migrated up to it.
SCHEMA_VERSION = 2

#: Columns schema 2 added to ``runs`` (schema 1 had id, config, started, finished), in table order.
RUN_COLUMNS_V2 = ("kind", "status", "message", "name", "teamgraph_version", "revision", "record")
RUN_COLUMNS = ("id", "config", "started", "finished", *RUN_COLUMNS_V2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, config TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    kind TEXT, status TEXT, message TEXT, name TEXT, teamgraph_version TEXT, revision TEXT, record TEXT
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
CREATE TABLE IF NOT EXISTS probes (
    id TEXT PRIMARY KEY, agent TEXT NOT NULL, topic TEXT NOT NULL, probe INTEGER NOT NULL,
    text TEXT NOT NULL, status TEXT NOT NULL, error TEXT, n_tokens INTEGER, seconds REAL, created REAL NOT NULL
);
"""


def read_schema_version(db: sqlite3.Connection, path: str) -> int | None:
    """The store's ``meta.schema_version`` (None: a new file, or no teamgraph tables yet)."""
    try:
        found = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if found is None:
        return None
    try:
        return int(found[0])
    except (TypeError, ValueError):
        raise InputError(f"{path}: not a usable teamgraph store (schema version {str(found[0])[:40]!r})") from None


def check_schema_version(path: str, version: int | None) -> None:
    """InputError for a store written by a newer teamgraph (its tables may mean something else)."""
    if version is not None and version > SCHEMA_VERSION:
        raise InputError(f"{path}: store schema {version} is newer than this teamgraph knows (up to "
                         f"{SCHEMA_VERSION}); upgrade teamgraph to read it")
    if version is not None and version < 1:
        raise InputError(f"{path}: not a usable teamgraph store (schema version {version})")


def run_record_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """The ``runs`` row of a run record; the ``record`` column holds the rest of it as JSON."""
    rest = {k: v for k, v in record.items() if k != "config"}
    return (record["id"], json.dumps(record.get("config") or {}, sort_keys=True, ensure_ascii=False),
            record["started_at"], record.get("finished_at"), record["kind"], record["status"], record.get("message"),
            record.get("name"), record.get("teamgraph_version"), record.get("revision"),
            json.dumps(rest, ensure_ascii=False, default=str))


def records_from_rows(db: sqlite3.Connection, version: int) -> list[dict[str, Any]]:
    """Run records from the ``runs`` table of a store of schema ``version`` (1: the bare columns)."""
    columns = RUN_COLUMNS if version >= 2 else RUN_COLUMNS[:4]
    out = []
    for row in db.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY started, id"):
        values = dict(zip(columns, row))
        try:
            record = json.loads(values.get("record") or "{}")
            config = json.loads(values["config"] or "{}")
        except json.JSONDecodeError:
            record, config = {}, {}
        if not isinstance(record, dict):
            record = {}
        record.update({k: values.get(k) for k in ("id", "kind", "status", "message", "name", "teamgraph_version",
                                                  "revision")})
        if version < 2 or values.get("kind") is None:  # a row from before run records (schema 1)
            record["status"] = record["status"] or ("finished" if values["finished"] is not None else "unknown")
            record["name"] = record["name"] or (config.get("name") if isinstance(config, dict) else None)
        record["started_at"], record["finished_at"] = values["started"], values["finished"]
        record["config"] = config
        out.append(record)
    return out


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: the cache key of whatever ``obj`` describes.

    Keys are sorted and separators fixed, so equal objects give equal keys whatever their key
    order; values JSON cannot hold are written with ``str``.

    Parameters
    ----------
    obj : object
        Anything JSON-serialisable (other values go through ``str``).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> stable_hash({"model": "m", "seed": 1}) == stable_hash({"seed": 1, "model": "m"})
    True
    >>> len(stable_hash(["all-MiniLM-L6-v2", "hello"]))
    64
    """
    payload = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """A SQLite file (or ``":memory:"``) holding conversations, utterances, embeddings and answers.

    Every write is idempotent (``INSERT OR IGNORE``): what is stored is never overwritten, so a
    resumed run adds only what is missing. Opening a store written by an older teamgraph migrates
    it (see the module docstring). One Store may be shared by threads; one process writes at a
    time (:func:`teamgraph.lease.hold_store`).

    Parameters
    ----------
    path : str or Path, default ":memory:"
        The SQLite file (created, with its folders, when missing), or ``":memory:"`` for a store
        that lives as long as the object.

    Attributes
    ----------
    path : str
        As given.

    Raises
    ------
    InputError
        ``path`` is not a SQLite file, or was written by a newer teamgraph (schema version above
        :data:`SCHEMA_VERSION`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "store.sqlite"
    >>> with Store(path) as store:
    ...     store.add_conversation("c1", "ada", "bob", "mathematics", n_turns=2, spec={"seed": 0})
    ...     store.add_utterances([{"conversation_id": "c1", "turn": 0, "speaker": "ada", "text": "2 + 2?"},
    ...                           {"conversation_id": "c1", "turn": 1, "speaker": "bob", "text": "4"}])
    >>> with Store(path) as store:  # reopening finds everything
    ...     [(c.id, c.pair, [u.text for u in c.utterances]) for c in store.conversations()]
    [('c1', ('ada', 'bob'), ['2 + 2?', '4'])]
    >>> tmp.cleanup()
    """

    def __init__(self, path: str | Path = ":memory:"):
        if not isinstance(path, (str, Path)):  # str(None) would be a store file named "None"
            raise TypeError(f"Store: path must be a file path or ':memory:', not {type(path).__name__}")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rekeyed = [0, 0]  # conversations, answers moved by rekey() since opening: logged by close()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable teamgraph store ({exc})") from None
        try:
            check_schema_version(self.path, read_schema_version(self._db, self.path))  # before any write
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise InputError(f"{self.path}: not a usable teamgraph store ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        """Bring the store to ``SCHEMA_VERSION`` in one write transaction (nothing to do when it is there)."""
        if read_schema_version(self._db, self.path) == SCHEMA_VERSION:
            return  # the usual case: no write lock taken
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates; another waits, then finds it done
        try:
            found = read_schema_version(self._db, self.path)
            check_schema_version(self.path, found)
            if found != SCHEMA_VERSION:
                have = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
                for column in RUN_COLUMNS_V2:  # 1 -> 2: run-record columns; existing rows keep their values
                    if column not in have:
                        self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database connection (also done on leaving a ``with`` block); logs what was re-keyed."""
        if any(self._rekeyed):
            logger.warning("%s: re-keyed %d conversations and %d answers from labelled keys (labels are no longer "
                           "part of cache keys; nothing was generated again)", self.path, *self._rekeyed)
            self._rekeyed = [0, 0]
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]] | tuple[Any, ...]) -> None:
        with self._lock:
            if rows and isinstance(rows[0], tuple):
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(sql, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            else:
                self._db.execute(sql, rows)

    def _present(self, table: str, column: str, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        out: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {column} FROM {table} WHERE {column} IN ({marks})"
            out.update(r[0] for r in self._db.execute(sql, chunk))
        return out

    def _rekey_moves(self, conversations: Mapping[str, str],
                     answers: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(new, old) pairs to move: the old key is stored, the new one is not (nor, for a conversation, any
        utterance under it)."""
        conv_old = self._present("conversations", "id", conversations.values())
        conv = [(new, old) for new, old in conversations.items() if old in conv_old]
        if conv:
            taken = (self._present("conversations", "id", [n for n, _ in conv])
                     | self._present("utterances", "conversation_id", [n for n, _ in conv]))
            conv = [(new, old) for new, old in conv if new not in taken]
        ans_old = self._present("answers", "key", answers.values())
        ans = [(new, old) for new, old in answers.items() if old in ans_old]
        if ans:
            taken = self._present("answers", "key", [n for n, _ in ans])
            ans = [(new, old) for new, old in ans if new not in taken]
        return conv, ans

    def rekey(self, conversations: Mapping[str, str] | None = None,
              answers: Mapping[str, str] | None = None) -> tuple[int, int]:
        """Move rows stored under old keys to new ones, in one transaction: ``{new key: old key}`` per table.

        A pair moves only when its old key is stored and its new key is not (for a conversation: no
        conversation row and no utterance under it), so re-keying twice, or a key already present, changes
        nothing; no other row is touched. A conversation moves with its utterances (``utterances.conversation_id``);
        embeddings are keyed by text and embedder, not by conversation, and need nothing. Returns
        (conversations moved, answers moved) and logs a line when it moved any.
        """
        conversations = {n: o for n, o in (conversations or {}).items() if o and o != n}
        answers = {n: o for n, o in (answers or {}).items() if o and o != n}
        if not conversations and not answers:
            return 0, 0
        with self._lock:
            conv, ans = self._rekey_moves(conversations, answers)  # a read first: no write lock when nothing moves
            if not conv and not ans:
                return 0, 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                conv, ans = self._rekey_moves(conversations, answers)  # again, under the write lock
                self._db.executemany("UPDATE conversations SET id=? WHERE id=?", conv)
                self._db.executemany("UPDATE utterances SET conversation_id=? WHERE conversation_id=?", conv)
                self._db.executemany("UPDATE answers SET key=? WHERE key=?", ans)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if conv or ans:
            if not any(self._rekeyed):
                logger.warning("%s: moving rows stored under labelled keys to their new keys as they are used (labels "
                               "are no longer part of cache keys; nothing is generated again); the total follows "
                               "when the store closes", self.path)
            logger.info("%s: re-keyed %d conversations and %d answers", self.path, len(conv), len(ans))
            self._rekeyed[0] += len(conv)
            self._rekeyed[1] += len(ans)
        return len(conv), len(ans)

    # -- run records (teamgraph.records) -------------------------------------------------------
    def put_run_record(self, record: dict[str, Any]) -> None:
        """Write (or overwrite, by id) one run record: the dict of :class:`teamgraph.records.RunRecord`."""
        self._write(f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                    run_record_row(record))

    def run_records(self) -> list[dict[str, Any]]:
        """Every run record of the store, oldest first (see :func:`teamgraph.records.read_run_records`)."""
        return records_from_rows(self._db, SCHEMA_VERSION)

    # -- conversations ------------------------------------------------------------------------
    def add_conversation(self, conv_id: str, agent_a: str, agent_b: str, topic: str, n_turns: int, spec: dict[str, Any]) -> None:
        """Register a conversation (idempotent: an existing id is left as it is)."""
        self._write(
            "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conv_id, agent_a, agent_b, topic, n_turns, json.dumps(spec, sort_keys=True), time.time()),
        )

    def add_utterances(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record utterances; a (conversation, turn) already stored is never duplicated or overwritten."""
        now = time.time()
        tuples = [
            (r["conversation_id"], r["turn"], r["speaker"], r["text"], r.get("status", "ok"), r.get("error"),
             r.get("n_tokens"), r.get("seconds"), now)
            for r in rows
        ]
        if tuples:
            self._write("INSERT OR IGNORE INTO utterances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuples)

    def utterances(self, conv_id: str) -> list[dict[str, Any]]:
        """The stored turns of a conversation, in order: dicts of turn, speaker, text, status, error,
        n_tokens, seconds (empty when none is stored)."""
        cur = self._db.execute(
            "SELECT turn, speaker, text, status, error, n_tokens, seconds FROM utterances WHERE conversation_id=? ORDER BY turn",
            (conv_id,),
        )
        cols = ("turn", "speaker", "text", "status", "error", "n_tokens", "seconds")
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def conversation(self, conv_id: str) -> Conversation | None:
        """The conversation ``conv_id`` with the turns stored so far, or None when it is not stored."""
        row = self._db.execute(
            "SELECT agent_a, agent_b, topic FROM conversations WHERE id=?", (conv_id,)
        ).fetchone()
        if row is None:
            return None
        utts = [Utterance(u["speaker"], u["text"], u["status"]) for u in self.utterances(conv_id)]
        return Conversation(row[0], row[1], row[2], tuple(utts), conv_id)

    def conversations(self, ids: Sequence[str] | None = None, complete_only: bool = True) -> list[Conversation]:
        """Stored conversations (by default only those with all their turns), sorted by id."""
        sql = (
            "SELECT c.id FROM conversations c LEFT JOIN utterances u ON u.conversation_id=c.id "
            "GROUP BY c.id HAVING COUNT(u.turn) >= c.n_turns OR ? ORDER BY c.id"
        )
        found = [r[0] for r in self._db.execute(sql, (0 if complete_only else 1,)).fetchall()]
        if ids is not None:
            wanted = set(ids)
            found = [i for i in found if i in wanted]
        return [c for c in (self.conversation(i) for i in found) if c is not None]

    def counts(self) -> dict[str, int]:
        """Rows per table: conversations, utterances, embeddings, answers, probes."""
        return {
            t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("conversations", "utterances", "embeddings", "answers", "probes")
        }

    # -- probes (fingerprints) ----------------------------------------------------------------
    def add_probes(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record probe replies (:mod:`teamgraph.fingerprints`): dicts of id, agent, topic, probe, text and
        optionally status, error, n_tokens, seconds; a stored id is kept as it is."""
        now = time.time()
        tuples = [(r["id"], r["agent"], r["topic"], r["probe"], r["text"], r.get("status", "ok"), r.get("error"),
                   r.get("n_tokens"), r.get("seconds"), now) for r in rows]
        if tuples:
            self._write("INSERT OR IGNORE INTO probes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tuples)

    def probes(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored probe replies by id: dicts of id, agent, topic, probe, text, status; ids not stored are left out."""
        return self._rows_by_key("probes", ("id", "agent", "topic", "probe", "text", "status"), ids)

    def _rows_by_key(self, table: str, cols: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Rows of ``table`` whose first column ``cols[0]`` is among ``keys``, as dicts by key (500 keys a query)."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {cols[0]} IN ({marks})", chunk):
                out[row[0]] = dict(zip(cols, row))
        return out

    # -- embeddings ---------------------------------------------------------------------------
    def get_embeddings(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors (float32) by key; keys not stored are left out."""
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_embeddings(self, model: str, items: dict[str, np.ndarray]) -> None:
        """Store vectors (as float32) by key, noting the embedder ``model``; stored keys are kept as they are."""
        rows = [(k, model, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        if rows:
            self._write("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    # -- answers ------------------------------------------------------------------------------
    def get_answers(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored benchmark answers by key: dicts of key, agent, benchmark, item_id, round, raw, answer,
        status; keys not stored are left out."""
        return self._rows_by_key("answers", ("key", "agent", "benchmark", "item_id", "round", "raw", "answer", "status"),
                                 keys)

    def put_answers(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record benchmark answers (``round`` defaults to 0, ``status`` to ``ok``); stored keys are kept."""
        now = time.time()
        tuples = [
            (r["key"], r["agent"], r["benchmark"], r["item_id"], r.get("round", 0), r["raw"], r.get("answer"),
             r.get("status", "ok"), now)
            for r in rows
        ]
        if tuples:
            self._write("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuples)
