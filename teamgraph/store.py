"""SQLite store: every model call and every embedding is written once, keyed by what produced it.

The store is the spine of a run. Re-running the same command finds what exists and computes only
what is missing; each utterance is committed as soon as it arrives, so a crash loses at most the
calls in flight. WAL mode lets a notebook read while a run writes.

A store has one writer at a time: see :mod:`teamgraph.lease`.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .conversations import Conversation, Utterance
from .errors import InputError


SCHEMA_VERSION = 1

_SCHEMA = """
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


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: the cache key of whatever ``obj`` describes."""
    payload = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """A SQLite file (or ``":memory:"``) holding conversations, utterances, embeddings and answers."""

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable teamgraph store ({exc})") from None
        self._lock = threading.Lock()
        found = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(found[0]) != SCHEMA_VERSION:
            raise InputError(f"{self.path}: store schema {found[0]} is not the supported {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, rows: Sequence[tuple] | tuple) -> None:
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

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, config: dict) -> str:
        run_id = stable_hash(config)[:16]
        self._write("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, NULL)", (run_id, json.dumps(config, sort_keys=True), time.time()))
        return run_id

    def finish_run(self, run_id: str) -> None:
        self._write("UPDATE runs SET finished=? WHERE id=?", (time.time(), run_id))

    # -- conversations ------------------------------------------------------------------------
    def add_conversation(self, conv_id: str, agent_a: str, agent_b: str, topic: str, n_turns: int, spec: dict) -> None:
        """Register a conversation (idempotent: an existing id is left as it is)."""
        self._write(
            "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conv_id, agent_a, agent_b, topic, n_turns, json.dumps(spec, sort_keys=True), time.time()),
        )

    def add_utterances(self, rows: Iterable[dict]) -> None:
        """Record utterances; a (conversation, turn) already stored is never duplicated or overwritten."""
        now = time.time()
        tuples = [
            (r["conversation_id"], r["turn"], r["speaker"], r["text"], r.get("status", "ok"), r.get("error"),
             r.get("n_tokens"), r.get("seconds"), now)
            for r in rows
        ]
        if tuples:
            self._write("INSERT OR IGNORE INTO utterances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuples)

    def utterances(self, conv_id: str) -> list[dict]:
        cur = self._db.execute(
            "SELECT turn, speaker, text, status, error, n_tokens, seconds FROM utterances WHERE conversation_id=? ORDER BY turn",
            (conv_id,),
        )
        cols = ("turn", "speaker", "text", "status", "error", "n_tokens", "seconds")
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def conversation(self, conv_id: str) -> Conversation | None:
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
        return {
            t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("conversations", "utterances", "embeddings", "answers")
        }

    # -- embeddings ---------------------------------------------------------------------------
    def get_embeddings(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_embeddings(self, model: str, items: dict[str, np.ndarray]) -> None:
        rows = [(k, model, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        if rows:
            self._write("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    # -- answers ------------------------------------------------------------------------------
    def get_answers(self, keys: Sequence[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        cols = ("key", "agent", "benchmark", "item_id", "round", "raw", "answer", "status")
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {', '.join(cols)} FROM answers WHERE key IN ({marks})", chunk):
                out[row[0]] = dict(zip(cols, row))
        return out

    def put_answers(self, rows: Iterable[dict]) -> None:
        now = time.time()
        tuples = [
            (r["key"], r["agent"], r["benchmark"], r["item_id"], r.get("round", 0), r["raw"], r.get("answer"),
             r.get("status", "ok"), now)
            for r in rows
        ]
        if tuples:
            self._write("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuples)
