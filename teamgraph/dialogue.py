"""Topic-primed pairwise conversations: planning, prompt formats and running them (the schedulers: :mod:`teamgraph.scheduler`)."""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from tqdm.auto import tqdm

from . import scheduler
from .backends.base import Backend, GenerationRequest
from .config import ConversationConfig
from .conversations import Conversation
from .roster import Agent, Roster, legacy_key_dict
from .store import Store, stable_hash

__all__ = ["ConversationSpec", "conversation_seed", "plan_conversations", "rekey_legacy_conversations",
           "stored_conversations", "build_request", "run_conversations"]


@dataclass(frozen=True)
class ConversationSpec:
    """Everything that determines one conversation; ``id`` is a hash of it (the store key).

    ``legacy_id``: the id a store written before labels left the key holds it under (None: unknown);
    see :func:`rekey_legacy_conversations`.
    """

    id: str
    opener: Agent
    partner: Agent
    topic: str
    turns: int
    seed: int
    repeat: int
    legacy_id: str | None = None

    def speaker(self, turn: int) -> Agent:
        """Who speaks at ``turn`` (0-based): the opener on even turns, the partner on odd ones."""
        return self.opener if turn % 2 == 0 else self.partner


def conversation_seed(run_seed: int, a: str, b: str, topic: str, repeat: int) -> int:
    """A per-conversation seed derived from the run seed, the ordered pair, the topic and the repeat."""
    return int(stable_hash([run_seed, a, b, topic, repeat])[:8], 16)


def plan_conversations(
    roster: Roster, topics: Sequence[str], settings: ConversationConfig, backend_info: Mapping[str, Any] | None = None,
    pairs: Mapping[str, Collection[tuple[str, str]]] | None = None,
) -> list[ConversationSpec]:
    """Every unordered pair per topic and repeat (both orders when set); the roster's first agent opens.

    ``backend_info`` maps agent name -> what identifies its backend and weights (part of the id).
    The id hashes each agent's :meth:`Agent.identity_dict` (labels left out: they only measure);
    ``legacy_id`` is the same hash with the labels in, as stores written before this hold it.
    ``pairs`` (topic -> pairs of agent names, e.g. from :func:`teamgraph.select_pairs`) keeps only
    those pairs on each topic (in either order); None keeps every pair. A pair's conversations have
    the same ids whichever pairs are kept, so a store serves both.
    """
    backend_info = backend_info or {}
    specs = []
    for topic in topics:
        wanted = None if pairs is None else {tuple(sorted(p)) for p in pairs.get(topic, ())}
        for a, b in itertools.combinations(roster, 2):
            if wanted is not None and tuple(sorted((a.name, b.name))) not in wanted:
                continue
            orders = [(a, b), (b, a)] if settings.both_orders else [(a, b)]
            for repeat in range(settings.repeats):
                for opener, partner in orders:
                    seed = conversation_seed(settings.seed, opener.name, partner.name, topic, repeat)
                    key = {
                        "opener": opener.identity_dict(), "partner": partner.identity_dict(),
                        "backends": [backend_info.get(opener.name), backend_info.get(partner.name)],
                        "topic": topic, "turns": settings.turns, "seed": seed, "repeat": repeat,
                        "instruction": settings.instruction, "topic_line": settings.topic_line,
                    }
                    legacy = {**key, "opener": legacy_key_dict(opener), "partner": legacy_key_dict(partner)}
                    specs.append(ConversationSpec(stable_hash(key)[:16], opener, partner, topic, settings.turns, seed,
                                                  repeat, stable_hash(legacy)[:16]))
    return specs


def rekey_legacy_conversations(store: Store, specs: Sequence[ConversationSpec]) -> int:
    """Move planned conversations a store holds under their legacy (labelled) ids to their ids; how many moved.

    Writes: call it as the store's writer (under its lease). Readers use :func:`stored_conversations`.
    """
    return store.rekey(conversations={s.id: s.legacy_id for s in specs if s.legacy_id})[0]


