"""``teamgraph report``: one self-contained HTML page of a run (graphs, teams, conversations), no model calls."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import DEFAULT_EMBEDDER, DEFAULT_METRIC, DEFAULT_THRESHOLD, check, help_text

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="one HTML page to explore a run: graphs per topic, teams, the conversations behind each edge",
        description="Write one self-contained HTML file (it works offline, from file://) with the graph of every "
                    "topic, its teams and how much to trust them, the conversations behind every edge, each "
                    "agent's settings and strongest partners, and the evaluation when the store has one.")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="SQLite store of a run (<out>/store.sqlite)")
    source.add_argument("--conversations", type=Path, help="JSONL file, one conversation per line")
    report.add_argument("--config", type=Path, default=None,
                        help="run config (YAML): its conversations, agents, metric, threshold and communities")
    report.add_argument("--out", required=True, type=Path, help="the HTML file to write, e.g. report.html")
    report.add_argument("--title", default=None, help="page title (default: the run's name)")
    report.add_argument("--evaluation", type=Path, default=None,
                        help="scores.csv of `teamgraph evaluate` (default: the newest evaluation recorded in the store)")
    report.add_argument("--metric", default=None, help=f"relationship metric (default: the config's, else {DEFAULT_METRIC})")
    report.add_argument("--threshold", default=None,
                        help=f"none | mean | quantile:Q | top_k:K (default: the config's, else {DEFAULT_THRESHOLD})")
    report.add_argument("--permutations", type=int, default=None,
                        help=help_text("n_permutations_or_skip", "permutations of the significance test, 0 to skip",
                                       "the config's"))
    report.add_argument("--embedder", default=None, help=f"embedder name or local path (default: config, else {DEFAULT_EMBEDDER})")
    report.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    report.set_defaults(func=command)


def _check_out(path: Path) -> None:
    from ..errors import InputError

    if path.is_dir():
        raise InputError(f"--out {path}: is a folder; give the report's file name, e.g. {path / 'report.html'}")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"--out {path}: {parent} is not a folder")


def command(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import CommunityConfig, ScoringConfig, load_config
    from ..conversations import read_conversations
    from ..embedding import Embedder
    from ..errors import InputError
    from ..records import read_run_records
    from ..report import agents_from_records, build_report, find_evaluation, read_scores
    from ..scoring import relationship_values
    from ..store import Store
    from ..graph import build_graphs
    from ..pipeline import analyse_graphs, planned_conversations

    _check_out(args.out)
    if args.permutations is not None:
        check("n_permutations_or_skip", args.permutations, "--permutations")
    config = load_config(args.config) if args.config else None
    scores_path = args.evaluation
    scores = read_scores(scores_path) if scores_path is not None else None  # a bad file fails before any work

    store = None
    agents = config.agents if config else None
    if args.store is not None:
        if not args.store.is_file():
            raise InputError(f"--store {args.store}: no such store file")
        records = read_run_records(args.store)  # InputError for a file that is not a teamgraph store
        if agents is None:
            agents = agents_from_records(records) or None
        store = Store(args.store)
    try:
        if store is not None:
            conversations = planned_conversations(store, config) if config else store.conversations()
            if not conversations:
                of_run = f" of {args.config} (run it first: teamgraph run {args.config})" if config else ""
                raise InputError(f"{args.store}: no complete conversations{of_run} in the store")
            if scores is None:
                scores_path = find_evaluation(args.store, config.name if config else None)
                scores = read_scores(scores_path) if scores_path is not None else None
        else:
            conversations = read_conversations(args.conversations)
        scoring = config.scoring if config else ScoringConfig()
        communities = config.communities if config else CommunityConfig()
        if args.permutations is not None:
            communities = dataclasses.replace(communities, n_permutations=args.permutations)
        metric = args.metric or scoring.metric
        threshold = args.threshold or (config.graph.threshold if config else DEFAULT_THRESHOLD)
        embedder = Embedder(args.embedder or scoring.embedder, device=args.device or scoring.device,
                            batch_size=scoring.batch_size, store=store)
        values = relationship_values(conversations, metric=metric, embedder=embedder)
        partitions = analyse_graphs(build_graphs(values, threshold=threshold, agents=agents), values, communities)
    finally:
        if store is not None:
            store.close()
    source = f"store {args.store}" if args.store is not None else f"conversations {args.conversations}"
    title = args.title or (f"teamgraph: {config.name}" if config else f"teamgraph: {Path(source.split(' ', 1)[1]).name}")
    page = build_report(partitions, conversations, values, agents=agents, evaluation=scores,
                        evaluation_source=scores_path, title=title, source=source, embedder=embedder.model_id,
                        seed=communities.seed)
    out = page.write(args.out)
    n_edges = sum(p.graph.number_of_edges() for p in partitions.values())
    evaluated = f", evaluation from {scores_path}" if scores is not None else ""
    print(f"{len(conversations)} conversations, {len(partitions)} topics ({', '.join(partitions)}), {n_edges} edges"
          f"{evaluated}: wrote {out} ({out.stat().st_size / 1e6:.1f} MB); open it in a browser: {out.resolve().as_uri()}")
    return 0
