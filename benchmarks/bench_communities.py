"""Community detection benchmark (issue 13, point 1): the consensus with its default backend vs one Louvain run.

    python benchmarks/bench_communities.py [--quick] [--agents N] [--python-louvain-budget S] [--json OUT]

The graph: N agents (1,000; ``--quick``: 300) in 10 planted groups of equal size, complete and
weighted (0.8 inside a group, 0.3 between, plus normal noise of sd 0.1, clipped at 0), given as a
networkx graph; building it is not timed.

- ``communities.default_vs_one_louvain``: the whole ``find_communities`` (10 seeds, consensus,
  networkx modularity) with the default backend, over ONE ``networkx.community.louvain_communities``
  run on the same graph; alternated, twice each, medians (target: <= 1.0). The backend's import
  (about 0.9 s for sknetwork.clustering, once per process) is done first and not timed.
- ``communities.python_louvain``: the same ``find_communities`` with ``backend="python-louvain"``,
  once, stopped after ``--python-louvain-budget`` seconds (default 60; a SIGALRM ends the pure-Python
  run) and then reported SKIP with the reason.

- ``communities.sparse_10k_seconds`` and ``communities.sparse_10k_peak_mb``: ``find_communities`` (default
  backend, 10 seeds + consensus) on a sparse graph of 10,000 agents (``--quick``: 3,000) in 100 planted
  groups, each agent linked to 15 random agents of its group and 5 random agents anywhere (about 20
  neighbours each; weights 0.8 / 0.3 plus noise of sd 0.1), given as a networkx graph. Run in a process
  of its own (``--sparse-child N``) so that its peak resident memory, graph included, is its own.
  Targets: <= 30 s and < 2,048 MB.

Each line's detail holds the partition found (communities, ARI against the planted groups,
modularity, stability, consensus outcome) and the 1-minute load average.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

N_GROUPS = 10
N_SEEDS = 10


def planted_graph(n_agents: int, seed: int = 0):
    """Complete weighted networkx graph of ``n_agents`` in N_GROUPS planted groups, and the group of each agent."""
    import networkx as nx
    import numpy as np

    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(N_GROUPS), -(-n_agents // N_GROUPS))[:n_agents]
    rng.shuffle(group)
    nodes = [f"agent{i:05d}" for i in range(n_agents)]
    i, j = np.triu_indices(n_agents, k=1)
    weights = np.maximum(np.where(group[i] == group[j], 0.8, 0.3) + rng.normal(0, 0.1, len(i)), 0.0)
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_weighted_edges_from(zip([nodes[a] for a in i], [nodes[b] for b in j], weights.tolist()))
    return graph, dict(zip(nodes, group.tolist()))


SPARSE_GROUPS = 100


def sparse_planted_graph(n_agents: int, seed: int = 0):
    """About 20 neighbours per agent: 15 random agents of its planted group and 5 anywhere; the group of each."""
    import networkx as nx
    import numpy as np

    rng = np.random.default_rng(seed)
    group = rng.integers(0, SPARSE_GROUPS, n_agents)
    nodes = [f"agent{i:05d}" for i in range(n_agents)]
    members = [np.flatnonzero(group == g) for g in range(SPARSE_GROUPS)]
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    for i in range(n_agents):
        for j in np.concatenate([rng.choice(members[group[i]], 15), rng.integers(0, n_agents, 5)]):
            if j != i:
                w = (0.8 if group[j] == group[i] else 0.3) + rng.normal(0, 0.1)
                graph.add_edge(nodes[i], nodes[int(j)], weight=max(w, 0.0))
    return graph, dict(zip(nodes, group.tolist()))


def sparse_child(n_agents: int) -> int:
    """Print one JSON line: seconds, peak memory and the partition of the sparse case (own process)."""
    import json

    import teamgraph as tg
    from teamgraph.communities import _default_backend

    graph, truth = sparse_planted_graph(n_agents)
    backend = _default_backend()
    importlib.import_module({"sknetwork": "sknetwork.clustering", "python-louvain": "community"}.get(backend, "networkx"))
    seconds, part = C.timed(lambda: tg.find_communities(graph, n_seeds=N_SEEDS, seed=0))
    print(json.dumps({**_summary(part, truth, seconds), "agents": n_agents, "edges": graph.number_of_edges(),
                      "peak_mb": C.peak_rss_mb()}))
    return 0


def sparse_results(n_agents: int) -> list:
    import json
    import subprocess

    what = f"find_communities, {n_agents:,}-agent sparse graph (about 20 neighbours each), {N_SEEDS} seeds + consensus"
    done = subprocess.run([sys.executable, __file__, "--sparse-child", str(n_agents)], capture_output=True, text=True)
    if done.returncode != 0:
        return [C.result("communities.sparse_10k_seconds", what, None, "s", status="MISS",
                         note=f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")]
    d = json.loads(done.stdout.strip().splitlines()[-1])
    note = (f"{d['edges']:,} edges; {d['communities']} communities, ARI {d['ari_vs_planted']:.3f} vs planted, "
            f"Q={d['modularity']:.4f}, {d['outcome']}")
    return [C.result("communities.sparse_10k_seconds", what, d["seconds"], "s", 30.0, "<=", detail=d, note=note),
            C.result("communities.sparse_10k_peak_mb", what + ": peak resident memory of its process, graph included",
                     d["peak_mb"], "MB", 2048.0, "<", detail=d)]


def _agreement(groups, truth: dict) -> float:
    from teamgraph.communities import adjusted_rand, partition_labels

    nodes = sorted(truth)
    return adjusted_rand(partition_labels(groups, nodes), [truth[n] for n in nodes])


def _summary(partition, truth: dict, seconds: float) -> dict:
    return {"seconds": seconds, "backend": partition.settings.backend, "communities": len(partition.communities),
            "ari_vs_planted": _agreement(partition.communities, truth), "modularity": partition.modularity,
            "stability": partition.stability, "outcome": partition.consensus.get("outcome"),
            "rounds": partition.consensus.get("rounds"), "load_1min": C.load_average()}


class _OverBudget(Exception):
    pass


def _within(seconds: float, fn):
    """``fn()`` stopped by SIGALRM after ``seconds`` (raises _OverBudget); POSIX only."""
    def stop(signum, frame):
        raise _OverBudget()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=None, help="graph size (default 1,000; --quick: 300)")
    p.add_argument("--sparse-agents", type=int, default=None, help="sparse case size (default 10,000; --quick: 3,000)")
    p.add_argument("--sparse-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--python-louvain-budget", type=float, default=60.0,
                   help="seconds the python-louvain backend may take before it is reported skipped (0: skip it)")
    args = p.parse_args()
    if args.sparse_child:
        return sparse_child(args.sparse_child)
    n = args.agents or (300 if args.quick else 1000)

    import networkx as nx

    import teamgraph as tg
    from teamgraph.communities import _default_backend, modularity

    start = time.perf_counter()
    graph, truth = planted_graph(n)
    build = time.perf_counter() - start
    backend = _default_backend()
    # The backend's import is paid once per process, not per call: taken out of the timing, reported.
    module = {"sknetwork": "sknetwork.clustering", "python-louvain": "community"}.get(backend, "networkx")
    import_s, _ = C.timed(lambda: importlib.import_module(module))
    print(f"graph: {n} agents, {graph.number_of_edges():,} edges, {N_GROUPS} planted groups "
          f"(built in {build:.1f} s); default backend {backend} (import {import_s:.2f} s, untimed); "
          f"load {C.load_average()}", flush=True)

    ours, louvain, last, one = [], [], None, None
    for _ in range(2):  # alternated: ours, networkx, ours, networkx
        seconds, last = C.timed(lambda: tg.find_communities(graph, n_seeds=N_SEEDS, seed=0))
        ours.append(seconds)
        seconds, one = C.timed(lambda: nx.community.louvain_communities(graph, weight="weight", seed=0))
        louvain.append(seconds)
    detail = {**_summary(last, truth, C.median(ours)), "runs_s": ours, "networkx_one_run_s": louvain,
              "networkx_one_run": {"communities": len(one), "ari_vs_planted": _agreement(one, truth),
                                   "modularity": modularity(graph, one)},
              "agents": n, "edges": graph.number_of_edges(), "backend_import_s": import_s}
    results = [C.result(
        "communities.default_vs_one_louvain",
        f"find_communities ({detail['backend']}, {N_SEEDS} seeds + consensus + modularity) / one networkx "
        f"louvain_communities, {n}-agent complete graph", C.median(ours) / C.median(louvain), "x", 1.0, "<=",
        detail=detail,
        note=f"{C.median(ours):.2f} s vs {C.median(louvain):.2f} s; {detail['communities']} communities, "
             f"ARI {detail['ari_vs_planted']:.3f} vs planted, Q={detail['modularity']:.4f} "
             f"(one networkx run: ARI {detail['networkx_one_run']['ari_vs_planted']:.3f}, "
             f"Q={detail['networkx_one_run']['modularity']:.4f}), stability {detail['stability']:.3f}")]

    name, what = "communities.python_louvain", f"find_communities (python-louvain, {N_SEEDS} seeds + consensus), {n} agents"
    budget = args.python_louvain_budget
    if budget <= 0:
        results.append(C.result(name, what, None, "s", status="SKIP", note="--python-louvain-budget 0"))
    elif not hasattr(signal, "setitimer"):
        results.append(C.result(name, what, None, "s", status="SKIP", note="no SIGALRM here to bound its time"))
    else:
        try:
            seconds, part = C.timed(lambda: _within(budget, lambda: tg.find_communities(
                graph, n_seeds=N_SEEDS, seed=0, backend="python-louvain")))
        except _OverBudget:
            results.append(C.result(name, what, None, "s", status="SKIP",
                                    note=f"stopped after its {budget:g} s budget (pure Python; "
                                         f"{budget / C.median(ours):.0f}x the default backend's whole run and counting)"))
        else:
            d = _summary(part, truth, seconds)
            results.append(C.result(name, what, seconds, "s", detail=d,
                                    note=f"INFO; {seconds / C.median(ours):.1f}x the default backend; "
                                         f"ARI {d['ari_vs_planted']:.3f} vs planted, Q={d['modularity']:.4f}"))
    results += sparse_results(args.sparse_agents or (3000 if args.quick else 10_000))
    C.emit(results, args.json, {"agents": n})
    return 0


if __name__ == "__main__":
    sys.exit(main())
