"""The study: does the graph recover models or specialisations, and do its teams beat the baselines?

``run_study(config)`` runs (or resumes, from the store) the whole method on a labelled roster, then
1. **recovery**: for every metric and topic, the communities' agreement with each label kind
   (``family:``, ``role:``) as ARI/NMI with label-permutation p-values, and the significance of the
   community structure itself;
2. **answers**: every agent answers the sampled items of each benchmark once (likelihood scoring for
   multiple choice where the backend gives log-probabilities), per-agent accuracy with bootstrap
   intervals;
3. **teams vs baselines**: each community team of the benchmark's topic (majority vote) against random
   teams of its size, curated teams (by ``role`` label), the best single agent chosen on held-out
   items, that agent's self-consistency (k = team size samples) and the oracle; bootstrap 95%
   intervals over items and paired tests (exact McNemar; sign-flip permutation against random teams).
Labels are used only to measure. ``write_study_report`` writes the markdown (``docs/study.md``) from
the result; it is never edited by hand.
"""
from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .config import RunConfig
from .errors import InputError

__all__ = ["N_BOOT", "ALPHA", "StudyResult", "recovery_table", "team_tables", "generation_samples", "run_study",
           "holm", "write_study_report"]

N_BOOT = 2000
ALPHA = 0.05


@dataclass
class StudyResult:
    """Tables of a study (pandas, one row per measurement) and how it was produced."""

    recovery: pd.DataFrame
    agents: pd.DataFrame
    teams: pd.DataFrame
    tests: pd.DataFrame
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    record_id: str | None = None  # the study's run record (teamgraph.records); settings["run_record"]: its run's


def _ci(x: Any, seed: int) -> tuple[float, float]:
    from .evaluation.stats import bootstrap_ci

    return bootstrap_ci(np.asarray(x, dtype=float), n_boot=N_BOOT, seed=seed)


def recovery_table(config: RunConfig, conversations: list, embedder: Any, n_permutations: int = 1000) -> pd.DataFrame:
    """ARI/NMI (with p-values) of each metric's communities against each label kind, per topic."""
    from .communities import find_communities
    from .graph import build_graphs
    from .metrics import METRICS
    from .scoring import relationship_values
    from .significance import permutation_test
    from .validation import label_agreement, label_kinds

    c = config.communities
    kinds = label_kinds(config.agents.labels())
    rows = []
    for metric in METRICS:
        values = relationship_values(conversations, metric=metric, embedder=embedder)
        for topic, graph in build_graphs(values, threshold=config.graph.threshold, agents=config.agents).items():
            part = find_communities(graph, resolution=c.resolution, n_seeds=c.n_seeds, seed=c.seed, backend=c.backend)
            sig = permutation_test(part, n_permutations=200, seed=c.seed, values=values)
            for kind in kinds:
                agree = label_agreement(part, n_permutations=n_permutations, seed=c.seed, kind=kind)
                rows.append({"metric": metric, "topic": topic, "label": kind,
                             "ari": agree.ari if agree else np.nan, "ari_p": agree.p_value if agree else np.nan,
                             "nmi": agree.nmi if agree else np.nan, "nmi_p": agree.nmi_p_value if agree else np.nan,
                             "n_communities": len(part.communities), "modularity": part.modularity,
                             "structure_p": sig.p_value,
                             "communities": " | ".join(", ".join(m) for m in part.communities)})
    return pd.DataFrame(rows)


def _verdict_p(p: float, difference: float, n: int) -> str:
    if p < ALPHA:
        return f"{'better' if difference > 0 else 'worse'} (Holm p={p:.3g})"
    return f"not distinguishable at n={n} (Holm p={p:.2f})"


