"""Model backends behind one protocol (see base.py). ``make_backend`` builds one from its config."""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

from ..errors import ConfigError, InputError
from .base import Backend, GenerationRequest, GenerationResult

__all__ = ["Backend", "GenerationRequest", "GenerationResult", "make_backend", "backend_class", "agent_identities"]


def agent_identities(agents: Iterable[Any], backends: Mapping[str, Backend]) -> dict[str, dict[str, Any]]:
    """Agent name -> what identifies its backend and model weights (part of every cache key; no secrets)."""
    out: dict[str, dict[str, Any]] = {}
    for agent in agents:
        try:
            backend = backends[agent.backend]
        except KeyError:
            raise InputError(f"agent {agent.name}: no backend named '{agent.backend}' is open") from None
        ident = dict(backend.describe())
        fingerprint = getattr(backend, "model_fingerprint", None)
        if fingerprint is not None:
            ident["weights"] = fingerprint(agent.model)
        out[agent.name] = ident
    return out


def backend_class(kind: str) -> type:
    """The class implementing backend type ``kind`` (imported lazily: each has heavy dependencies)."""
    if kind == "llamacpp":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend
    if kind == "openai":
        from .openai_compat import OpenAIBackend

        return OpenAIBackend
    if kind == "vllm":
        from .vllm_engine import VLLMBackend

        return VLLMBackend
    if kind == "corpus":
        from .corpus import CorpusBackend

        return CorpusBackend
    raise ConfigError("type", f"unknown backend type '{kind}'")


def make_backend(name: str, kind: str, settings: dict[str, Any], source: str | None = None) -> Backend:
    """Instantiate backend ``name`` of type ``kind``; unknown settings are reported by field name."""
    cls = backend_class(kind)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p != "self"]
    for key in settings:
        if key not in allowed:
            raise ConfigError(f"backends.{name}.{key}", f"unknown setting for a {kind} backend (allowed: {', '.join(allowed)})", source)
    missing = [p for p, v in params.items() if p != "self" and v.default is inspect.Parameter.empty and p not in settings]
    if missing:
        raise ConfigError(f"backends.{name}.{missing[0]}", "missing required setting", source)
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ConfigError(f"backends.{name}", str(exc), source) from None
