"""Likelihood scoring of multiple-choice items, as lm-eval's loglikelihood tasks do it.

The agent's answer is the option letter whose token is most probable right after the question
(one forward pass; no sampling, nothing to parse). Every agent, chat or base model, is scored on the
same completion prompt: its persona, the instruction, ``Question: ...`` with the lettered options,
then ``Answer:``. (Letters after a chat-templated question score at chance for the zoo's chat models:
they start with prose, not a letter. RUNTIME.md has the measurements.)

The stored ``raw`` reply is the JSON of option -> log-probability, so the letter distribution is kept:
self-consistency (:func:`self_consistency_answers`) samples from it offline, with no model call.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from teamgraph.backends.base import Backend, OptionScorer, ScoreRequest
from teamgraph.errors import InputError
from teamgraph.evaluation.extraction import LETTERS, format_question
from teamgraph.roster import Agent
from teamgraph.store import Store, stable_hash

MODES = ("generation", "likelihood")
SCORINGS = ("generation", "likelihood", "auto")
_INSTRUCTION = "Answer with the letter of the correct option."


def likelihood_prompt(agent: Agent, item: Mapping[str, Any]) -> str:
    """The completion prompt whose next token is scored: persona, instruction, question with options, ``Answer:``."""
    lines = [agent.persona] if agent.persona else []
    lines += [_INSTRUCTION, f"Question: {format_question(item)}", "Answer:"]
    return "\n".join(lines)


def can_score(backend: Backend) -> bool:
    """Whether ``backend`` reads next-token log-probabilities (see ``backends.base.OptionScorer``)."""
    return isinstance(backend, OptionScorer)


def _key(agent: Agent, identity: Any, item_id: str, request: ScoreRequest) -> str:
    return stable_hash({"kind": "answer-likelihood", "agent": agent.public_dict(), "backend": identity,
                        "item_id": str(item_id), "prompt": request.prompt, "options": list(request.options)})


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
) -> pd.DataFrame:
    """Every agent's likelihood answer to every multiple-choice item; stored answers are reused.

    Returns the tidy answer table (``ANSWER_COLUMNS``, ``mode`` = ``likelihood``); ``raw`` is the JSON
    of option -> log-probability.
    """
    from teamgraph.evaluation.answers import ANSWER_COLUMNS

    jobs = []
    for agent in agents:
        for item in items:
            if item["kind"] != "multiple_choice":
                raise InputError(f"likelihood scoring needs multiple-choice items; {item['item_id']} is {item['kind']}")
            options = tuple(LETTERS[: len(item["choices"])])
            req = ScoreRequest(agent.name, agent.model, likelihood_prompt(agent, item), options)
            jobs.append((_key(agent, identity.get(agent.name), item["item_id"], req), agent, item, req))
    unique = {key: job for key, *job in jobs}
    stored = store.get_answers(list(unique))
    todo = sorted((k for k in unique if k not in stored), key=lambda k: (unique[k][0].backend, unique[k][0].name))
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="likelihood answers", unit="ans",
               disable=not progress)
    try:
        for start in range(0, len(todo), 16):  # written every 16 answers: an interrupt loses at most those
            chunk = todo[start:start + 16]
            rows = []
            for key in chunk:
                agent, item, req = unique[key]
                backend = backends[agent.backend]
                if not can_score(backend):
                    raise InputError(f"agent {agent.name}: its backend '{agent.backend}' gives no log-probabilities")
                [logprobs] = backend.option_logprobs([req])  # type: ignore[attr-defined]
                rows.append({"key": key, "agent": agent.name, "benchmark": str(item["benchmark"]),
                             "item_id": str(item["item_id"]), "round": 0,
                             "raw": json.dumps(logprobs, sort_keys=True), "answer": best_option(logprobs),
                             "status": "ok"})
            store.put_answers(rows)
            stored.update({r["key"]: r for r in rows})
            bar.update(len(chunk))
    finally:
        bar.close()
    out = []
    for key, agent, item, _req in jobs:
        row = stored[key]
        out.append((str(item["item_id"]), str(item["benchmark"]), agent.name, 0, row["raw"],
                    best_option(json.loads(row["raw"])), "ok", "likelihood"))
    return pd.DataFrame(out, columns=ANSWER_COLUMNS)


def self_consistency_answers(answers: pd.DataFrame, agent: str, k: int, seed: int = 0,
                             temperature: float = 1.0) -> pd.DataFrame:
    """Self-consistency of one agent from its stored letter distributions: ``k`` seeded samples, majority vote.

    Each item's k answers are drawn from softmax(log-probabilities / temperature) over the options
    (what sampling the answer letter k times would give); the vote breaks ties with a seeded draw.
    Returns an answer table (item_id, agent, answer) whose agent is ``"<agent> x<k>"``.
    """
    from teamgraph.evaluation.voting import item_rng, majority_vote

    if k < 1 or temperature <= 0:
        raise InputError(f"self-consistency needs k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    mine = answers[(answers["agent"] == agent) & (answers["mode"] == "likelihood")]
    if mine.empty:
        raise InputError(f"no likelihood answers of agent {agent!r}: self-consistency samples their distributions")
    rows = []
    for item_id, raw in zip(mine["item_id"], mine["raw"]):
        logprobs = json.loads(raw)
        options = sorted(logprobs)
        z = np.array([logprobs[o] for o in options]) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(stable_hash([agent, str(item_id)])[:8], 16)])
        samples = [options[i] for i in rng.choice(len(options), size=k, p=p)]
        vote, _tied = majority_vote(samples, item_rng(seed, str(item_id)))
        rows.append((str(item_id), f"{agent} x{k}", vote))
    return pd.DataFrame(rows, columns=["item_id", "agent", "answer"])
