"""Evaluate teams on benchmark items, side by side with random, curated, single-agent and oracle baselines.

Every agent answers every sampled item once (cached in the store); a team's answer is computed
offline from its members' cached answers, so any team costs no model call. Only debate makes
calls per team (cached too). Result tables are pandas DataFrames; ``write_report`` turns them into
CSV, Markdown and a bar chart.

A sketch (it calls the agents' models)::

    result = evaluate(config, run_result.partitions, n_items=50)
    result.summary()
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from teamgraph.backends.base import Backend
from teamgraph.communities import Partition
from teamgraph.config import RunConfig
from teamgraph.errors import InputError
from teamgraph.evaluation.answers import backend_info, collect_answers
from teamgraph.evaluation.benchmarks import BENCHMARKS, load_benchmark
from teamgraph.evaluation.debate import debate_scores, run_debates
from teamgraph.evaluation.report import write_report
from teamgraph.evaluation.result import EvaluationResult
from teamgraph.evaluation.voting import (
    _scores,
    _table,
    curated_teams,
    fit_vote_weights,
    single_agent_scores,
    split_items,
)
from teamgraph.lease import hold_store
from teamgraph.records import RECORD_FILES, recording
from teamgraph.store import Store

__all__ = ["EVALUATION_PROTOCOLS", "DEFAULT_PROTOCOLS", "SCORE_COLUMNS", "KIND_ORDER", "GROUP_DOMAINS",
           "TeamsInput", "TeamSpec", "topics_for_group", "load_teams", "community_teams", "WEIGHT_FLOOR",
           "cross_fitted_weights", "score_group", "check_protocols", "check_benchmarks", "sample_groups",
           "evaluate"]

#: Team protocols ``evaluate`` knows; ``debate`` makes model calls per team, so it is off by default.
EVALUATION_PROTOCOLS = ("majority", "weighted", "oracle", "debate")
DEFAULT_PROTOCOLS = ("majority", "weighted", "oracle")
SCORE_COLUMNS = ["group", "kind", "team", "members", "size", "source", "protocol", "accuracy", "accuracy_std",
                 "strict_accuracy", "n_items", "n_ties", "n_draws"]
KIND_ORDER = ("community", "random", "curated", "single", "roster")

#: Benchmark group -> the conversation topic whose graph should propose its teams.
GROUP_DOMAINS = {
    "mmlu_math": "mathematics", "gsm8k": "mathematics", "math500": "mathematics",
    "mmlu_medical": "medicine", "medqa": "medicine", "medmcqa": "medicine", "mmlu": "general",
    "arc_easy": "general", "arc_challenge": "general",
}
_DOMAIN_STEMS = {"mathematics": ("math",), "medicine": ("medic", "health", "clinic"), "general": ("general",)}

TeamsInput = Mapping[str, "Partition | Sequence[Sequence[str]]"] | Sequence[Sequence[str]] | None


@dataclass(frozen=True)
class TeamSpec:
    """A team to score: ``kind`` is community, curated or roster; ``source`` says where it came from."""

    kind: str
    members: tuple[str, ...]
    source: str

    @property
    def name(self) -> str:
        return "+".join(self.members)


# -- teams --------------------------------------------------------------------------------------

def topics_for_group(group: str, topics: Sequence[str]) -> list[str]:
    """Topics whose teams are evaluated on ``group``: the matching domain's topics, then ``all``.

    When neither exists, every topic is used.
    """
    stems = _DOMAIN_STEMS.get(GROUP_DOMAINS.get(group, ""), ())
    chosen = [t for t in topics if t != "all" and any(s in t.lower() for s in stems)]
    if "all" in topics:
        chosen.append("all")
    return chosen or list(topics)


def load_teams(path: str | Path) -> dict[str, list[list[str]]]:
    """Teams per topic from a teams JSON file or a folder of ``teams_*.json`` (as ``teamgraph run`` writes)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    files = sorted(path.glob("teams_*.json")) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise InputError(f"{path}: no teams_*.json files (run `teamgraph run CONFIG` first)")
    out: dict[str, list[list[str]]] = {}
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{f}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{f}: not valid JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("teams"), list):
            raise InputError(f"{f}: not a teams JSON (no 'teams' list)")
        topic = str(doc.get("topic") or f.stem.removeprefix("teams_"))
        out[topic] = [list(map(str, t["members"])) for t in doc["teams"]]
    return out


def _topic_teams(teams: TeamsInput) -> dict[str, list[list[str]]] | None:
    if teams is None:
        return None
    if isinstance(teams, Mapping):
        return {str(topic): [list(t) for t in (v.teams if isinstance(v, Partition) else v)]
                for topic, v in teams.items()}
    return {"given": [list(t) for t in teams]}


