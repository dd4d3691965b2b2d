"""The ``teamgraph`` command line. Errors a user can fix print one line and exit with code 2."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ._version import __version__
from .errors import TeamgraphError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TeamgraphError(f"{self.prog}: {message}")


def _cmd_teams(args: argparse.Namespace) -> int:
    from .communities import find_communities
    from .conversations import read_conversations
    from .embedding import Embedder
    from .graph import build_graph
    from .scoring import relationship_values
    from .store import Store
    from .teams import export_teams

    convs = read_conversations(args.conversations)
    store = Store(args.store) if args.store else None
    embedder = Embedder(args.embedder, device=args.device, store=store)
    values = relationship_values(convs, metric=args.metric, embedder=embedder, progress=True)
    graph = build_graph(values, threshold=args.threshold, topic=args.topic)
    partition = find_communities(graph, resolution=args.resolution, n_seeds=args.seeds, seed=args.seed)
    out = export_teams(partition, args.json)
    print(f"{len(convs)} conversations, {graph.number_of_nodes()} agents, {graph.number_of_edges()} edges "
          f"(topic {graph.graph['topic']}, {args.metric}, threshold {graph.graph['threshold']})")
    for i, team in enumerate(partition.teams):
        print(f"team {i}: {', '.join(team)}")
    if partition.isolates:
        print(f"isolates: {', '.join(partition.isolates)}")
    print(f"modularity {partition.modularity:.3f}, stability {partition.stability:.3f} -> {out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import run

    config = load_config(args.config)
    result = run(config, out_dir=args.out, store_path=args.store, progress=not args.quiet)
    for topic, partition in result.partitions.items():
        teams = "; ".join(", ".join(t) for t in partition.teams) or "none"
        alone = f" | alone: {', '.join(partition.isolates)}" if partition.isolates else ""
        print(f"[{topic}] teams: {teams}{alone} (Q={partition.modularity:.3f}, stability={partition.stability:.2f})")
    out = Path(args.out or config.output)
    print(f"wrote {len(result.files)} files to {out}/ (teams_*.json, graph_*.png, conversations.jsonl)")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import estimate

    config = load_config(args.config)
    est = estimate(config)
    print(f"{est['agents']} agents, {est['topics']} topics -> {est['conversations']} conversations, "
          f"{est['utterances']} utterances")
    print(f"at most {est['max_generated_tokens']} generated tokens, about {est['approx_prompt_tokens']} prompt tokens")
    print(f"about {est['estimated_seconds'] / 60:.1f} min at {est['assumed_tokens_per_second']:.0f} generated tok/s "
          "(packaged Gemma 3 270M, 2 CPU cores; other backends differ); stored turns are not paid again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="teamgraph", description="Find teams of language models from the geometry of their dialogues.")
    parser.add_argument("--version", action="version", version=f"teamgraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    teams = sub.add_parser("teams", help="conversations JSONL -> teams JSON (no model calls)")
    teams.add_argument("--conversations", required=True, type=Path, help="JSONL file, one conversation per line")
    teams.add_argument("--json", required=True, type=Path, help="where to write the teams JSON")
    teams.add_argument("--topic", default=None, help="topic to use (default: all topics aggregated)")
    teams.add_argument("--metric", default="cumulative_cosine", help="relationship metric (default: %(default)s)")
    teams.add_argument("--threshold", default="mean", help="none | mean | quantile:Q | top_k:K (default: %(default)s)")
    teams.add_argument("--resolution", type=float, default=1.0, help="Louvain resolution (default: %(default)s)")
    teams.add_argument("--seeds", type=int, default=10, help="Louvain seeds for the consensus (default: %(default)s)")
    teams.add_argument("--seed", type=int, default=0, help="first Louvain seed (default: %(default)s)")
    teams.add_argument("--embedder", default="all-MiniLM-L6-v2", help="embedder name or local path")
    teams.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    teams.add_argument("--store", default=None, help="SQLite store to cache embeddings in")
    teams.set_defaults(func=_cmd_teams)

    run = sub.add_parser("run", help="run a roster config: conversations, graphs, teams JSON and figures")
    run.add_argument("config", type=Path, help="run config (YAML)")
    run.add_argument("--out", default=None, help="output folder (default: the config's output)")
    run.add_argument("--store", default=None, help="SQLite store (default: <out>/store.sqlite)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    plan = sub.add_parser("plan", help="dry run: count conversations and estimate tokens and time")
    plan.add_argument("config", type=Path, help="run config (YAML)")
    plan.set_defaults(func=_cmd_plan)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="teamgraph: %(levelname)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except TeamgraphError as exc:
        print(f"teamgraph: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("teamgraph: interrupted; run the same command again to resume from the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
