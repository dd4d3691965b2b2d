"""Run records: every ``run``, ``evaluate`` and ``study`` says what it was and what produced it.

A record is written when the invocation starts (status ``started``), updated as it learns more (the
agents' backend identities, the embedder) and finished as ``success``, ``cancelled`` (Ctrl-C) or
``error`` (with the one-line message). A process killed outright (``kill -9``, power loss) leaves
``started``. Resuming writes a new record with a new id; records are never rewritten afterwards.

Each record is kept twice: a row of the store's ``runs`` table (``teamgraph runs STORE`` lists them,
without the writer's lease) and a JSON file beside the invocation's outputs
(``<out>/run_record.json``, ``<evaluation out>/evaluate_record.json``, ``<output>/study_record.json``;
the latest record of that kind in that folder). Fields: docs/run-records.md. No secrets: API keys
are read from environment variables and never are in the config; URLs are redacted
(``redact_url``), and any setting named like a credential (``api_key_env`` included) is left out.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import importlib.metadata
import json
import logging
import os
import platform
import re
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from ._version import __version__
from .errors import InputError, TeamgraphError
from .store import Store, check_schema_version, read_schema_version, records_from_rows

__all__ = ["RECORD_FORMAT", "KINDS", "STATUSES", "RECORD_FILES", "RESULT_PACKAGES", "package_versions",
           "git_revision", "embedder_id", "public_value", "config_dict", "error_message", "new_record_id",
           "current_record_id", "RunRecord", "recording", "read_run_records", "runs_table"]

if TYPE_CHECKING:
    from .config import RunConfig

logger = logging.getLogger(__name__)

#: The version of the record's layout (``format`` in every record).
RECORD_FORMAT = "teamgraph.run_record/1"
KINDS = ("run", "evaluate", "study")
STATUSES = ("started", "success", "cancelled", "error")
#: The JSON file each kind writes beside its outputs.
RECORD_FILES = {"run": "run_record.json", "evaluate": "evaluate_record.json", "study": "study_record.json"}
#: Distributions whose versions can change results (importlib.metadata names; missing -> None).
RESULT_PACKAGES = ("numpy", "torch", "sentence-transformers", "llama-cpp-python", "vllm", "networkx",
                   "python-louvain", "scikit-network", "scikit-learn", "scipy")
#: Store tables whose new rows are model calls made by this invocation.
_CALL_TABLES = ("utterances", "answers", "embeddings", "probes")
_MESSAGE_LIMIT = 500

_active = threading.local()  # ids of the records open in this thread, innermost last (nested: study -> run)


# -- what produced it ---------------------------------------------------------------------------

def package_versions(names: Sequence[str] = RESULT_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (None when it is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=10, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_revision() -> tuple[str | None, bool | None]:
    """(commit, whether tracked files have uncommitted changes) of the checkout teamgraph runs from.

    Asked in the package's own folder, and only when the package's files are tracked there (an
    install under a virtual environment inside some other repository has no revision); (None, None)
    when git is missing or this is no checkout. ``--no-optional-locks``: never takes the index lock.
    """
    here = Path(__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "__init__.py"], here) is None:
        return None, None
    revision = _git(["rev-parse", "HEAD"], here)
    if not revision:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], here)
    return revision, None if status is None else bool(status)


def embedder_id(name: str) -> str:
    """The id an embedder name or path is cached under (``Embedder.model_id``), without loading it."""
    from .embedding import _resolve_model_path

    try:
        return _resolve_model_path(str(name))[1]
    except TeamgraphError:  # e.g. the default embedder's package is missing: the run will say so itself
        return str(name)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def public_value(value: Any) -> Any:
    """``value`` as plain JSON data without secrets: dataclasses and tuples become dicts and lists,
    keys named like credentials (``api_key_env`` too) are left out, URLs are redacted."""
    from .backends.openai_compat import redact_url
    from .config import is_secret_key

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): public_value(v) for k, v in value.items() if not is_secret_key(k)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [public_value(v) for v in value]
    if isinstance(value, str):
        return redact_url(value) if _URL.match(value) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def config_dict(config: "RunConfig") -> dict[str, Any]:
    """The resolved config as a plain dict (every setting after defaults), without secrets."""
    from .config import RunSettings

    out = {f.name: public_value(getattr(config, f.name)) for f in dataclasses.fields(RunSettings)}
    out["source"] = config.source
    out["backends"] = {name: public_value({"type": b.type, **b.settings}) for name, b in sorted(config.backends.items())}
    out["agents"] = [public_value(a.public_dict()) for a in config.agents]
    return out


def error_message(exc: BaseException) -> str:
    """What the command line prints for ``exc``: one line (a TeamgraphError's own message; else
    the exception's type, then its message)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    if not isinstance(exc, TeamgraphError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = text or type(exc).__name__
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT - 3] + "..."


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def new_record_id(now: float | None = None) -> str:
    """``20250101-120000-3fa9c2``: UTC start time (sorts by time) and 6 random hex digits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def current_record_id() -> str | None:
    """The innermost record open in this thread (a nested run's parent), or None."""
    stack = getattr(_active, "stack", None)
    return stack[-1] if stack else None


# -- the record ---------------------------------------------------------------------------------

class RunRecord:
    """One invocation's record, written to ``store`` (and to ``file`` when given) on every ``save``."""

    def __init__(self, kind: str, config: "RunConfig", store: Store, file: str | Path | None = None,
                 timings: dict[str, float] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        self.store = store
        self.file = Path(file) if file is not None else None
        self.timings = timings if timings is not None else {}
        self._before = self._counts()
        now = time.time()
        self.id = new_record_id(now)
        revision, dirty = git_revision()
        self.data: dict[str, Any] = {
            "format": RECORD_FORMAT,
            "id": self.id,
            "kind": kind,
            "status": "started",
            "message": None,
            "parent": current_record_id(),
            "name": config.name,
            "config_source": config.source,
            "started": _iso(now),
            "finished": None,
            "duration_s": None,
            "started_at": now,
            "finished_at": None,
            "teamgraph_version": __version__,
            "revision": revision,
            "revision_dirty": dirty,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
            "store": store.path,
            "file": str(self.file) if self.file is not None else None,
            "embedder": embedder_id(config.scoring.embedder),
            "agents": None,
            "timings": {},
            "store_rows": {"before": self._before, "after": None},
            "model_calls": {"made": None, "reused": {}},
            "config": config_dict(config),
        }

    def _counts(self) -> dict[str, int] | None:
        try:
            return self.store.counts()
        except sqlite3.Error:
            return None

    @property
    def status(self) -> str:
        return self.data["status"]

    def update(self, save: bool = True, **fields: Any) -> None:
        """Set top-level fields (``agents``, ``embedder``, ...); with ``save``, write the record now."""
        self.data.update(fields)
        if save:
            self.save()

    def reused(self, **counts: int | None) -> None:
        """Rows this invocation used that were already in the store (where cheaply known)."""
        self.data["model_calls"]["reused"].update({k: None if v is None else max(0, int(v)) for k, v in counts.items()})

    def as_dict(self) -> dict[str, Any]:
        """The record as written (timings rounded to ms)."""
        out = dict(self.data)
        out["timings"] = {k: round(float(v), 3) for k, v in self.timings.items()}
        return out

    def save(self) -> None:
        """Write the record to the store and, atomically, to its file when it has one."""
        record = self.as_dict()
        self.store.put_run_record(record)
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, self.file)

    def finish(self, status: str, message: str | None = None) -> None:
        """Close the record: end time, duration, rows made; never raises (logs a warning instead)."""
        if status not in STATUSES[1:]:
            raise ValueError(f"unknown final status {status!r}")
        now = time.time()
        after = self._counts()
        made = None
        if after is not None and self._before is not None:
            made = {t: after.get(t, 0) - self._before.get(t, 0) for t in _CALL_TABLES}
        self.data.update(status=status, message=message, finished=_iso(now), finished_at=now,
                         duration_s=round(now - self.data["started_at"], 3))
        self.data["store_rows"]["after"] = after
        self.data["model_calls"]["made"] = made
        try:
            self.save()
        except (OSError, sqlite3.Error, TeamgraphError) as exc:
            logger.warning("could not write run record %s as %s (%s)", self.id, status, exc)


@contextlib.contextmanager
def recording(kind: str, config: "RunConfig", store: Store, file: str | Path | None = None,
              timings: dict[str, float] | None = None) -> Iterator[RunRecord]:
    """Record the ``with`` block as one invocation of ``kind``: ``started`` now; at the end
    ``success``, ``cancelled`` (KeyboardInterrupt and other non-errors such as SystemExit) or
    ``error`` with the one-line message. The caller holds the store's writer lease."""
    record = RunRecord(kind, config, store, file, timings)
    try:
        record.save()
    except BaseException as exc:  # e.g. an output folder that cannot be written: the store's row must not stay "started"
        record.file = None
        record.finish("error", error_message(exc))
        raise
    stack = _active.__dict__.setdefault("stack", [])
    stack.append(record.id)
    try:
        yield record
    except Exception as exc:
        record.finish("error", error_message(exc))
        raise
    except BaseException as exc:
        reason = (str(exc) or "interrupted (Ctrl-C)") if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
        record.finish("cancelled", reason)
        raise
    else:
        record.finish("success")
    finally:
        stack.remove(record.id)


# -- reading ------------------------------------------------------------------------------------

def read_run_records(path: str | Path) -> list[dict[str, Any]]:
    """The run records of the store at ``path``, oldest first, read only: no lease, no migration,
    no write (a version-1 store lists its bare ``runs`` rows). InputError for a missing file, a file
    that is no teamgraph store, or a store newer than this code."""
    shown = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{shown}: no such store file")
    uri = f"file:{urllib.parse.quote(p.resolve().as_posix())}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise InputError(f"{shown}: not a usable teamgraph store ({exc})") from None
    try:
        version = read_schema_version(db, shown)
        if version is None:
            raise InputError(f"{shown}: not a teamgraph store (no schema version)")
        check_schema_version(shown, version)
        return records_from_rows(db, version)
    except sqlite3.Error as exc:
        raise InputError(f"{shown}: not a usable teamgraph store ({exc})") from None
    finally:
        db.close()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def runs_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as a text table: id, kind, status, start, duration, config, version, revision."""
    header = ("id", "kind", "status", "start", "duration", "config", "version", "revision")
    rows = []
    for r in records:
        started, finished = r.get("started_at"), r.get("finished_at")
        start = "-" if started is None else datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
        revision = r.get("revision")
        revision = "-" if not revision else revision[:10] + ("-dirty" if r.get("revision_dirty") else "")
        rows.append((str(r.get("id")), r.get("kind") or "-", r.get("status") or "-", start,
                     _duration(None if finished is None or started is None else finished - started),
                     r.get("name") or "-", r.get("teamgraph_version") or "-", revision))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
