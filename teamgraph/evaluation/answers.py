"""Agents answer benchmark items through their backends; every reply is cached in the store.

Each (agent, item, round) is one model call, keyed by a hash of everything that determines its
output (the agent's settings but not its labels, its backend and weights, the item, the exact prompt,
the sampling seed and the round), so re-running an evaluation costs no model call. Answers a store
holds under the keys of before labels left them are re-keyed when first looked up. Requests are
grouped per backend and sent in chunks of ``backend.max_batch``; each chunk is written to the
store as soon as it arrives, so an interrupted evaluation resumes where it stopped.

Prompt formats follow the agent's ``format``: ``transcript`` agents (base models such as the
packaged Gemma 3 270M) get a plain completion prompt ending in ``Answer:``; ``chat`` agents get
messages with the answer instruction of the item's kind.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from teamgraph.backends import agent_identities
from teamgraph.backends.base import Backend, GenerationRequest, GenerationResult, generate_in_batches
from teamgraph.errors import InputError
from teamgraph.evaluation.extraction import answer_instruction, extract_answer, format_question, normalize_math
from teamgraph.roster import Agent, legacy_key_dict
from teamgraph.store import Store, stable_hash

__all__ = ["ANSWER_COLUMNS", "TRANSCRIPT_INSTRUCTIONS", "TRANSCRIPT_STOP", "AnswerJob", "backend_info",
           "answer_seed", "build_answer_request", "extract_reply", "answer_key", "make_job", "stored_answers",
           "run_jobs", "item_records", "collect_answers"]

ANSWER_COLUMNS = ["item_id", "benchmark", "agent", "round", "raw", "answer", "status", "mode"]

#: Short instructions for completion prompts: a base model continues "Answer:" with one line.
TRANSCRIPT_INSTRUCTIONS = {
    "multiple_choice": "Answer with the letter of the correct option.",
    "number": "Answer with the final number.",
    "math": "Answer with the final result.",
}
#: A completion stops at a blank line or where the model starts inventing the next question.
TRANSCRIPT_STOP = ("\n\n", "\nQuestion:")


@dataclass(frozen=True)
class AnswerJob:
    """One model call to make (or find in the store): ``key`` is its cache key.

    ``legacy_key``: the key a store written before labels left cache keys holds it under (None: unknown).
    """

    key: str
    agent: Agent
    item: Mapping[str, Any]
    round: int
    request: GenerationRequest
    legacy_key: str | None = None


def backend_info(agents: Iterable[Agent], backends: Mapping[str, Backend]) -> dict[str, dict[str, Any]]:
    """Agent name -> what identifies its backend and weights (the same identity the harness uses)."""
    return agent_identities(agents, backends)


def _backend(backends: Mapping[str, Backend], agent: Agent) -> Backend:
    try:
        return backends[agent.backend]
    except KeyError:
        raise InputError(f"agent {agent.name}: no backend named '{agent.backend}' is open") from None


def answer_seed(seed: int, agent: str, item_id: str, round: int) -> int:
    """Sampling seed of one answer, derived from the evaluation seed, the agent, the item and the round."""
    return int(stable_hash([seed, agent, str(item_id), round])[:8], 16) % 2**31


def _peer_line(peers: Mapping[str, str | None]) -> str:
    return "; ".join(f"{name}: {answer if answer is not None else 'no answer'}" for name, answer in peers.items())


def build_answer_request(
    agent: Agent,
    item: Mapping[str, Any],
    *,
    seed: int = 0,
    max_tokens: int = 16,
    round: int = 0,
    peers: Mapping[str, str | None] | None = None,
    previous: str | None = None,
) -> GenerationRequest:
    """The request asking ``agent`` to answer ``item``, in the agent's prompt format.

    In a debate round (``round`` > 0) the prompt also shows the other members' previous answers
    (``peers``: name -> normalised answer or None) and the agent's own previous reply.
    """
    kind = str(item["kind"])
    s = agent.sampling
    common: dict[str, Any] = dict(
        agent=agent.name, model=agent.model, max_tokens=max_tokens, temperature=s.temperature, top_p=s.top_p,
        repeat_penalty=s.repeat_penalty, seed=answer_seed(seed, agent.name, str(item["item_id"]), round),
        extra=dict(s.extra),
    )
    question = format_question(item)
    if agent.format == "chat":
        system = agent.persona or "You are an expert answering exam questions."
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": f"{question}\n\n{answer_instruction(kind)}"}]
        if round > 0:
            messages.append({"role": "assistant", "content": previous or ""})
            messages.append({"role": "user", "content": (
                f"These are the answers of the other team members: {_peer_line(peers or {})}. "
                f"Using their answers as additional advice, give your updated answer. {answer_instruction(kind)}")})
        return GenerationRequest(messages=tuple(messages), **common)
    lines = [agent.persona] if agent.persona else []
    lines += [TRANSCRIPT_INSTRUCTIONS[kind], f"Question: {question}"]
    if round > 0:
        lines.append(f"Other experts answered: {_peer_line(peers or {})}.")
        lines.append(f"Your previous answer: {previous if previous is not None else 'no answer'}.")
    lines.append("Answer:")
    return GenerationRequest(prompt="\n".join(lines), stop=TRANSCRIPT_STOP, **common)


def extract_reply(raw: str | None, item: Mapping[str, Any], prompt_format: str = "transcript") -> str | None:
    """Normalised answer of a reply (None = abstain).

    A completion continues the prompt's ``Answer:``, so only its first non-empty line counts and it
    is read as ``"Answer: " + line``; a chat reply is read whole.
    """
    if not raw or not raw.strip():
        return None
    kind = str(item["kind"])
    choices = item.get("choices") if hasattr(item, "get") else None
    n_choices = len(choices) if choices is not None and len(choices) else None
    if prompt_format == "chat":
        return extract_answer(raw, kind, n_choices)
    line = next(ln.strip() for ln in raw.splitlines() if ln.strip())
    found = extract_answer("Answer: " + line, kind, n_choices)
    if found is None and kind == "math":
        bare = line.strip().strip("$").rstrip(".").strip()
        if bare and " " not in bare:  # a bare final result such as "3" or "\frac{1}{2}"
            found = normalize_math(bare) or None
    return found


def answer_key(agent: Agent, identity: Any, item_id: str, request: GenerationRequest, round: int, seed: int,
               legacy: bool = False) -> str:
    """Cache key of one answer: everything that determines the reply (the agent's labels do not).

    ``legacy``: the key stores written before labels left cache keys used (``roster.legacy_key_dict``).
    """
    req = {
        "prompt": request.prompt, "messages": list(request.messages) if request.messages else None,
        "max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
        "repeat_penalty": request.repeat_penalty, "seed": request.seed, "stop": list(request.stop),
        "extra": request.extra,
    }
    return stable_hash({"kind": "answer", "agent": legacy_key_dict(agent) if legacy else agent.identity_dict(),
                        "backend": identity, "item_id": str(item_id), "request": req, "round": round, "seed": seed})


def make_job(agent: Agent, item: Mapping[str, Any], identity: Any, *, seed: int, max_tokens: int, round: int = 0,
             peers: Mapping[str, str | None] | None = None, previous: str | None = None) -> AnswerJob:
    """The job of one agent answering one item: its request (:func:`build_answer_request`) and its cache
    key, plus the key a store from before labels left the keys holds it under."""
    request = build_answer_request(agent, item, seed=seed, max_tokens=max_tokens, round=round, peers=peers,
                                   previous=previous)
    item_id = str(item["item_id"])
    return AnswerJob(answer_key(agent, identity, item_id, request, round, seed), agent, item, round, request,
                     answer_key(agent, identity, item_id, request, round, seed, legacy=True))


def stored_answers(store: Store, keys: Mapping[str, str | None]) -> dict[str, dict]:
    """Stored answers of ``keys`` ({key: legacy key or None}), by key; answers found only under their
    legacy key are re-keyed first (``Store.rekey``: one transaction, so call it as the store's writer)."""
    stored = store.get_answers(list(keys))
    legacy = {k: old for k, old in keys.items() if k not in stored and old}
    if legacy and store.rekey(answers=legacy)[1]:
        stored.update(store.get_answers(list(legacy)))
    return stored


def run_jobs(
    jobs: Sequence[AnswerJob],
    backends: Mapping[str, Backend],
    store: Store,
    progress: bool = True,
    desc: str = "answers",
) -> pd.DataFrame:
    """Answer every job (stored replies are reused) and return the tidy table, one row per job, in order."""
    unique = {job.key: job for job in jobs}
    stored = stored_answers(store, {k: j.legacy_key for k, j in unique.items()})
    todo = sorted((j for k, j in unique.items() if k not in stored),
                  key=lambda j: (j.agent.backend, j.agent.name, j.round, str(j.item["item_id"])))
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc=desc, unit="ans", disable=not progress)
    try:
        for backend_name, group in itertools.groupby(todo, key=lambda j: j.agent.backend):
            group = list(group)
            backend = _backend(backends, group[0].agent)
            for chunk, results in generate_in_batches(backend, group, lambda j: j.request):
                stored.update(_store_chunk(store, chunk, results))
                bar.update(len(chunk))
    finally:
        bar.close()
    return _tidy(jobs, stored)


def _store_chunk(store: Store, chunk: Sequence[AnswerJob], results: Sequence[GenerationResult]) -> dict[str, dict]:
    rows = [{
        "key": job.key, "agent": job.agent.name, "benchmark": str(job.item["benchmark"]),
        "item_id": str(job.item["item_id"]), "round": job.round, "raw": res.text,
        "answer": extract_reply(res.text, job.item, job.agent.format) if res.status == "ok" else None,
        "status": res.status,
    } for job, res in zip(chunk, results)]
    store.put_answers(rows)
    return {r["key"]: r for r in rows}


def _tidy(jobs: Sequence[AnswerJob], stored: Mapping[str, dict]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        row = stored[job.key]
        # re-extract from the raw reply: an improved extraction applies without any model call
        answer = extract_reply(row["raw"], job.item, job.agent.format) if row["status"] == "ok" else None
        status = row["status"] if row["status"] != "ok" else ("ok" if answer is not None else "unparsed")
        rows.append((str(job.item["item_id"]), str(job.item["benchmark"]), job.agent.name, job.round, row["raw"],
                     answer, status, "generation"))
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    frame["answer"] = frame["answer"].astype(object).where(frame["answer"].notna(), None)
    return frame


def item_records(items: pd.DataFrame) -> list[dict[str, Any]]:
    """Items as plain dicts (what prompts and extraction read)."""
    missing = [c for c in ("item_id", "benchmark", "question", "kind") if c not in items.columns]
    if missing:
        raise InputError(f"items table lacks column(s) {', '.join(missing)}")
    records = items.to_dict("records")
    for r in records:
        r["choices"] = list(r.get("choices") if r.get("choices") is not None else [])
    return records


def collect_answers(
    agents: Sequence[Agent],
    items: pd.DataFrame,
    backends: Mapping[str, Backend],
    store: Store,
    *,
    seed: int = 0,
    max_tokens: int = 16,
    identity: Mapping[str, Any] | None = None,
    progress: bool = True,
    scoring: str = "generation",
) -> pd.DataFrame:
    """Every agent answers every item once (round 0); stored replies are reused.

    Returns a tidy DataFrame (item_id, benchmark, agent, round, raw, answer, status, mode): ``answer``
    is the normalised answer or None (abstain); ``status`` is ``ok``, ``unparsed`` (a reply with no
    answer in it), ``empty`` or ``error``; ``mode`` says how the answer was obtained.
    ``scoring``: ``generation`` (a reply, then extraction), ``likelihood`` (multiple choice by the most
    probable option letter: :mod:`teamgraph.evaluation.likelihood`), ``cloze`` (multiple choice by the
    option text with the best log-likelihood per character) or ``auto`` (likelihood for multiple-choice
    items where the agent's backend gives log-probabilities, generation otherwise).
    """
    from teamgraph.config import SCORING_MODES
    from teamgraph.evaluation.likelihood import can_score, collect_likelihood_answers

    if scoring not in SCORING_MODES:
        raise InputError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORING_MODES)}")
    identity = dict(identity) if identity is not None else backend_info(agents, backends)
    records = item_records(items)

    def by_likelihood(agent: Agent, item: Mapping[str, Any]) -> bool:
        if scoring == "generation" or item["kind"] != "multiple_choice":
            return False
        return scoring in ("likelihood", "cloze") or can_score(_backend(backends, agent))

    frames = []
    for agent in agents:
        mine = [r for r in records if by_likelihood(agent, r)]
        if mine:
            mode = "cloze" if scoring == "cloze" else "likelihood"
            frames.append(collect_likelihood_answers([agent], mine, backends, store, identity, progress=progress,
                                                     mode=mode))
    jobs = [make_job(agent, item, identity.get(agent.name), seed=seed, max_tokens=max_tokens)
            for agent in agents for item in records if not by_likelihood(agent, item)]
    if jobs or not frames:
        frames.append(run_jobs(jobs, backends, store, progress=progress, desc="answers"))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
