"""Likelihood scoring of multiple-choice items, as lm-eval's loglikelihood tasks do it.

The agent's answer is the option letter whose token is most probable right after the question
(one forward pass; no sampling, nothing to parse). Every agent, chat or base model, is scored on the
same completion prompt: its persona, the instruction, ``Question: ...`` with the lettered options,
then ``Answer:``. (Letters after a chat-templated question score at chance for the zoo's chat models:
they start with prose, not a letter: measured on ARC-Easy, 2026-12-01.)

The stored ``raw`` reply is the JSON of option -> log-probability, so the letter distribution is kept:
self-consistency (:func:`self_consistency_answers`) samples from it offline, with no model call.

``cloze`` is the formulation OLMES and lm-eval use for small models: no options in the prompt
(``Question: ...`` then ``Answer:``), each option's own text scored by its log-likelihood, the answer
the option with the best log-likelihood per character. Its ``raw`` is option -> [sum of
log-probabilities, tokens, characters].
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from teamgraph.backends.base import Backend, ContinuationScorer, OptionScorer, ScoreRequest
from teamgraph.errors import InputError, RequestFailed
from teamgraph.evaluation.extraction import LETTERS, format_question
from teamgraph.roster import Agent, legacy_key_dict
from teamgraph.store import Store, stable_hash

__all__ = ["likelihood_prompt", "cloze_prompt", "option_scores", "option_distribution_logits", "can_score",
           "best_option", "collect_likelihood_answers", "self_consistency_answers"]

_INSTRUCTION = "Answer with the letter of the correct option."


def likelihood_prompt(agent: Agent, item: Mapping[str, Any]) -> str:
    """The completion prompt whose next token is scored: persona, instruction, question with options, ``Answer:``."""
    lines = [agent.persona] if agent.persona else []
    lines += [_INSTRUCTION, f"Question: {format_question(item)}", "Answer:"]
    return "\n".join(lines)


def cloze_prompt(agent: Agent, item: Mapping[str, Any]) -> str:
    """The cloze prompt: persona, ``Question: ...`` without the options, ``Answer:`` (each option's text follows)."""
    lines = [agent.persona] if agent.persona else []
    lines += [f"Question: {item['question']}", "Answer:"]
    return "\n".join(lines)


def option_scores(raw: Mapping[str, Any]) -> dict[str, float]:
    """What the answer maximises: the letter's log-probability, or a cloze option's log-probability per character."""
    return {k: (v[0] / max(v[2], 1) if isinstance(v, list) else float(v)) for k, v in raw.items()}


def option_distribution_logits(raw: Mapping[str, Any]) -> dict[str, float]:
    """The model's log-probabilities of the options (unnormalised sums for cloze): what sampling draws from."""
    return {k: (float(v[0]) if isinstance(v, list) else float(v)) for k, v in raw.items()}


def can_score(backend: Backend, mode: str = "likelihood") -> bool:
    """Whether ``backend`` can score options in ``mode``: next-token log-probabilities for ``likelihood``
    (``backends.base.OptionScorer``), whole continuations for ``cloze`` (``ContinuationScorer``)."""
    return isinstance(backend, ContinuationScorer if mode == "cloze" else OptionScorer)


def _key(agent: Agent, identity: Any, item_id: str, request: ScoreRequest, mode: str, texts: Sequence[str],
         legacy: bool = False) -> str:
    """Cache key of one likelihood or cloze answer (the agent's labels are not in it; ``legacy``: the key of
    stores written before labels left cache keys, ``roster.legacy_key_dict``)."""
    extra = {"texts": list(texts)} if mode == "cloze" else {}
    return stable_hash({"kind": f"answer-{mode}", "agent": legacy_key_dict(agent) if legacy else agent.identity_dict(),
                        "backend": identity, "item_id": str(item_id), "prompt": request.prompt,
                        "options": list(request.options), **extra})


def best_option(logprobs: Mapping[str, float]) -> str | None:
    """The most probable option (the first in letter order on an exact tie); None when there are none."""
    if not logprobs:
        return None
    return max(sorted(logprobs), key=lambda k: (logprobs[k], -ord(k[0])))


def collect_likelihood_answers(
    agents: Sequence[Agent],
    items: Sequence[Mapping[str, Any]],
    backends: Mapping[str, Backend],
    store: Store,
    identity: Mapping[str, Any],
    progress: bool = True,
    mode: str = "likelihood",
) -> pd.DataFrame:
    """Every agent's likelihood (or ``cloze``) answer to every multiple-choice item; stored answers are reused.

    Returns the tidy answer table (``ANSWER_COLUMNS``, ``mode`` = ``likelihood``); ``raw`` is the JSON
    of option -> log-probability.
    """
    from teamgraph.evaluation.answers import ANSWER_COLUMNS, stored_answers

    jobs, legacy = [], {}
    for agent in agents:
        for item in items:
            if item["kind"] != "multiple_choice":
                raise InputError(f"likelihood scoring needs multiple-choice items; {item['item_id']} is {item['kind']}")
            options = tuple(LETTERS[: len(item["choices"])])
            prompt = cloze_prompt(agent, item) if mode == "cloze" else likelihood_prompt(agent, item)
            req = ScoreRequest(agent.name, agent.model, prompt, options)
            args = (agent, identity.get(agent.name), item["item_id"], req, mode, item["choices"])
            key = _key(*args)
            legacy[key] = _key(*args, legacy=True)  # where a store from before labels left keys holds it
            jobs.append((key, agent, item, req))
    unique = {key: job for key, *job in jobs}
    stored = stored_answers(store, legacy)
    todo = sorted((k for k in unique if k not in stored), key=lambda k: (unique[k][0].backend, unique[k][0].name))
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc=f"{mode} answers", unit="ans",
               disable=not progress)
    try:
        for start in range(0, len(todo), 16):  # written every 16 answers: an interrupt loses at most those
            chunk = todo[start:start + 16]
            rows = []
            for key in chunk:
                agent, item, req = unique[key]
                backend = backends[agent.backend]
                if not can_score(backend, mode):
                    raise InputError(f"agent {agent.name}: its backend '{agent.backend}' cannot do {mode} scoring "
                                     "(no log-probabilities" + (" of whole continuations" if mode == "cloze" else "")
                                     + "); use generation")
                raw: dict[str, Any] = {}
                status = "ok"
                try:
                    if mode == "cloze":
                        texts = [str(c).strip() for c in item["choices"]]
                        scored = backend.continuation_logprobs(agent.name, agent.model, req.prompt, texts)  # type: ignore[attr-defined]
                        raw = {o: [lp, n, len(t)] for o, (lp, n), t in zip(req.options, scored, texts)}
                    else:
                        [raw] = backend.option_logprobs([req])  # type: ignore[attr-defined]
                except RequestFailed as exc:  # e.g. a prompt longer than the context: this item abstains, as in generation
                    raw, status = {"error": str(exc)}, "error"
                rows.append({"key": key, "agent": agent.name, "benchmark": str(item["benchmark"]),
                             "item_id": str(item["item_id"]), "round": 0,
                             "raw": json.dumps(raw, sort_keys=True),
                             "answer": best_option(option_scores(raw)) if status == "ok" else None, "status": status})
            store.put_answers(rows)
            stored.update({r["key"]: r for r in rows})
            bar.update(len(chunk))
    finally:
        bar.close()
    out = []
    for key, agent, item, _req in jobs:
        row = stored[key]
        ok = row["status"] == "ok"
        out.append((str(item["item_id"]), str(item["benchmark"]), agent.name, 0, row["raw"],
                    best_option(option_scores(json.loads(row["raw"]))) if ok else None, row["status"], mode))
    return pd.DataFrame(out, columns=ANSWER_COLUMNS)


