"""Fingerprints: what each agent says when probed alone, in O(N) model calls (issue 13).

Each agent answers ``probes`` single-turn, topic-primed prompts per topic, in its own prompt format,
with its own sampling settings and persona, under the run's shared instruction. Probe 0 is the
conversation's own opening (``conversation.topic_line``): exactly the first turn the agent speaks
when it opens a conversation on the topic. Probes 1, 2, ... cycle through :data:`PROBE_LINES`, each
with a seed of its own (``conversation.seed``, the agent, the topic and the probe number). Replies
are stored (``probes`` table, keyed like conversations by everything that determines them), so
probing is paid once and an interrupted run resumes.

An agent's fingerprint on a topic is the mean of the L2-normalised embeddings of its usable replies
(the run's embedder, whose vectors the store caches), the quantity the relationship values compare:
the method scores coherence as cosine similarity of consecutive utterances, so agents whose replies
lie close in that space are the likely strong pairs. An agent with no usable reply on a topic gets
the topic's mean fingerprint (it is near everyone and no one; exploration pairs cover it).
:func:`teamgraph.select_pairs` turns fingerprints into the pairs that converse.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .backends.base import Backend, generate_in_batches
from .config import ConversationConfig
from .dialogue import ConversationSpec, build_request
from .embedding import Embedder
from .errors import InputError
from .roster import Agent, Roster
from .store import Store, stable_hash

__all__ = ["PROBE_LINES", "ProbeSpec", "plan_probes", "run_probes", "fingerprints"]

logger = logging.getLogger(__name__)

#: The probe prompts after the first (which is ``conversation.topic_line``); ``{topic}`` is filled in.
PROBE_LINES = (
    "What is the most important idea in {topic}?",
    "Explain a mistake people often make in {topic}.",
    "Ask a hard question about {topic}.",
    "How would an expert in {topic} approach a new problem?",
    "Give an example that shows something surprising about {topic}.",
    "What should a beginner learn first about {topic}?",
    "Describe a problem in {topic} that is still open.",
)


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: ``agent`` answers prompt ``line`` about ``topic``; ``id`` hashes all that determines the reply."""

    id: str
    agent: Agent
    topic: str
    probe: int
    line: str
    seed: int


def plan_probes(roster: Roster, topics: Sequence[str], n_probes: int, settings: ConversationConfig,
                backend_info: Mapping[str, Any] | None = None) -> list[ProbeSpec]:
    """Every agent's ``n_probes`` probes per topic, in roster order (see the module docstring).

    ``backend_info`` maps agent name -> what identifies its backend and weights, as for
    :func:`teamgraph.dialogue.plan_conversations` (part of the id).
    """
    backend_info = backend_info or {}
    lines = itertools.cycle(PROBE_LINES)
    probe_lines = [settings.topic_line] + [next(lines) for _ in range(max(n_probes - 1, 0))]
    specs = []
    for topic in topics:
        for agent in roster:
            for i, line in enumerate(probe_lines):
                seed = int(stable_hash([settings.seed, "probe", agent.name, topic, i])[:8], 16)
                key = {"agent": agent.identity_dict(), "backend": backend_info.get(agent.name), "topic": topic,
                       "probe": i, "line": line, "instruction": settings.instruction, "seed": seed}
                specs.append(ProbeSpec(stable_hash(key)[:16], agent, topic, i, line, seed))
    return specs


def _request(spec: ProbeSpec, settings: ConversationConfig) -> Any:
    """The probe's request: the first turn of a conversation ``spec.agent`` opens, with the probe's line."""
    as_opening = ConversationSpec(spec.id, spec.agent, spec.agent, spec.topic, 1, spec.seed, spec.probe)
    return build_request(as_opening, [], dataclasses.replace(settings, topic_line=spec.line))


def run_probes(specs: Sequence[ProbeSpec], backends: Mapping[str, Backend], store: Store,
               settings: ConversationConfig, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Ask every probe not yet stored, batched per backend (``max_batch`` at a time), storing each batch.

    Returns probe id -> stored reply (``text``, ``status``, ...) for every spec.
    """
    stored = store.probes([s.id for s in specs])
    todo = sorted((s for s in specs if s.id not in stored), key=lambda s: (s.agent.backend, s.agent.model, s.agent.name))
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="probes", unit="reply", disable=not progress)
    try:
        for backend_name, group in itertools.groupby(todo, key=lambda s: s.agent.backend):
            for chunk, results in generate_in_batches(backends[backend_name], list(group),
                                                      lambda s: _request(s, settings)):
                store.add_probes({"id": s.id, "agent": s.agent.name, "topic": s.topic, "probe": s.probe,
                                  "text": r.text, "status": r.status, "error": r.error, "n_tokens": r.n_tokens,
                                  "seconds": r.seconds} for s, r in zip(chunk, results))
                bar.update(len(chunk))
    finally:
        bar.close()
    return store.probes([s.id for s in specs])


def fingerprints(specs: Sequence[ProbeSpec], replies: Mapping[str, Mapping[str, Any]],
                 embedder: Embedder) -> dict[str, pd.DataFrame]:
    """Topic -> DataFrame indexed by agent (sorted), one row per agent: its mean reply embedding.

    ``replies`` maps probe id -> stored reply (:func:`run_probes`); replies that are not ``ok`` are left
    out. An agent without any usable reply on a topic gets the topic's mean fingerprint, with a warning
    naming it; a topic where no agent replied is an InputError.
    """
    usable = [(s, replies[s.id]["text"]) for s in specs
              if s.id in replies and replies[s.id]["status"] == "ok" and replies[s.id]["text"].strip()]
    vectors = embedder.encode([text for _, text in usable]) if usable else np.zeros((0, 0), dtype=np.float32)
    rows_of: dict[tuple[str, str], list[int]] = {}
    for i, (s, _) in enumerate(usable):
        rows_of.setdefault((s.topic, s.agent.name), []).append(i)
    out = {}
    for topic in dict.fromkeys(s.topic for s in specs):
        agents = sorted({s.agent.name for s in specs if s.topic == topic})
        rows = {name: vectors[rows_of[topic, name]].mean(axis=0) for name in agents if (topic, name) in rows_of}
        if not rows:
            raise InputError(f"topic {topic!r}: no agent gave a usable probe reply, so there are no fingerprints")
        silent = [name for name in agents if name not in rows]
        if silent:
            centre = np.mean(list(rows.values()), axis=0)
            logger.warning("topic %r: %d agent(s) gave no usable probe reply (%s); they get the mean fingerprint",
                           topic, len(silent), ", ".join(silent[:5]) + (" ..." if len(silent) > 5 else ""))
            rows.update({name: centre for name in silent})
        out[topic] = pd.DataFrame.from_dict(rows, orient="index").loc[agents]
    return out
