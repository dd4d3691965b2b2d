"""``teamgraph teams``: conversations JSONL -> teams JSON, no model calls."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    teams = sub.add_parser("teams", help="conversations JSONL -> teams JSON (no model calls)")
    teams.add_argument("--conversations", required=True, type=Path, help="JSONL file, one conversation per line")
    teams.add_argument("--json", required=True, type=Path, help="where to write the teams JSON")
    teams.add_argument("--topic", default=None, help="topic to use (default: all topics aggregated)")
    teams.add_argument("--metric", default="cumulative_cosine", help="relationship metric (default: %(default)s)")
    teams.add_argument("--threshold", default="mean", help="none | mean | quantile:Q | top_k:K (default: %(default)s)")
    teams.add_argument("--resolution", type=float, default=1.0, help="Louvain resolution (default: %(default)s)")
    teams.add_argument("--seeds", type=int, default=10, help="Louvain seeds for the consensus (default: %(default)s)")
    teams.add_argument("--seed", type=int, default=0, help="first Louvain seed (default: %(default)s)")
    teams.add_argument("--permutations", type=int, default=200,
                       help="permutations of the significance test, 0 to skip (default: %(default)s)")
    teams.add_argument("--embedder", default="all-MiniLM-L6-v2", help="embedder name or local path")
    teams.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    teams.add_argument("--store", default=None, help="SQLite store to cache embeddings in")
    teams.set_defaults(func=command)



def command(args: argparse.Namespace) -> int:
    from ..communities import find_communities
    from ..conversations import read_conversations
    from ..embedding import Embedder
    from ..errors import InputError
    from ..graph import build_graph
    from ..scoring import relationship_values
    from ..significance import permutation_test, verdict
    from ..store import Store
    from ..teams import export_teams

    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0, got {args.permutations}")
    convs = read_conversations(args.conversations)
    store = Store(args.store) if args.store else None
    embedder = Embedder(args.embedder, device=args.device, store=store)
    values = relationship_values(convs, metric=args.metric, embedder=embedder, progress=True)
    graph = build_graph(values, threshold=args.threshold, topic=args.topic)
    partition = find_communities(graph, resolution=args.resolution, n_seeds=args.seeds, seed=args.seed)
    if args.permutations:
        permutation_test(partition, n_permutations=args.permutations, seed=args.seed, values=values)
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