def self_consistency_answers(answers: pd.DataFrame, agent: str, k: int, seed: int = 0,
                             temperature: float = 1.0) -> pd.DataFrame:
    """Self-consistency of one agent from its stored letter distributions: ``k`` seeded samples, majority vote.

    Each item's k answers are drawn from softmax(log-probabilities / temperature) over the options
    (what sampling the answer letter k times would give; for cloze answers, the options' whole-text
    log-probabilities); the vote breaks ties with a seeded draw.
    Returns an answer table (item_id, agent, answer) whose agent is ``"<agent> x<k>"``.
    """
    from teamgraph.evaluation.voting import item_rng, majority_vote

    if k < 1 or temperature <= 0:
        raise InputError(f"self-consistency needs k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    mine = answers[(answers["agent"] == agent) & answers["mode"].isin(["likelihood", "cloze"])]
    if mine.empty:
        raise InputError(f"no likelihood answers of agent {agent!r}: self-consistency samples their distributions")
    rows = []
    for item_id, raw, status in zip(mine["item_id"], mine["raw"], mine.get("status", pd.Series("ok", index=mine.index))):
        if status != "ok":
            rows.append((str(item_id), f"{agent} x{k}", None))
            continue
        logprobs = option_distribution_logits(json.loads(raw))
        options = sorted(logprobs)
        z = np.array([logprobs[o] for o in options]) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(stable_hash([agent, str(item_id)])[:8], 16)])
        samples = [options[i] for i in rng.choice(len(options), size=k, p=p)]
        vote, _tied = majority_vote(samples, item_rng(seed, str(item_id)))
        rows.append((str(item_id), f"{agent} x{k}", vote))
    return pd.DataFrame(rows, columns=["item_id", "agent", "answer"])