def community_teams(group: str, teams: TeamsInput, roster: Sequence[str]) -> list[TeamSpec]:
    """The teams to evaluate on ``group`` (deduplicated; ``source`` lists the topics proposing each)."""
    by_topic = _topic_teams(teams)
    if not by_topic:
        return []
    topics = list(by_topic) if "given" in by_topic else topics_for_group(group, list(by_topic))
    found: dict[tuple[str, ...], list[str]] = {}
    for topic in topics:
        for members in by_topic[topic]:
            unknown = [m for m in members if m not in roster]
            if unknown:
                raise InputError(f"team {'+'.join(members)} (topic {topic}) names agent(s) not in the roster: "
                                 f"{', '.join(unknown)}")
            if len(members) >= 2:
                found.setdefault(tuple(sorted(members)), []).append(topic)
    return [TeamSpec("community", members, ", ".join(src)) for members, src in found.items()]


# -- scoring ------------------------------------------------------------------------------------

def _row(group: str, kind: str, team: str, members: Sequence[str], source: str, protocol: str,
         scores: Mapping[str, Any], std: float = float("nan"), n_draws: int = 1) -> dict[str, Any]:
    return {"group": group, "kind": kind, "team": team, "members": "+".join(members), "size": len(members),
            "source": source, "protocol": protocol, "accuracy": scores["accuracy"], "accuracy_std": std,
            "strict_accuracy": scores["strict_accuracy"], "n_items": scores["n_items"],
            "n_ties": scores.get("n_ties", 0), "n_draws": n_draws}


#: Weight of an agent whose fitted weight is 0 (no better than chance on the fitting half): such
#: agents only break ties among themselves, so a team of chance-level agents falls back to a plain
#: majority vote instead of a random pick among every answer given.
WEIGHT_FLOOR = 1e-6


def cross_fitted_weights(
    answers: pd.DataFrame, gold: pd.Series, agents: Sequence[str], seed: int = 0, n_choices: int | None = None,
) -> list[tuple[dict[str, float], list[str]]]:
    """Two folds of (vote weights fitted on one seeded half of the items, the other half's item ids).

    Every item is then scored with weights that never saw it, and the weighted vote covers all
    items like the other protocols.
    """
    halves = split_items(gold.index, 0.5, seed)
    folds = []
    for k in (0, 1):
        fit, held = halves[k], halves[1 - k]
        if held:
            w = fit_vote_weights(answers, gold[fit], list(agents), n_choices=n_choices)
            folds.append(({a: max(v, WEIGHT_FLOOR) for a, v in w.items()}, held))
    return folds


def _combine(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores of disjoint item sets pooled into one (item-weighted means, summed counts)."""
    parts = [p for p in parts if p["n_items"]]
    n = sum(p["n_items"] for p in parts)
    if not n:
        return {"accuracy": float("nan"), "strict_accuracy": float("nan"), "n_items": 0, "n_ties": 0}
    return {"accuracy": sum(p["accuracy"] * p["n_items"] for p in parts) / n,
            "strict_accuracy": sum(p["strict_accuracy"] * p["n_items"] for p in parts) / n,
            "n_items": n, "n_ties": sum(p["n_ties"] for p in parts)}


class _GroupScorer:
    """Scores any team of one group from the answer table, built once (weighted: pooled over folds)."""

    def __init__(self, answers: pd.DataFrame, gold: pd.Series, folds: Sequence[tuple[dict[str, float], list[str]]],
                 seed: int):
        self.full = _table(answers, gold)
        self.folds = [(_table(answers, gold[held]), w) for w, held in folds]
        self.seed = seed

    def __call__(self, members: Sequence[str], protocol: str) -> dict[str, Any]:
        if protocol == "weighted":
            return _combine([_scores(t, list(members), "weighted", self.seed, w) for t, w in self.folds])
        return _scores(self.full, list(members), protocol, self.seed, None)


def _random_rows(group: str, score: _GroupScorer, agents: Sequence[str], size: int, n_draws: int, seed: int,
                 protocol: str) -> dict[str, Any]:
    """Mean and std of ``n_draws`` random teams of ``size`` (the draws of ``voting.random_team_scores``)."""
    pool = sorted(dict.fromkeys(agents))
    rng = np.random.default_rng(seed)
    draws = [score(list(rng.choice(pool, size=size, replace=False)), protocol) for _ in range(n_draws)]
    acc = np.array([d["accuracy"] for d in draws])
    mean = {"accuracy": float(acc.mean()), "strict_accuracy": float(np.mean([d["strict_accuracy"] for d in draws])),
            "n_items": draws[0]["n_items"], "n_ties": float(np.mean([d["n_ties"] for d in draws]))}
    row = _row(group, "random", f"random size {size}", [], f"{n_draws} draws", protocol, mean,
               std=float(acc.std()), n_draws=n_draws)
    row["size"] = size
    return row


def score_group(
    group: str,
    answers: pd.DataFrame,
    gold: pd.Series,
    agents: Sequence[str],
    teams: Sequence[TeamSpec],
    *,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    seed: int = 0,
    random_draws: int = 200,
    n_choices: int | None = None,
    debates: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Score every team and baseline of one benchmark group offline from the cached answers.

    The weighted vote is cross-fitted: weights learned on one seeded half of the items score the
    other half and vice versa, pooled over all items. The best single agent is picked on the same
    items it is scored on (an optimistic baseline). Returns (rows, the two folds' weights).
    """
    folds = cross_fitted_weights(answers, gold, agents, seed, n_choices)
    score = _GroupScorer(answers, gold, folds, seed)
    rows = []
    kinds = {"community": 0, "curated": 1, "roster": 2}
    for spec in sorted(teams, key=lambda s: kinds[s.kind]):
        for protocol in protocols:
            if protocol == "debate":
                if spec.kind == "roster" or debates is None:
                    continue
                scores = debate_scores(debates, gold, spec.name, seed)
            else:
                scores = score(spec.members, protocol)
            rows.append(_row(group, spec.kind, spec.name if spec.kind != "roster" else "all agents", spec.members,
                             spec.source, protocol, scores))
    sizes = sorted({len(s.members) for s in teams if s.kind in ("community", "curated")})
    for size in sizes:
        for protocol in protocols:
            if protocol != "debate":  # a debate is model calls per team: not drawn for random teams
                rows.append(_random_rows(group, score, agents, size, random_draws, seed, protocol))
    single = single_agent_scores(answers, gold)
    best = single.iloc[0]
    rows.append(_row(group, "single", str(best["agent"]), [str(best["agent"])], f"best of {len(single)}", "single",
                     {"accuracy": float(best["accuracy"]), "strict_accuracy": float(best["accuracy"]),
                      "n_items": len(gold)}))
    frame = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    order = frame["kind"].map({k: i for i, k in enumerate(KIND_ORDER)})
    frame = frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)
    return frame, [{"scores_items": len(held), "weights": w} for w, held in folds]