def team_tables(config: RunConfig, partitions: dict, answers: pd.DataFrame, items: pd.DataFrame,
                benchmark: str, seed: int, random_draws: int,
                self_consistency: Callable[[str, int], pd.DataFrame] | None = None) -> tuple[list[dict], list[dict]]:
    """Rows of the teams table and of the paired tests for one benchmark (see the module docstring).

    ``self_consistency(agent, k)`` gives that agent's k-sample majority answers (item_id, agent,
    answer); by default they are drawn from stored likelihood distributions, and the baseline is left
    out where the answers have none (generation) and no function is given.
    """
    from .evaluation.baselines import held_out_best_single, random_team_outcomes
    from .evaluation.likelihood import self_consistency_answers
    from .evaluation.runner import GROUP_DOMAINS
    from .evaluation.stats import mcnemar_exact, paired_permutation
    from .evaluation.voting import item_correctness
    from .validation import labels_of_kind

    gold = items.set_index("item_id")["answer"].astype(str)
    agents = sorted(config.agents.names)
    n = len(gold)
    topic = GROUP_DOMAINS.get(benchmark, "general")
    partition = partitions.get(topic) or partitions["all"]
    rows: list[dict] = []
    tests: list[dict] = []

    def add(kind: str, team: str, members: list[str], correct: pd.Series, extra: dict | None = None) -> None:
        low, high = _ci(correct.to_numpy(), seed)
        rows.append({"benchmark": benchmark, "kind": kind, "team": team, "members": ", ".join(members),
                     "size": len(members), "accuracy": float(correct.mean()), "ci_low": low, "ci_high": high,
                     "n_items": n, **(extra or {})})

    single, chosen = held_out_best_single(answers, gold, agents, seed=seed)
    add("best single (held out)", f"{chosen['first']} / {chosen['second']}", sorted(set(chosen.values())), single)
    by_role: dict[str, list[str]] = {}
    for name, role in labels_of_kind(config.agents.labels(), "role").items():
        by_role.setdefault(role, []).append(name)
    for role, members in sorted(by_role.items()):
        if len(members) >= 2:
            add("curated", f"role:{role}", sorted(members), item_correctness(answers, gold, sorted(members), seed=seed))
    if self_consistency is None and "mode" in answers and answers["mode"].isin(["likelihood", "cloze"]).all():
        def self_consistency(agent: str, k: int) -> pd.DataFrame:
            return self_consistency_answers(answers, agent, k=k, seed=seed)
    for i, members in enumerate(partition.teams):
        team = f"{topic} #{i}"
        correct = item_correctness(answers, gold, members, seed=seed)
        add("community", team, members, correct)
        add("oracle", f"{team} oracle", members, item_correctness(answers, gold, members, protocol="oracle", seed=seed))
        draws = random_team_outcomes(answers, gold, agents, len(members), n_draws=random_draws, seed=seed)
        accs = draws.mean(axis=0)
        rows.append({"benchmark": benchmark, "kind": "random", "team": f"random x{random_draws}",
                     "members": f"size {len(members)}", "size": len(members), "accuracy": float(accs.mean()),
                     "ci_low": float(np.quantile(accs, 0.025)), "ci_high": float(np.quantile(accs, 0.975)),
                     "n_items": n})
        comparisons = [("random teams (per-item mean)", paired_permutation(correct.to_numpy(dtype=float),
                                                                           draws.mean(axis=1).to_numpy(), seed=seed)),
                       ("best single (held out)", mcnemar_exact(correct.astype(int), single.reindex(correct.index).astype(int)))]
        if self_consistency is not None:
            k = len(members)
            first_ids, _ = _halves(gold.index, seed)
            # each held-out half is scored with the agent chosen on the other half, sampled k times
            sc_answers = pd.concat([
                sc[sc["item_id"].isin(first_ids) == (half == "first")]
                for half, sc in ((h, self_consistency(a, k)) for h, a in chosen.items())
            ]).assign(agent=f"self-consistency x{k}")
            sc_correct = item_correctness(sc_answers, gold, [f"self-consistency x{k}"], seed=seed)
            add("self-consistency", f"best single x{k}", [f"{a} x{k}" for a in sorted(set(chosen.values()))], sc_correct)
            comparisons.append((f"self-consistency x{k}", mcnemar_exact(correct.astype(int), sc_correct.astype(int))))
        for against, test in comparisons:
            tests.append({"benchmark": benchmark, "team": team, "members": ", ".join(members), "against": against,
                          "team_accuracy": test.mean_a, "baseline_accuracy": test.mean_b,
                          "difference": test.difference, "test": test.test, "p_value": test.p_value,
                          "n_items": n})
    return rows, tests


