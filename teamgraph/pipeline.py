"""``teamgraph run``: roster -> conversations -> relationship values -> graphs -> teams, resumable."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from .backends import Backend, agent_identities, make_backend
from .communities import Partition, find_communities
from .config import CommunityConfig, RunConfig
from .conversations import Conversation, write_conversations
from .dialogue import ConversationSpec, plan_conversations, run_conversations
from .embedding import Embedder
from .graph import build_graphs
from .scoring import relationship_values
from .significance import permutation_test
from .lease import hold_store
from .records import RECORD_FILES, RunRecord, recording
from .store import Store
from .teams import export_teams
from .validation import label_agreement, label_kinds

__all__ = ["RunResult", "open_backends", "backend_identity", "preflight", "plan", "conversation_pairs", "store_path_of", "run",
           "analyse_graphs", "planned_conversations", "estimate"]


@dataclass
class RunResult:
    """What a run produced: conversations, values, one graph and partition per topic, files."""

    conversations: list[Conversation]
    values: pd.DataFrame
    graphs: dict[str, nx.Graph]
    partitions: dict[str, Partition]
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    record_id: str | None = None  # the run record (teamgraph.records) of the invocation that produced it


def open_backends(config: RunConfig) -> dict[str, Backend]:
    """Build the backends the roster uses (only those), raising ConfigError on bad settings."""
    used = sorted({a.backend for a in config.agents})
    return {name: make_backend(name, config.backends[name].type, config.backends[name].settings, config.source)
            for name in used}


def backend_identity(config: RunConfig, backends: dict[str, Backend]) -> dict[str, Any]:
    """Agent name -> what identifies its backend and model weights (part of conversation ids)."""
    return agent_identities(config.agents, backends)


def preflight(config: RunConfig, backends: dict[str, Backend]) -> None:
    """Ask each backend that can, whether it serves the roster's models, before any long work."""
    for name, backend in backends.items():
        check = getattr(backend, "check", None)
        if check is not None:
            check([(a.name, a.model) for a in config.agents if a.backend == name])


def plan(config: RunConfig, backends: dict[str, Backend] | None = None,
         pairs: dict[str, list[tuple[str, str]]] | None = None) -> list[ConversationSpec]:
    """The conversations a run of ``config`` holds (ids include the backends' identities when ``backends`` are given).

    ``pairs`` (topic -> pairs, :func:`conversation_pairs`) keeps only those pairs; None: every pair.
    """
    ident = backend_identity(config, backends) if backends else None
    return plan_conversations(config.agents, config.topics, config.conversation, ident, pairs)


def conversation_pairs(config: RunConfig, backends: dict[str, Backend], store: Store, embedder: Embedder,
                       progress: bool = True, probe: bool = True) -> dict[str, list[tuple[str, str]]] | None:
    """Topic -> the pairs that converse under ``conversation.pairs``; None for ``all`` (every pair).

    With ``knn``: every agent's probes (:mod:`teamgraph.fingerprints`; those not stored are asked
    now, unless ``probe`` is False: then a missing probe gives None), fingerprints from ``embedder``,
    and :func:`teamgraph.select_pairs` per topic with the config's ``k``, ``explore``, ``budget`` and
    ``conversation.seed``.
    """
    from .fingerprints import fingerprints, plan_probes, run_probes
    from .pairs import select_pairs

    settings = config.conversation.pairs
    if settings.strategy == "all":
        return None
    specs = plan_probes(config.agents, config.topics, settings.probes, config.conversation,
                        backend_identity(config, backends))
    if probe:
        replies = run_probes(specs, backends, store, config.conversation, progress=progress)
    else:
        replies = store.probes([s.id for s in specs])
        if len(replies) < len(specs):
            return None
    return {topic: select_pairs(prints, k=settings.k, explore=settings.explore, budget=settings.budget,
                                seed=config.conversation.seed)
            for topic, prints in fingerprints(specs, replies, embedder).items()}


def store_path_of(config: RunConfig, out_dir: str | Path | None = None, store_path: str | Path | None = None) -> Path:
    """The store a run of ``config`` uses: ``store_path``, else the config's ``store``, else ``<out>/store.sqlite``."""
    return Path(store_path or config.store or Path(out_dir or config.output) / "store.sqlite")