# -- the whole evaluation -----------------------------------------------------------------------

def _check_names(what: str, names: Sequence[str], valid: Sequence[str]) -> tuple[str, ...]:
    """``names`` without duplicates, or one line naming the unknown ones and the valid choices."""
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise InputError(f"unknown {what}(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if not names:
        raise InputError(f"name at least one {what}")
    return tuple(dict.fromkeys(names))


def check_protocols(protocols: Sequence[str]) -> tuple[str, ...]:
    """``protocols`` without repeats; InputError naming unknown ones and :data:`EVALUATION_PROTOCOLS`."""
    return _check_names("protocol", protocols, EVALUATION_PROTOCOLS)


def check_benchmarks(benchmarks: Sequence[str]) -> tuple[str, ...]:
    """``benchmarks`` without repeats; InputError naming unknown ones and the known benchmarks."""
    return _check_names("benchmark", benchmarks, BENCHMARKS)


def sample_groups(benchmarks: Sequence[str], n_items: int | None | Mapping[str, int | None], seed: int,
                  source: str = "packaged") -> pd.DataFrame:
    """Sampled items of every benchmark group, with a ``group`` column (``n_items``: one or per group)."""
    frames = []
    for name in benchmarks:
        n = n_items.get(name) if isinstance(n_items, Mapping) else n_items
        items = load_benchmark(name, n_items=n, seed=seed, source=source)
        frames.append(items.assign(group=name))
    return pd.concat(frames, ignore_index=True)


def evaluate(
    config: RunConfig,
    teams: TeamsInput = None,
    *,
    benchmarks: Sequence[str] | None = None,
    n_items: int | None = None,
    store: Store | str | Path | None = None,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    debate_rounds: int = 1,
    out_dir: str | Path | None = None,
    backends: Mapping[str, Backend] | None = None,
    seed: int | None = None,
    random_draws: int | None = None,
    source: str = "packaged",
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate community teams and baselines of ``config``'s roster on its benchmark groups.

    ``teams`` is ``{topic: Partition or list of member lists}`` (e.g. ``run(config).partitions``;
    each benchmark group uses the teams of its matching topic and of ``all``) or one list of teams
    used for every group. Settings default to ``config.evaluation``. ``backends`` (name -> backend)
    replaces the config's backends, e.g. to reuse open ones. With ``out_dir`` the report is written
    there (``write_report``).
    """
    ev = config.evaluation
    benchmarks = check_benchmarks(list(benchmarks) if benchmarks is not None else list(ev.benchmarks))
    protocols = check_protocols(list(protocols))
    if n_items is not None and n_items < 1:
        raise InputError(f"n_items must be >= 1, got {n_items}")
    if debate_rounds < 1 and "debate" in protocols:
        raise InputError(f"debate needs at least 1 round, got {debate_rounds}")
    seed = ev.seed if seed is None else seed
    random_draws = ev.random_draws if random_draws is None else random_draws
    if random_draws < 1:
        raise InputError(f"random_draws must be >= 1, got {random_draws}")
    roster = config.agents.names
    sizes = {g: ev.for_benchmark(g).n_items if n_items is None else n_items for g in benchmarks}
    items = sample_groups(benchmarks, sizes, seed, source)
    specs = {g: community_teams(g, teams, roster) for g in benchmarks}  # validate teams before any model call
    curated = [TeamSpec("curated", tuple(m), label) for label, m in curated_teams(config.agents.labels()).items()]
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        if isinstance(store, Store):
            db = store  # the caller's store: the caller holds its lease (hold_store) if it needs one
        else:
            path = store or config.store or Path(config.output) / "store.sqlite"
            stack.enter_context(hold_store(path))  # one writer per store, before any backend opens
            db = stack.enter_context(Store(path))
        # the run record (teamgraph.records), finished once the report is written; backends close before it
        record = stack.enter_context(recording("evaluate", config, db, None if out_dir is None else
                                               Path(out_dir) / RECORD_FILES["evaluate"], timings=timings))
        if backends is None:
            from teamgraph.pipeline import open_backends, preflight

            backends = open_backends(config)
            for backend in backends.values():
                stack.callback(backend.close)
            preflight(config, backends)
        identity = backend_info(config.agents, backends)
        record.update(agents=identity)
        t0 = time.perf_counter()
        per_group = {}
        for group in benchmarks:  # each group with its own settings (evaluation.per_benchmark)
            g_items = items[items["group"] == group].drop(columns="group")
            own = ev.for_benchmark(group)
            per_group[group] = collect_answers(list(config.agents), g_items, backends, db, seed=seed,
                                               max_tokens=own.max_tokens, identity=identity, progress=progress,
                                               scoring=own.scoring)
        timings["answers_s"] = time.perf_counter() - t0
        debates: dict[str, pd.DataFrame] = {}
        if "debate" in protocols:
            t0 = time.perf_counter()
            for group in benchmarks:
                group_teams = {s.name: [config.agents.get(m) for m in s.members]
                               for s in specs[group] + curated}
                if group_teams:
                    g_items = items[items["group"] == group].drop(columns="group")
                    debates[group] = run_debates(group_teams, g_items, backends, db, rounds=debate_rounds, seed=seed,
                                                 max_tokens=ev.for_benchmark(group).max_tokens, identity=identity,
                                                 progress=progress).assign(group=group)
            timings["debate_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        frames, singles, weights, answer_frames = [], [], {}, []
        for group in benchmarks:
            g_items = items[items["group"] == group]
            gold = g_items.set_index("item_id")["answer"].astype(str)
            g_answers = per_group[group].assign(group=group)
            answer_frames.append(g_answers)
            mc = g_items["kind"].eq("multiple_choice").all()
            n_choices = int(g_items["choices"].map(len).max()) if mc else None
            group_specs = specs[group] + curated + [TeamSpec("roster", tuple(sorted(roster)), "roster")]
            frame, weights[group] = score_group(group, g_answers, gold, roster, group_specs, protocols=protocols,
                                                seed=seed, random_draws=random_draws, n_choices=n_choices,
                                                debates=debates.get(group))
            frames.append(frame)
            singles.append(single_agent_scores(g_answers, gold).assign(group=group))
        timings["scoring_s"] = time.perf_counter() - t0
        result = EvaluationResult(
            scores=pd.concat(frames, ignore_index=True),
            answers=pd.concat(answer_frames, ignore_index=True),
            items=items,
            single=pd.concat(singles, ignore_index=True)[["group", "agent", "accuracy", "n_abstain"]],
            debates=pd.concat(debates.values(), ignore_index=True) if debates else pd.DataFrame(),
            weights=weights,
            settings={"benchmarks": list(benchmarks), "n_items": sizes, "seed": seed, "protocols": list(protocols),
                      "debate_rounds": debate_rounds if "debate" in protocols else 0, "random_draws": random_draws,
                      "max_tokens": {g: ev.for_benchmark(g).max_tokens for g in benchmarks},
                      "scoring": {g: ev.scoring_for(g) for g in benchmarks}, "run": config.name,
                      "run_record": record.id},
            timings=timings,
        )
        if out_dir is not None:
            result.files = write_report(result, out_dir)
        made = db.counts()["answers"] - (record.data["store_rows"]["before"] or {}).get("answers", 0)
        record.reused(answers=len(result.answers) + len(result.debates) - made)  # answer rows used, less those made
    return result