def generation_samples(config: RunConfig, partitions: dict, answers: pd.DataFrame, items: pd.DataFrame,
                       benchmark: str, backends: dict, store: Any, *, max_tokens: int, seed: int,
                       progress: bool = True) -> pd.DataFrame:
    """Sampled replies of the held-out best single agents, for their self-consistency (generation scoring).

    Sample j of an agent on an item is its answer under evaluation seed ``seed + j`` (sample 0 is the
    answer already collected), so samples are stored and resumed like any answer, and the first k
    samples of a larger k are those of a smaller one. Each chosen agent answers only the half of the
    items it is scored on, as many times as the largest community of the benchmark's topic.
    Returns (item_id, agent, sample, answer).
    """
    from .evaluation.answers import collect_answers
    from .evaluation.baselines import held_out_best_single
    from .evaluation.runner import GROUP_DOMAINS

    gold = items.set_index("item_id")["answer"].astype(str)
    _single, chosen = held_out_best_single(answers, gold, sorted(config.agents.names), seed=seed)
    partition = partitions.get(GROUP_DOMAINS.get(benchmark, "general")) or partitions["all"]
    k_max = max((len(team) for team in partition.teams), default=1)
    first_ids, second_ids = _halves(gold.index, seed)
    frames = []
    for half, name in chosen.items():
        ids = set(first_ids if half == "first" else second_ids)
        mine = items[items["item_id"].astype(str).isin(ids)]
        for j in range(k_max):
            got = collect_answers([config.agents.get(name)], mine, backends, store, seed=seed + j,
                                  max_tokens=max_tokens, scoring="generation", progress=progress)
            frames.append(got[["item_id", "agent", "answer"]].assign(sample=j))
    return pd.concat(frames, ignore_index=True)


def _halves(item_ids: Any, seed: int) -> tuple[list[str], list[str]]:
    from .evaluation.voting import split_items

    return split_items(list(map(str, item_ids)), 0.5, seed)


