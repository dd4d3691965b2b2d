"""``teamgraph teams``: conversations JSONL -> teams JSON, no model calls."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import (DEFAULT_EMBEDDER, DEFAULT_METRIC, DEFAULT_N_PERMUTATIONS, DEFAULT_N_SEEDS, DEFAULT_RESOLUTION,
                      DEFAULT_SEED, DEFAULT_THRESHOLD, help_text)

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    teams = sub.add_parser("teams", help="conversations JSONL -> teams JSON (no model calls)")
    teams.add_argument("--conversations", required=True, type=Path, help="JSONL file, one conversation per line")
    teams.add_argument("--json", required=True, type=Path, help="where to write the teams JSON")
    teams.add_argument("--topic", default=None, help="topic to use (default: all topics aggregated)")
    teams.add_argument("--metric", default=DEFAULT_METRIC, help="relationship metric (default: %(default)s)")
    teams.add_argument("--threshold", default=DEFAULT_THRESHOLD,
                       help="none | mean | quantile:Q | top_k:K (default: %(default)s)")
    teams.add_argument("--resolution", type=float, default=DEFAULT_RESOLUTION,
                       help=help_text("resolution", "Louvain resolution", DEFAULT_RESOLUTION))
    teams.add_argument("--seeds", type=int, default=DEFAULT_N_SEEDS,
                       help=help_text("n_seeds", "Louvain seeds for the consensus", DEFAULT_N_SEEDS))
    teams.add_argument("--seed", type=int, default=DEFAULT_SEED, help=help_text("seed", "first Louvain seed", DEFAULT_SEED))
    teams.add_argument("--permutations", type=int, default=DEFAULT_N_PERMUTATIONS,
                       help=help_text("n_permutations_or_skip", "permutations of the significance test, 0 to skip",
                                      DEFAULT_N_PERMUTATIONS))
    teams.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="embedder name or local path (default: %(default)s)")
    teams.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    teams.add_argument("--store", default=None, help="SQLite store to cache embeddings in")
    teams.set_defaults(func=command)



def command(args: argparse.Namespace) -> int:
    from ..communities import find_communities
    from ..conversations import read_conversations
    from ..embedding import Embedder
    from ..limits import check
    from ..graph import build_graph
    from ..scoring import relationship_values
    from ..significance import permutation_test, verdict
    from ..store import Store
    from ..teams import export_teams

    check("n_permutations_or_skip", args.permutations, "--permutations")
    check("resolution", args.resolution, "--resolution")
    check("n_seeds", args.seeds, "--seeds")
    check("seed", args.seed, "--seed")
    convs = read_conversations(args.conversations)
    store = Store(args.store) if args.store else None
    embedder = Embedder(args.embedder, device=args.device, store=store)
    values = relationship_values(convs, metric=args.metric, embedder=embedder, progress=True)
    graph = build_graph(values, threshold=args.threshold, topic=args.topic)
    partition = find_communities(graph, resolution=args.resolution, n_seeds=args.seeds, seed=args.seed)
    if args.permutations:
        partition = partition.with_significance(
            permutation_test(partition, n_permutations=args.permutations, seed=args.seed, values=values))
    out = export_teams(partition, args.json, embedder=embedder.model_id)
    print(f"{len(convs)} conversations, {graph.number_of_nodes()} agents, {graph.number_of_edges()} edges "
          f"(topic {graph.graph['topic']}, {args.metric}, threshold {graph.graph['threshold']})")
    for i, team in enumerate(partition.teams):
        print(f"team {i}: {', '.join(team)}")
    if partition.isolates:
        print(f"isolates: {', '.join(partition.isolates)}")
    print(f"modularity {partition.modularity:.3f}, stability {partition.stability:.3f} -> {out}")
    if partition.significance is not None:
        print(verdict(partition.significance))
    return 0
