"""``teamgraph plot``: figures (PNG and SVG) from a run's store or a conversations JSONL, no model calls."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import (DEFAULT_EMBEDDER, DEFAULT_METRIC, DEFAULT_N_SEEDS, DEFAULT_RESOLUTION, DEFAULT_THRESHOLD, check,
                      help_text)

__all__ = ["FORMATS", "register", "command"]

FORMATS = ("png", "svg", "pdf")


def register(sub: argparse._SubParsersAction) -> None:
    plot = sub.add_parser(
        "plot", help="figures of graphs, value heatmaps, conversation trajectories (and an evaluation table)",
        description="Draw the language-model graph of every topic (one shared layout), the topics side by "
                    "side, heatmaps of relationship values ordered by community, the trajectories of a few "
                    "conversations in embedding space and, given a table, the evaluation chart.")
    source = plot.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="SQLite store of a run (teamgraph run ... --store / <out>/store.sqlite)")
    source.add_argument("--conversations", type=Path, help="JSONL file, one conversation per line")
    plot.add_argument("--config", type=Path, default=None,
                      help="run config (YAML): its metric, threshold, communities, embedder and agent labels "
                           "are used unless given here")
    plot.add_argument("--out", required=True, type=Path, help="folder to write the figures into")
    plot.add_argument("--topic", default=None, help="draw only this topic (default: every topic and 'all')")
    plot.add_argument("--metric", default=None, help=f"relationship metric (default: the config's, else {DEFAULT_METRIC})")
    plot.add_argument("--threshold", default=None, help=f"none | mean | quantile:Q | top_k:K (default: the config's, else {DEFAULT_THRESHOLD})")
    plot.add_argument("--resolution", type=float, default=None, help=help_text("resolution", "Louvain resolution", f"config, else {DEFAULT_RESOLUTION}"))
    plot.add_argument("--seeds", type=int, default=None, help=help_text("n_seeds", "Louvain seeds for the consensus", f"config, else {DEFAULT_N_SEEDS}"))
    plot.add_argument("--trajectories", type=int, default=3, help=help_text("trajectories", "how many conversation trajectories", 3))
    plot.add_argument("--evaluation", type=Path, default=None,
                      help="evaluation table (CSV with team/baseline, accuracy[, benchmark, std]) to chart")
    plot.add_argument("--formats", default="png,svg", help="comma-separated: png, svg, pdf (default: %(default)s)")
    plot.add_argument("--dpi", type=int, default=120, help=help_text("dpi", "PNG resolution", 120))
    plot.add_argument("--embedder", default=None, help=f"embedder name or local path (default: config, else {DEFAULT_EMBEDDER})")
    plot.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    plot.set_defaults(func=command)


def _formats(text: str) -> tuple[str, ...]:
    from ..errors import InputError

    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"--formats: '{text}' (choose from {', '.join(FORMATS)})")
    return formats


def _evaluation_table(path: Path):
    import pandas as pd

    from ..errors import InputError

    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: cannot read (no such file)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    return table


def command(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a command line draws to files, never to a window

    from ..communities import find_communities
    from ..config import CommunityConfig, RunConfig, ScoringConfig, load_config
    from ..conversations import read_conversations
    from ..embedding import Embedder
    from ..errors import InputError
    from ..graph import build_graph, build_graphs
    from ..scoring import relationship_values
    from ..store import Store
    from ..pipeline import planned_conversations
    from ..viz import plot_evaluation, write_figures

    formats = _formats(args.formats)
    check("trajectories", args.trajectories, "--trajectories")
    check("dpi", args.dpi, "--dpi")
    config: RunConfig | None = load_config(args.config) if args.config else None
    evaluation = _evaluation_table(args.evaluation) if args.evaluation else None
    if evaluation is not None:
        plot_evaluation(evaluation)  # check the table before any embedding work
        import matplotlib.pyplot as plt

        plt.close("all")

    store = None
    if args.store is not None:
        if not args.store.is_file():
            raise InputError(f"{args.store}: no such store file")
        store = Store(args.store)
        conversations = planned_conversations(store, config) if config else store.conversations()
        if not conversations:
            of_run = f" of {args.config} (run it first: teamgraph run {args.config})" if config else ""
            raise InputError(f"{args.store}: no complete conversations{of_run} in the store")
    else:
        conversations = read_conversations(args.conversations)
    topics = sorted({c.topic for c in conversations})
    if args.topic is not None and args.topic != "all" and args.topic not in topics:
        raise InputError(f"--topic: '{args.topic}' is not a topic of these conversations (have: {', '.join(topics)})")
    one_topic = None if args.topic in (None, "all") else args.topic
    if one_topic is not None:
        conversations = [c for c in conversations if c.topic == one_topic]  # embed only what is drawn
    scoring = config.scoring if config else None
    defaults = ScoringConfig() if scoring is None else scoring
    communities = CommunityConfig() if config is None else config.communities
    metric = args.metric or defaults.metric
    threshold = args.threshold or (config.graph.threshold if config else DEFAULT_THRESHOLD)
    resolution = check("resolution", args.resolution, "--resolution") if args.resolution is not None else communities.resolution
    n_seeds = check("n_seeds", args.seeds, "--seeds") if args.seeds is not None else communities.n_seeds
    seed = communities.seed
    embedder = Embedder(args.embedder or defaults.embedder, device=args.device or defaults.device,
                        batch_size=defaults.batch_size, store=store)
    agents = config.agents if config else None
    try:
        values = relationship_values(conversations, metric=metric, embedder=embedder)
        if args.topic is not None:
            graphs = {args.topic: build_graph(values, threshold=threshold, topic=one_topic, agents=agents)}
        else:
            graphs = build_graphs(values, threshold=threshold, agents=agents)
        partitions = {t: find_communities(g, resolution=resolution, n_seeds=n_seeds, seed=seed, backend=config.communities.backend if config else None) for t, g in graphs.items()}
        files = write_figures(args.out, partitions, values=values, conversations=conversations, embedder=embedder,
                              evaluation=evaluation, formats=formats, n_trajectories=args.trajectories, dpi=args.dpi)
    finally:
        if store is not None:
            store.close()
    for topic, partition in partitions.items():
        teams = "; ".join(", ".join(t) for t in partition.teams) or "none"
        print(f"[{topic}] teams: {teams} (Q={partition.modularity:.3f}, stability={partition.stability:.2f})")
    stems = sorted(dict.fromkeys(f.stem for f in files))
    print(f"{len(conversations)} conversations, {metric}, threshold {threshold}: wrote {len(files)} files "
          f"({', '.join(formats)}) to {args.out}/: {', '.join(stems)}")
    return 0