def run_study(config: RunConfig, progress: bool = True, wait: bool = False) -> StudyResult:
    """Run or resume ``config`` end to end and measure recovery and team quality (see the module docstring).

    Holds the store's writer lease throughout (``wait``: wait for another writer to finish) and
    writes a run record of kind ``study`` (``<output>/study_record.json`` and the store); the run it
    starts writes its own record, whose parent is the study's."""
    import contextlib

    from .backends import agent_identities
    from .embedding import Embedder
    from .evaluation.answers import collect_answers
    from .evaluation.baselines import vote_samples
    from .evaluation.benchmarks import load_benchmark
    from .pipeline import open_backends, preflight, run
    from .lease import hold_store
    from .records import RECORD_FILES, recording
    from .store import Store
    from .validation import label_kinds

    ev = config.evaluation
    unlabelled = [name for name, labels in config.agents.labels().items()
                  if not {"family", "role"} <= set(label_kinds({name: labels}))]
    if unlabelled:
        raise InputError(f"a study needs family: and role: labels on every agent; missing on {', '.join(unlabelled)} "
                         "(docs/config.md)")
    if not ev.benchmarks:
        raise InputError("a study needs at least one benchmark (evaluation.benchmarks)")
    timings: dict[str, float] = {}
    store_path = config.store or Path(config.output) / "store.sqlite"
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold_store(store_path, wait=wait))  # one writer per store, for the run and the answers
        store = stack.enter_context(Store(store_path))
        record = stack.enter_context(recording("study", config, store, Path(config.output) / RECORD_FILES["study"],
                                               timings=timings))
        t0 = time.perf_counter()
        result = run(config, progress=progress)
        timings["run_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        embedder = Embedder(config.scoring.embedder, device=config.scoring.device,
                            batch_size=config.scoring.batch_size, store=store)
        record.update(embedder=embedder.model_id, save=False)
        recovery = recovery_table(config, result.conversations, embedder)
        timings["recovery_s"] = time.perf_counter() - t0
        backends = open_backends(config)
        for backend in backends.values():
            stack.callback(backend.close)
        preflight(config, backends)
        record.update(agents=agent_identities(config.agents, backends))
        agent_rows, team_rows, test_rows = [], [], []
        for benchmark in ev.benchmarks:
            t0 = time.perf_counter()
            own = ev.for_benchmark(benchmark)
            items = load_benchmark(benchmark, n_items=own.n_items, seed=ev.seed)
            answers = collect_answers(list(config.agents), items, backends, store, seed=ev.seed,
                                      max_tokens=own.max_tokens, scoring=own.scoring, progress=progress)
            timings[f"answers_{benchmark}_s"] = time.perf_counter() - t0
            gold = items.set_index("item_id")["answer"].astype(str)
            for agent in config.agents:
                mine = answers[answers["agent"] == agent.name].set_index("item_id").reindex(gold.index)
                correct = (mine["answer"].astype(object) == gold).to_numpy()
                low, high = _ci(correct, ev.seed)
                agent_rows.append({"benchmark": benchmark, "agent": agent.name, "model": agent.model,
                                   "labels": ", ".join(agent.labels), "mode": ", ".join(sorted(set(mine["mode"]))),
                                   "accuracy": float(correct.mean()), "ci_low": low, "ci_high": high,
                                   "answered": int(mine["answer"].notna().sum()), "n_items": len(gold)})
            self_consistency = None
            if (answers["mode"] == "generation").any():
                t0 = time.perf_counter()
                samples = generation_samples(config, result.partitions, answers, items, benchmark, backends, store,
                                             max_tokens=own.max_tokens, seed=ev.seed, progress=progress)
                timings[f"self_consistency_{benchmark}_s"] = time.perf_counter() - t0

                def self_consistency(agent: str, k: int, samples: pd.DataFrame = samples) -> pd.DataFrame:
                    return vote_samples(samples[samples["agent"] == agent], k, seed=ev.seed, name=f"{agent} x{k}")
            rows, tests = team_tables(config, result.partitions, answers, items, benchmark, ev.seed, ev.random_draws,
                                      self_consistency=self_consistency)
            team_rows += rows
            test_rows += tests
        settings = {"config": config.source, "agents": len(config.agents), "topics": list(config.topics),
                    "benchmarks": {b: dataclasses.asdict(ev.for_benchmark(b)) for b in ev.benchmarks}, "seed": ev.seed,
                    "random_draws": ev.random_draws, "metric": config.scoring.metric,
                    "conversations": len(result.conversations),
                    "utterances": sum(len(c.utterances) for c in result.conversations),
                    "embedder": embedder.model_id, "record": record.id, "run_record": result.record_id,
                    "store": str(store_path), "revision": record.data["revision"],
                    "revision_dirty": record.data["revision_dirty"]}
        study = StudyResult(recovery, pd.DataFrame(agent_rows), pd.DataFrame(team_rows), holm(pd.DataFrame(test_rows)),
                            settings, dict(timings), record.id)
    return study