def run(config: RunConfig, out_dir: str | Path | None = None, store_path: str | Path | None = None,
        progress: bool = True, figures: bool = True, wait: bool = False) -> RunResult:
    """Run (or resume) the whole pipeline of ``config`` and write teams JSON and figures to ``out_dir``.

    The run holds its store's writer lease throughout (``StoreBusyError`` when another writer holds
    it; with ``wait``, waits for it), taken before any backend opens and released on any exit. Under
    the lease it writes its run record (``teamgraph.records``) to the store and to
    ``<out>/run_record.json``: ``started`` first, then ``success``, ``cancelled`` or ``error``.
    """
    path = store_path_of(config, out_dir, store_path)
    out = Path(out_dir or config.output)
    with hold_store(path, wait=wait), Store(path) as store, \
            recording("run", config, store, out / RECORD_FILES["run"]) as record:
        return _run(config, out, store, progress, figures, record)


def _run(config: RunConfig, out: Path, store: Store, progress: bool, figures: bool, record: RunRecord) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    timings = record.timings  # filled stage by stage: an interrupted run's record keeps the stages it finished
    embedder = Embedder(config.scoring.embedder, device=config.scoring.device,  # loads on first use
                        batch_size=config.scoring.batch_size, store=store)
    with contextlib.ExitStack() as models:  # closed before scoring: with pairs: all, one of models and embedder in memory
        backends = open_backends(config)
        for backend in backends.values():
            models.callback(backend.close)
        preflight(config, backends)
        record.update(agents=backend_identity(config, backends))
        t0 = time.perf_counter()
        pairs = conversation_pairs(config, backends, store, embedder, progress=progress)
        if pairs is not None:
            timings["probes_s"] = time.perf_counter() - t0
            record.update(pairs={topic: len(chosen) for topic, chosen in pairs.items()}, save=False)
        t0 = time.perf_counter()
        specs = plan(config, backends, pairs)
        conversations = run_conversations(specs, backends, store, config.conversation, progress=progress)
        timings["conversations_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    record.update(embedder=embedder.model_id, save=False)
    values = relationship_values(conversations, metric=config.scoring.metric, embedder=embedder, progress=progress)
    timings["scoring_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    graphs = build_graphs(values, threshold=config.graph.threshold, agents=config.agents)
    partitions = analyse_graphs(graphs, values, config.communities)
    timings["communities_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    files = [out / "conversations.jsonl"]
    write_conversations(conversations, files[0])
    values_path = out / "relationship_values.csv"
    values.assign(conversation_ids=values["conversation_ids"].map(" ".join)).to_csv(values_path, index=False)
    files.append(values_path)
    for topic, partition in partitions.items():
        files.append(export_teams(partition, out / f"teams_{_slug(topic)}.json", extra={"run": config.name},
                                  run_record=record.id, embedder=embedder.model_id))
    if figures:
        files += _figures(partitions, out, values, conversations, embedder)
    timings["outputs_s"] = time.perf_counter() - t0
    # what this run used that was already stored: used - rows it added (one writer, so those are its calls)
    before, now = record.data["store_rows"]["before"] or {}, store.counts()
    texts = {u.text for c in conversations for u in c.utterances if u.text.strip()}
    record.reused(
        utterances=sum(len(c.utterances) for c in conversations) - (now["utterances"] - before.get("utterances", 0)),
        embeddings=len(texts) - (now["embeddings"] - before.get("embeddings", 0)))
    return RunResult(conversations, values, graphs, partitions, files, dict(timings), record.id)


def analyse_graphs(graphs: dict[str, nx.Graph], values: pd.DataFrame, settings: CommunityConfig) -> dict[str, Partition]:
    """Topic -> Partition of each graph, carrying how much to trust it, as ``teamgraph run`` makes them.

    Each partition carries its significance (unless ``settings.n_permutations`` is 0: docs/signal.md)
    and its agreement with the agents' labels, overall and per label kind (``family``, ``role``: are
    the teams models or specialisations?), labels read from the graphs' nodes.
    """
    labels = {n: d.get("labels") for g in graphs.values() for n, d in g.nodes(data=True)}
    c = settings
    partitions = {}
    for topic, g in graphs.items():
        partition = find_communities(g, resolution=c.resolution, n_seeds=c.n_seeds, seed=c.seed, backend=c.backend)
        if c.n_permutations:
            partition = partition.with_significance(
                permutation_test(partition, n_permutations=c.n_permutations, seed=c.seed, values=values))
        partition = partition.with_validation(label_agreement(partition, seed=c.seed))
        for kind in label_kinds(labels):
            partition = partition.with_validation(label_agreement(partition, seed=c.seed, kind=kind), kind)
        partitions[topic] = partition
    return partitions


def planned_conversations(store: Store, config: RunConfig) -> list[Conversation]:
    """The stored conversations a run of ``config`` planned (a store may hold several runs); no model call.

    Conversation ids hash the backend and weights, so the backends are opened (no model is
    loaded) to compute them; when that is not possible here (e.g. vLLM not installed), the
    conversations between the roster's agents on the config's topics are used. With
    ``conversation.pairs: knn`` the pairs are selected again from the stored probe replies (their
    embeddings are stored too: no model call), so a store shared with an every-pair run still gives
    this run's conversations; a store without all the probes gives every stored pair. Reads without
    the store's lease: rows under legacy ids are read, not re-keyed.
    """
    from .dialogue import stored_conversations
    from .errors import TeamgraphError

    try:
        backends = open_backends(config)
    except TeamgraphError:
        names, topics = set(config.agents.names), set(config.topics)
        return [c for c in store.conversations() if c.topic in topics and set(c.pair) <= names]
    try:
        pairs = None
        if config.conversation.pairs.strategy != "all":  # the pairs the run selected, from its stored probes
            embedder = Embedder(config.scoring.embedder, device=config.scoring.device, store=store)
            pairs = conversation_pairs(config, backends, store, embedder, progress=False, probe=False)
        specs = plan(config, backends, pairs)
    finally:
        for backend in backends.values():
            backend.close()
    return stored_conversations(store, specs)


def _figures(partitions: dict[str, Partition], out: Path, values: pd.DataFrame, conversations: list[Conversation],
             embedder: Embedder) -> list[Path]:
    """The figures of ``teamgraph plot`` as PNG: graphs, topics side by side, value heatmaps, trajectories."""
    from .viz import write_figures

    return write_figures(out, partitions, values=values, conversations=conversations, embedder=embedder,
                         formats=("png",))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text.lower())[:60] or "topic"


def estimate(config: RunConfig, tokens_per_second: float = 90.0, prompt_tokens_per_second: float = 1000.0,
             pairs: dict[str, list[tuple[str, str]]] | None = None) -> dict[str, Any]:
    """Dry-run figures: conversations, utterances, token upper bounds and a rough time.

    Each zoo model is timed at its own measured speed on 2 CPU cores with llama.cpp
    (``ZooModel.tokens_per_second``); other models at ``tokens_per_second``. Servers and GPUs differ,
    so the time is labelled as an estimate at those rates. ``pairs`` (:func:`conversation_pairs`)
    counts only those pairs' conversations; ``all_conversations`` is the count with every pair.
    """
    from .models import get_model, is_zoo_name

    every = plan_conversations(config.agents, config.topics, config.conversation)
    specs = every if pairs is None else plan_conversations(config.agents, config.topics, config.conversation, pairs=pairs)
    gen_tokens = prompt_tokens = 0
    seconds = 0.0
    per_model: dict[str, dict[str, float]] = {}
    for spec in specs:
        history_tokens = 60 + len((config.conversation.instruction + " " + spec.opener.persona).split()) * 4 // 3
        for turn in range(spec.turns):
            me = spec.speaker(turn)
            rate = get_model(me.model).tokens_per_second if is_zoo_name(me.model) else tokens_per_second
            row = per_model.setdefault(me.model, {"utterances": 0, "max_generated_tokens": 0, "seconds": 0.0,
                                                  "tokens_per_second": rate})
            cost = me.sampling.max_tokens / rate + history_tokens / prompt_tokens_per_second
            row["utterances"] += 1
            row["max_generated_tokens"] += me.sampling.max_tokens
            row["seconds"] += cost
            seconds += cost
            gen_tokens += me.sampling.max_tokens
            prompt_tokens += history_tokens
            history_tokens += me.sampling.max_tokens
    return {
        "conversations": len(specs), "all_conversations": len(every), "utterances": sum(s.turns for s in specs),
        "topics": len(config.topics),
        "agents": len(config.agents), "max_generated_tokens": gen_tokens, "approx_prompt_tokens": prompt_tokens,
        "estimated_seconds": round(seconds, 1), "assumed_tokens_per_second": tokens_per_second,
        "per_model": {m: {**v, "seconds": round(v["seconds"], 1)} for m, v in sorted(per_model.items())},
    }
