"""In-process llama.cpp (llama-cpp-python): the embedded local default, the packaged model zoo."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendError, MissingDependencyError, RequestFailed
from ..models import resolve_gguf
from .base import GenerationRequest, GenerationResult, ScoreRequest

__all__ = ["LlamaCppBackend"]


class LlamaCppBackend:
    """Runs GGUF models in this process, one request after the other (llama.cpp is single-stream).

    ``model`` names in requests are zoo models (``teamgraph models``: ``smollm2-135m-instruct``,
    ``gemma-3-270m``, ...) or GGUF paths; each model is loaded once and kept. Chat requests use the
    chat template stored in the GGUF. ``n_threads`` defaults to the machine's core count.
    """

    #: llama.cpp answers one request at a time: the harness stores each reply as soon as it arrives.
    max_batch = 1

    def __init__(self, n_threads: int | None = None, n_ctx: int = 2048, n_gpu_layers: int = 0,
                 model_dir: str | None = None):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise MissingDependencyError("the llamacpp backend needs llama-cpp-python: pip install 'teamgraph[local]'") from None
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_ctx = n_ctx
        self.n_gpu_layers = n_gpu_layers
        self.model_dir = model_dir
        self._models: dict[str, Any] = {}
        self._paths: dict[str, Path] = {}

    def model_path(self, model: str) -> Path:
        """The GGUF file behind ``model`` (a zoo name, a file name under ``model_dir`` or a path), resolved once."""
        if model not in self._paths:
            self._paths[model] = resolve_gguf(model, self.model_dir)
        return self._paths[model]

    def check(self, agent_models: Sequence[tuple[str, str]]) -> None:
        """Preflight: every model resolves to a GGUF (zoo models are assembled and sha256-checked now)."""
        for _agent, model in agent_models:
            self.model_path(model)

    def _load(self, model: str) -> Any:
        if model not in self._models:
            from llama_cpp import Llama

            path = self.model_path(model)
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                try:
                    self._models[model] = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                                                n_gpu_layers=self.n_gpu_layers, verbose=False)
                except (ValueError, RuntimeError) as exc:
                    raise BackendError(f"model '{model}': llama.cpp cannot load {path} ({exc})") from None
        return self._models[model]

    def describe(self) -> dict[str, Any]:
        """Type and context size (part of cache keys; the weights are in ``model_fingerprint``)."""
        return {"type": "llamacpp", "n_ctx": self.n_ctx}

    def model_fingerprint(self, model: str) -> str:
        """Identifies the weights behind ``model`` for cache keys (file name and size)."""
        path = self.model_path(model)
        return f"{path.name}:{path.stat().st_size}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order, generated one after the other in this process."""
        return [self._one(r) for r in requests]

    def _one(self, req: GenerationRequest) -> GenerationResult:
        llm = self._load(req.model)
        kwargs: dict[str, Any] = dict(max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                                      seed=req.seed, stop=list(req.stop) or None, **req.extra)
        if req.repeat_penalty is not None:
            kwargs["repeat_penalty"] = req.repeat_penalty
        start = time.perf_counter()
        try:
            if req.messages is not None:
                out = llm.create_chat_completion(messages=list(req.messages), **kwargs)
                text = out["choices"][0]["message"].get("content")
            else:
                out = llm.create_completion(prompt=req.prompt, **kwargs)
                text = out["choices"][0]["text"]
        except ValueError as exc:  # e.g. prompt longer than the context window
            return GenerationResult.failed(f"llama.cpp: {exc}", time.perf_counter() - start)
        usage = out.get("usage") or {}
        return GenerationResult.from_text(text, usage.get("completion_tokens"), time.perf_counter() - start)

    def option_logprobs(self, requests: Sequence[ScoreRequest]) -> list[dict[str, float]]:
        """Log-probability of each option's first token after the prompt, from the last position's logits only.

        One forward pass over the prompt per request (no ``logits_all``: only the last row of logits is
        read), log-softmax over the whole vocabulary. A prompt longer than the context raises RequestFailed.
        """
        out = []
        for req in requests:
            llm = self._load(req.model)
            tokens = [self._option_token(llm, opt) for opt in req.options]
            if len(set(tokens)) < len(tokens):  # e.g. a tokenizer that splits the space off: every option would tie
                raise BackendError(f"agent {req.agent}: the options {', '.join(req.options)} do not start with distinct "
                                   f"tokens for {req.model}; use cloze or generation scoring")
            log_p = self._prompt_logprobs(llm, req.agent, req.prompt)
            out.append({opt: float(log_p[tok]) for opt, tok in zip(req.options, tokens)})
        return out

    def continuation_logprobs(self, agent: str, model: str, prompt: str,
                              continuations: Sequence[str]) -> list[tuple[float, int]]:
        """(sum of log-probabilities, token count) of each continuation after ``prompt`` (the cloze formulation).

        The prompt is evaluated once. Each continuation is then decoded in one batch placed right after
        it, with logits requested only for the continuation's positions; its tokens are dropped from the
        KV cache before the next one, so every continuation sees the prompt alone.
        """
        import llama_cpp

        llm = self._load(model)
        first = self._prompt_logprobs(llm, agent, prompt)
        n_prompt = llm.n_tokens
        out = []
        try:
            for text in continuations:
                tokens = llm.tokenize((" " + text.strip()).encode("utf-8"), add_bos=False, special=False)
                if n_prompt + len(tokens) >= self.n_ctx:
                    raise RequestFailed(f"agent {agent}: prompt and option exceed n_ctx={self.n_ctx}")
                total = float(first[tokens[0]])
                feed = tokens[:-1]  # the logits after token i score token i + 1
                if feed:
                    batch = llama_cpp.llama_batch_init(len(feed), 0, 1)
                    try:
                        batch.n_tokens = len(feed)
                        for i, tok in enumerate(feed):
                            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, n_prompt + i, 1
                            batch.seq_id[i][0], batch.logits[i] = 0, True
                        if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                            raise BackendError(f"agent {agent}: llama.cpp could not decode an option of {model}")
                        for i, tok in enumerate(tokens[1:]):
                            total += float(self._logprobs_at(llm, i)[tok])
                    finally:
                        llama_cpp.llama_batch_free(batch)
                        llm._ctx.kv_cache_seq_rm(0, n_prompt, -1)  # back to the prompt alone
                out.append((total, len(tokens)))
        finally:
            llm._ctx.kv_cache_seq_rm(0, n_prompt, -1)
            llm.n_tokens = 0  # the logits now belong to an option: a later call must evaluate its prompt afresh
        return out

    def _prompt_logprobs(self, llm: Any, agent: str, prompt: str) -> Any:
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if len(tokens) >= self.n_ctx:
            raise RequestFailed(f"agent {agent}: a {len(tokens)}-token prompt does not fit n_ctx={self.n_ctx}")
        llm.reset()
        llm.eval(tokens)
        return self._logprobs_at(llm, -1)  # the last position: the only row computed without logits_all

    @staticmethod
    def _logprobs_at(llm: Any, i: int) -> Any:
        """Log-softmax over the vocabulary of the logits of output row ``i`` of the last decode (-1: the last)."""
        import llama_cpp
        import numpy as np

        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, i), shape=(llm.n_vocab(),))
        logits = logits.astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    @staticmethod
    def _option_token(llm: Any, option: str) -> int:
        """The token that starts ``option`` after the prompt: the tokenizer's form of " " + option."""
        return llm.tokenize((" " + option).encode("utf-8"), add_bos=False, special=False)[0]

    def close(self) -> None:
        """Free every loaded model."""
        for llm in self._models.values():
            with contextlib.suppress(Exception):
                llm.close()
        self._models.clear()