def holm(tests: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values per benchmark (``p_holm``) and verdicts on them: many tests, one family each.

    >>> holm(pd.DataFrame({"benchmark": "b", "p_value": [0.01, 0.04], "difference": [0.1, 0.1], "n_items": 100}))["p_holm"].tolist()
    [0.02, 0.04]
    """
    if tests.empty:
        return tests
    out = []
    for _, group in tests.groupby("benchmark", sort=False):
        order = group["p_value"].sort_values(kind="stable").index
        m = len(order)
        adjusted = np.minimum(1.0, np.maximum.accumulate([(m - i) * group.loc[k, "p_value"] for i, k in enumerate(order)]))
        out.append(group.assign(p_holm=pd.Series(adjusted, index=order)))
    frame = pd.concat(out).sort_index()
    frame["verdict"] = [_verdict_p(p, d, n) for p, d, n in zip(frame["p_holm"], frame["difference"], frame["n_items"])]
    return frame


def _revision_of(settings: dict[str, Any]) -> str:
    """The commit the study ran at: its run record's (the package's checkout), else the working folder's."""
    revision = settings.get("revision")
    if not revision:
        return _git_revision()
    return revision[:7] + (" (with uncommitted changes)" if settings.get("revision_dirty") else "")


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _md(frame: pd.DataFrame, floats: int = 3) -> str:
    from .evaluation.report import markdown_table

    return markdown_table(frame.round(floats))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_study_report(study: StudyResult, path: str | Path, command: str) -> Path:
    """Write the study as markdown (tables, one figure beside it), from the result alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = study.settings
    figure = _accuracy_figure(study, path.with_name(path.stem + "_accuracy.png"))
    rec = study.recovery
    main = rec[rec["metric"] == s["metric"]].pivot_table(index="topic", columns="label", values=["ari", "ari_p"])
    main.columns = [f"{v} {k}" for v, k in main.columns]
    agents = study.agents.assign(
        accuracy=lambda d: d["accuracy"].map(_pct),
        **{"95% CI": lambda d: d["ci_low"].map(_pct) + " - " + d["ci_high"].map(_pct)})[
        ["benchmark", "agent", "model", "mode", "accuracy", "95% CI", "answered", "n_items"]]
    teams = study.teams.assign(
        accuracy=lambda d: d["accuracy"].map(_pct),
        **{"95% CI": lambda d: d["ci_low"].map(_pct) + " - " + d["ci_high"].map(_pct)})[
        ["benchmark", "kind", "team", "members", "accuracy", "95% CI", "n_items"]]
    tests = study.tests[["benchmark", "team", "against", "team_accuracy", "baseline_accuracy", "test", "p_value",
                         "p_holm", "verdict"]] if not study.tests.empty else study.tests
    sig = study.tests[study.tests["p_holm"] < ALPHA] if not study.tests.empty else study.tests
    lines = [
        "# Study: do community teams help? (generated by `teamgraph study`; do not edit by hand)",
        "",
        f"- Command: `{command}`",
        f"- Commit: {_revision_of(s)}; generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        *([f"- Run record: `{s['record']}` (this study; its teams come from run record `{s.get('run_record')}`; "
           f"`teamgraph runs {s.get('store', 'STORE')}` lists them); embedder `{s.get('embedder')}`"]
          if s.get("record") else []),
        f"- Machine: {platform.platform()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
        f"- Roster: {s['agents']} agents ({s['config']}), topics {', '.join(s['topics'])}; "
        f"{s['conversations']} conversations, {s['utterances']} utterances; metric for teams: `{s['metric']}`",
        "- Benchmarks (seed " + str(s["seed"]) + "): " + "; ".join(
            f"{b}: n = {o['n_items']}, {o['scoring']}" + (f", {o['max_tokens']} tokens" if o["scoring"] == "generation" else "")
            for b, o in s["benchmarks"].items())
        + f"; {s['random_draws']} random teams per size; bootstrap {N_BOOT} resamples",
        "- Time (this invocation; stored work is not redone): "
        + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in study.timings.items()),
        "",
        "## 1. What does the graph see? Label recovery by topic",
        "",
        f"ARI of the `{s['metric']}` communities against each label kind, with label-permutation p-values "
        "(1000 shuffles). 1 = the communities are exactly that labelling; about 0 = unrelated.",
        "",
        _md(main.reset_index()),
        "",
        "Every metric, topic and label kind (`structure_p`: permutation test of the community structure itself):",
        "",
        _md(rec.drop(columns=["communities"])),
        "",
        "## 2. Per-agent accuracy (95% bootstrap intervals over items)",
        "",
        _md(agents),
        "",
        "## 3. Community teams against the baselines",
        "",
        f"![accuracy with 95% intervals]({figure.name})",
        "",
        _md(teams),
        "",
        "Intervals: 95% bootstrap over items; for `random` rows, the 2.5-97.5% range of the random teams' "
        "accuracies. The held-out best single agent is chosen on one half of the items and scored on the other "
        "(both ways). Self-consistency takes the majority of k answers of that agent (k = team size): for "
        "likelihood scoring, k draws from its stored option distribution (for cloze: the options' whole-text "
        "probabilities, while its single answer uses the per-character score); for generation, k replies "
        "sampled with evaluation seeds seed, seed+1, ..., seed+k-1 (the first is its scored answer).",
        "",
        "Paired tests of each community team (same items): exact McNemar against the held-out best single "
        "agent and its self-consistency; sign-flip permutation against the per-item mean of random teams of "
        f"the same size. `p_holm`: Holm-adjusted within each benchmark; verdicts use it (alpha {ALPHA}).",
        "",
        _md(tests),
        "",
        "## Verdict",
        "",
    ]
    if sig.empty:
        lines.append(f"No community team differs significantly (Holm-adjusted p < {ALPHA}) from any baseline: on these items and "
                     "models the teams are not distinguishable from random teams, the held-out best single agent "
                     "or its self-consistency.")
    else:
        for r in sig.itertuples():
            lines.append(f"- {r.benchmark}: community team `{r.members}` is {r.verdict.split(' (')[0]} than "
                         f"{r.against}: {_pct(r.team_accuracy)}% vs {_pct(r.baseline_accuracy)}% (p={r.p_value:.3g}).")
        lines.append(f"- Every other comparison is not distinguishable at its n ({len(study.tests) - len(sig)} of "
                     f"{len(study.tests)}).")
    best = main.reset_index()
    lines += ["", "Label recovery: " + "; ".join(
        f"{row['topic']}: family ARI {row.get('ari family', float('nan')):.2f} (p={row.get('ari_p family', float('nan')):.3g}), "
        f"role ARI {row.get('ari role', float('nan')):.2f} (p={row.get('ari_p role', float('nan')):.3g})"
        for row in best.to_dict("records")) + "."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _accuracy_figure(study: StudyResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    teams = study.teams
    benchmarks = list(dict.fromkeys(teams["benchmark"]))
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(6 * len(benchmarks), 0.35 * teams.groupby("benchmark").size().max() + 1.5),
                             squeeze=False, layout="constrained")
    for ax, bench in zip(axes[0], benchmarks):
        rows = teams[teams["benchmark"] == bench].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        colors = {"community": "tab:blue", "random": "tab:gray", "curated": "tab:green", "oracle": "tab:purple",
                  "best single (held out)": "tab:orange", "self-consistency": "tab:red"}
        low = (rows["accuracy"] - rows["ci_low"]).clip(lower=0)  # a bootstrap percentile can sit a hair past the mean
        high = (rows["ci_high"] - rows["accuracy"]).clip(lower=0)
        ax.errorbar(rows["accuracy"], y, xerr=[low, high],
                    fmt="none", ecolor="0.5", capsize=3)
        ax.scatter(rows["accuracy"], y, c=[colors.get(k, "black") for k in rows["kind"]], zorder=3)
        ax.set_yticks(y, [f"{k}: {t}" for k, t in zip(rows["kind"], rows["team"])], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy (95% interval)")
        ax.set_title(f"{bench} (n={int(rows['n_items'].iloc[0])})")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
