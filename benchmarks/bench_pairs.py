"""Pair selection at scale (issue 13, point 5): planted teams recovered from a fraction of the pairs.

    python benchmarks/bench_pairs.py [--quick] [--sizes 60,300,1000] [--fractions 1,0.3,0.1,0.03] [--json OUT]

The testbed is the ``corpus`` backend (docs/config.md): agents that speak real sentences, the MMLU
questions of their own subject (a seeded half of them each), each reply the agent's own sentence
most similar to the partner's last line. N agents in min(N/10, 50) planted groups, one MMLU subject
each (N = 60: 6 groups of 10; 300: 30 of 10; 1,000: 50 of 20), so the agents of one subject are a
planted team. Each case is one
``teamgraph.pipeline.run`` of the whole pipeline (probes, conversations, MiniLM scoring, graph,
10-seed Louvain consensus; significance test off) in a process of its own, so its peak memory is its
own, on topic ``general`` with 4 turns per conversation.

- fraction 1: ``pairs: all`` (every pair; only where affordable: N <= 300 by default).
- fraction f < 1: ``pairs: {strategy: knn, k: round(f (N-1)) - explore, explore: 1, budget: f,
  probes: 4}``: each agent's fingerprint is the mean embedding of its 4 probe replies.

Each case reports the ARI of the ``general`` partition against the planted subjects, the pairs
conversed (fraction of all), model calls (probe replies + utterances), wall time per stage
(probes, conversations, scoring, communities) and peak resident memory.
Targets: at N = 1,000 with at most 10% of pairs, ARI >= 0.9; at N = 300, the 10% knn ARI within
0.05 of the full graph's.

``--zoo``: the same comparison on real models, the study's roster (data/study.yaml: 12 agents, 3
families x 4 personas, 3 topics) on a copy of its committed store, whose every-pair conversations
are stored: ``pairs: {strategy: knn, k: 3, explore: 1, budget: 0.5, probes: 4}`` costs only the 144
probe replies (model calls, llama.cpp); the knn partition of each topic is compared (ARI) with the
every-pair partition, next to the same comparison for random pairs of the same count per topic (20
draws from the every-pair values: what any such cut of the graph does), and both partitions' ARI
against the family labels.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GROUP_SIZE = 10
MAX_GROUPS = 50
TURNS = 4
PROBES = 4


def subjects(n_groups: int) -> list[str]:
    """``n_groups`` MMLU subjects (sorted, the first n), one per planted group."""
    from teamgraph.evaluation.benchmarks import MMLU_SUBJECTS

    names = sorted(MMLU_SUBJECTS)
    if n_groups > len(names):
        raise SystemExit(f"{n_groups} groups need more than the {len(names)} MMLU subjects")
    return names[:n_groups]


def case_config(n_agents: int, fraction: float, store: str, out: str, k: int | None = None) -> dict:
    """The run config of one case (a dict, as YAML would give it)."""
    groups = subjects(min(n_agents // GROUP_SIZE, MAX_GROUPS))
    agents = [{"name": f"agent{i:04d}", "model": f"mmlu:{groups[i % len(groups)]}",
               "labels": {"subject": groups[i % len(groups)]}} for i in range(n_agents)]
    if fraction >= 1:
        pairs: object = "all"
    else:
        explore = 1 if k is None else 2
        k = max(1, round(fraction * (n_agents - 1)) - explore) if k is None else k
        pairs = {"strategy": "knn", "k": k, "explore": explore, "budget": fraction, "probes": PROBES}
    return {"name": f"pairs-{n_agents}-{fraction:g}", "output": out, "store": store,
            "backends": {"corpus": {"type": "corpus"}}, "defaults": {"backend": "corpus"}, "agents": agents,
            "topics": ["general"], "conversation": {"turns": TURNS, "pairs": pairs},
            "communities": {"n_permutations": 0}}


def child(n_agents: int, fraction: float, k: int | None = None) -> int:
    """One case in this process: print a JSON line of its figures."""
    from sklearn.metrics import adjusted_rand_score

    from teamgraph.config import config_from_dict
    from teamgraph.pipeline import run
    from teamgraph.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        config = config_from_dict(case_config(n_agents, fraction, f"{tmp}/store.sqlite", f"{tmp}/out", k))
        seconds, result = C.timed(lambda: run(config, progress=False, figures=False))
        counts = Store(f"{tmp}/store.sqlite").counts()
    partition = result.partitions["general"]
    planted = {a.name: a.labels[0] for a in config.agents}
    names = sorted(planted)
    found = {name: i for i, team in enumerate(partition.communities) for name in team}
    ari = adjusted_rand_score([planted[n] for n in names], [found.get(n, -1 - k) for k, n in enumerate(names)])
    n_pairs = int(result.values["topic"].eq("general").sum())
    print(json.dumps({
        "agents": n_agents, "fraction": fraction, "k": config.conversation.pairs.k, "ari": round(float(ari), 4), "pairs": n_pairs,
        "pair_fraction": n_pairs / (n_agents * (n_agents - 1) / 2), "communities": len(partition.communities),
        "model_calls": counts["probes"] + counts["utterances"], "probe_calls": counts["probes"],
        "utterances": counts["utterances"], "seconds": round(seconds, 1),
        "stages_s": {k: round(v, 1) for k, v in result.timings.items()}, "peak_mb": round(C.peak_rss_mb()),
        "load_1min": C.load_average()}))
    return 0


def zoo(keep: str | None = None, draws: int = 20) -> list:
    """kNN pairs vs every pair on the study's real-model roster (see the module docstring)."""
    import dataclasses
    import shutil

    import numpy as np
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from teamgraph.config import PairsConfig, load_config
    from teamgraph.graph import build_graphs
    from teamgraph.communities import find_communities
    from teamgraph.pipeline import run

    study = load_config(C.ROOT / "data" / "study.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store = folder / "store.sqlite"
        if not store.exists():  # --keep: a second run reuses the probes of the first
            shutil.copy(C.ROOT / "data" / "study" / "store.sqlite", store)
        communities = dataclasses.replace(study.communities, n_permutations=0)

        def pipeline(pairs: PairsConfig):
            config = dataclasses.replace(study, conversation=dataclasses.replace(study.conversation, pairs=pairs),
                                         communities=communities, store=str(store))
            return run(config, out_dir=folder / f"out-{pairs.strategy}", progress=False, figures=False)

        every = pipeline(PairsConfig())
        knn_settings = PairsConfig(strategy="knn", k=3, explore=1, budget=0.5, probes=4)
        seconds, knn = C.timed(lambda: pipeline(knn_settings))

    nodes = list(every.partitions["all"].nodes)
    family = [next(label for label in a.labels if label.startswith("family:")) for a in
              sorted(study.agents, key=lambda a: nodes.index(a.name))]

    def labels(partition) -> list[int]:
        found = {n: i for i, team in enumerate(partition.communities) for n in team}
        return [found.get(n, -1 - k) for k, n in enumerate(partition.nodes)]

    def partitions_of(values):
        graphs = build_graphs(values, threshold=study.graph.threshold, agents=study.agents)
        return {t: find_communities(g, resolution=communities.resolution, n_seeds=communities.n_seeds,
                                    seed=communities.seed, backend=communities.backend) for t, g in graphs.items()}

    # the baseline: as many pairs per topic as knn conversed, drawn at random from the every-pair values
    counts = knn.values.groupby("topic").size()
    rng = np.random.default_rng(0)
    random_ari: dict[str, list[float]] = {t: [] for t in every.partitions}
    for _ in range(draws):
        subset = pd.concat([rows.iloc[rng.choice(len(rows), int(counts[t]), replace=False)]
                            for t, rows in every.values.groupby("topic")])
        subset.attrs = dict(every.values.attrs)
        for t, part in partitions_of(subset).items():
            random_ari[t].append(adjusted_rand_score(labels(every.partitions[t]), labels(part)))

    results = []
    for topic, whole in every.partitions.items():
        ari = adjusted_rand_score(labels(whole), labels(knn.partitions[topic]))
        detail = {"ari_knn_vs_all": round(ari, 3), "ari_random_vs_all_mean": round(float(np.mean(random_ari[topic])), 3),
                  "ari_random_vs_all_sd": round(float(np.std(random_ari[topic])), 3), "random_draws": draws,
                  "ari_family_all": round(adjusted_rand_score(family, labels(whole)), 3),
                  "ari_family_knn": round(adjusted_rand_score(family, labels(knn.partitions[topic])), 3),
                  "teams_all": whole.teams, "teams_knn": knn.partitions[topic].teams,
                  "pairs_knn": int(counts.sum()) if topic == "all" else int(counts[topic]), "pairs_all": 66,
                  "probes_s": round(knn.timings.get("probes_s", 0), 1), "load_1min": C.load_average()}
        results.append(C.result(
            f"pairs.zoo_{topic}", f"study roster, topic {topic}: ARI of the knn partition (k=3, explore=1, budget "
            f"0.5) vs the every-pair partition", ari, "", detail=detail,
            note=f"random pairs of the same count: ARI {detail['ari_random_vs_all_mean']:.3f} "
                 f"+/- {detail['ari_random_vs_all_sd']:.3f}; vs family labels: all {detail['ari_family_all']:.3f}, "
                 f"knn {detail['ari_family_knn']:.3f}"))
    return results


def run_case(n_agents: int, fraction: float, k: int | None = None) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(n_agents), str(fraction), str(k or 0)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"agents": n_agents, "fraction": fraction, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="agent counts, comma-separated (default 60,300,1000; --quick: 60,300)")
    p.add_argument("--fractions", default="1,0.3,0.1,0.03", help="fractions of all pairs, comma-separated")
    p.add_argument("--full-max", type=int, default=300, help="largest N run with every pair (fraction 1)")
    p.add_argument("--k", type=int, default=None,
                   help="knn: this many neighbours (explore 2) with the budget as a cap only, instead of "
                        "k = round(f (N-1)) - 1 (explore 1) that fills the budget")
    p.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    p.add_argument("--zoo", action="store_true", help="only the real-model comparison on the study's roster")
    p.add_argument("--keep", default=None, help="--zoo: keep the store copy in this folder (a rerun reuses its probes)")
    args = p.parse_args()
    if args.child:
        return child(int(args.child[0]), float(args.child[1]), int(args.child[2]) or None)
    if args.zoo:
        C.emit(zoo(args.keep), args.json)
        return 0
    sizes = [int(s) for s in (args.sizes or ("60,300" if args.quick else "60,300,1000")).split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    cases, results = [], []
    for n in sizes:
        for f in fractions:
            if f >= 1 and n > args.full_max:
                continue
            case = run_case(n, f, args.k)
            print(json.dumps(case), flush=True)
            cases.append(case)
            what = f"N={n}, all pairs" if f >= 1 else f"N={n}, knn, k {case.get('k')}, budget {f:g}"
            if "error" in case:
                results.append(C.result(f"pairs.ari_{n}_{f:g}{'' if f >= 1 or args.k is None else f'_k{args.k}'}", what, None, "", status="ERROR",
                                        note=" ".join(case["error"])))
                continue
            note = (f"{case['pairs']} pairs ({case['pair_fraction']:.1%}), {case['model_calls']} model calls, "
                    f"{case['seconds']} s, {case['peak_mb']} MB peak, stages {case['stages_s']}")
            results.append(C.result(f"pairs.ari_{n}_{f:g}{'' if f >= 1 or args.k is None else f'_k{args.k}'}", f"{what}: ARI vs planted subjects", case["ari"], "",
                                    detail=case, note=note))
    by = {(c["agents"], c["fraction"]): c for c in cases if "error" not in c}
    big = [c for (n, f), c in by.items() if n >= 1000 and f <= 0.1]
    if big:
        best = max(big, key=lambda c: c["ari"])
        results.append(C.result("pairs.ari_1000_at_most_10pct", "N=1000, best ARI with at most 10% of pairs",
                                best["ari"], "", 0.9, ">=", detail=best))
    if (300, 1.0) in by and (300, 0.1) in by:
        gap = by[(300, 1.0)]["ari"] - by[(300, 0.1)]["ari"]
        results.append(C.result("pairs.ari_gap_300", "N=300, full-graph ARI minus 10%-knn ARI", gap, "", 0.05, "<=",
                                detail={"all": by[(300, 1.0)], "knn": by[(300, 0.1)]}))
    C.emit(results, args.json, {"cases": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