def stored_conversations(store: Store, specs: Sequence[ConversationSpec]) -> list[Conversation]:
    """The complete stored conversations of ``specs``, sorted by id, without writing to the store.

    A conversation found only under its legacy id (a store not yet re-keyed) is returned with its id.
    """
    found = {c.id: c for c in store.conversations([s.id for s in specs])}
    legacy = {s.legacy_id: s.id for s in specs if s.id not in found and s.legacy_id}
    if legacy:
        for conv in store.conversations(list(legacy)):
            found[legacy[conv.id]] = dataclasses.replace(conv, id=legacy[conv.id])
    return [found[i] for i in sorted(found)]


def build_request(spec: ConversationSpec, history: Sequence[tuple[str, str]], settings: ConversationConfig) -> GenerationRequest:
    """The request for the next turn, in the speaker's prompt format (``chat`` or ``transcript``)."""
    turn = len(history)
    me = spec.speaker(turn)
    topic_line = settings.topic_line.format(topic=spec.topic)
    system = "\n".join(p for p in (settings.instruction, me.persona) if p)
    s = me.sampling
    common: dict[str, Any] = dict(agent=me.name, model=me.model, max_tokens=s.max_tokens, temperature=s.temperature,
                                  top_p=s.top_p, repeat_penalty=s.repeat_penalty, seed=(spec.seed + turn) % 2**31,
                                  extra=dict(s.extra))
    if me.format == "chat":
        messages = [{"role": "system", "content": system}]
        pending = [topic_line]
        for speaker, text in history:
            if speaker == me.name:
                messages.append({"role": "user", "content": "\n\n".join(pending)})
                messages.append({"role": "assistant", "content": text})
                pending = []
            else:
                pending.append(text)
        messages.append({"role": "user", "content": "\n\n".join(pending)})
        return GenerationRequest(messages=tuple(messages), **common)
    # No blank line before the transcript: with one, the packaged base model answers "" far more often.
    lines = [system, topic_line] if system else [topic_line]
    lines += [f"{speaker}: {text}".rstrip() for speaker, text in history]
    lines.append(f"{me.name}:")
    return GenerationRequest(prompt="\n".join(lines), stop=("\n",), **common)


def run_conversations(
    specs: Sequence[ConversationSpec],
    backends: Mapping[str, Backend],
    store: Store,
    settings: ConversationConfig,
    progress: bool = True,
) -> list[Conversation]:
    """Run (or resume) every planned conversation, writing each reply to ``store`` as it arrives.

    With in-process backends only (llama.cpp, vLLM) the run is turn-synchronous: at each step the next
    utterance of every live conversation is requested together, grouped by backend and agent, so a
    batching backend gets many requests at once. As soon as one backend is a remote server (``openai``)
    it is continuous: every server works at the same time with up to its ``max_in_flight`` requests
    running, and each conversation asks for its next turn as soon as its last reply is stored (see
    :mod:`teamgraph.scheduler`). Either way the stored conversations are the same for a fixed seed.
    Turns already in the store are reused, so an interrupted run picks up where it stopped;
    conversations a store holds under their legacy (labelled) ids are re-keyed first
    (:func:`rekey_legacy_conversations`).
    """
    rekey_legacy_conversations(store, specs)
    for spec in specs:
        store.add_conversation(spec.id, spec.opener.name, spec.partner.name, spec.topic, spec.turns,
                               {"seed": spec.seed, "repeat": spec.repeat})
    history = {s.id: [(u["speaker"], u["text"]) for u in store.utterances(s.id)] for s in specs}
    total = sum(s.turns for s in specs)
    done = sum(min(len(history[s.id]), s.turns) for s in specs)
    bar = tqdm(total=total, initial=done, desc="utterances", unit="utt", disable=not progress)
    used = {agent.backend for s in specs if len(history[s.id]) < s.turns for agent in (s.opener, s.partner)}
    continuous = any(name in backends and scheduler.is_concurrent(backends[name]) for name in used)
    run = scheduler.run_continuous if continuous else scheduler.run_turn_synchronous
    try:
        run(specs, backends, store, history, lambda spec, turns: build_request(spec, turns, settings), bar)
    finally:
        bar.close()
    return store.conversations([s.id for s in specs])
