"""Team answers from members' cached answers: majority / weighted vote, oracle, baselines.

An answer table is a DataFrame with columns ``item_id``, ``agent``, ``answer`` (a normalised string,
or None when the agent abstained); ``gold`` maps item_id -> answer. Scores are over gold's items;
an agent with no row for an item abstains on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from teamgraph.errors import InputError

__all__ = ["PROTOCOLS", "item_rng", "majority_vote", "weighted_vote", "team_scores", "item_correctness",
           "team_answers", "fit_vote_weights", "split_items", "random_team_scores", "single_agent_scores",
           "curated_teams"]

PROTOCOLS = ("majority", "weighted", "oracle")
_TOL = 1e-9


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """Generator seeded by (seed, item_id): the same tie is broken the same way in any order."""
    digest = hashlib.blake2b(str(item_id).encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest, "little")])


def _vote(
    answers: Sequence[str | None], weights: Sequence[float] | None, rng: np.random.Generator
) -> tuple[str | None, bool]:
    scores: dict[str, float] = {}
    for i, answer in enumerate(answers):
        if answer is None or (isinstance(answer, float) and np.isnan(answer)):
            continue
        scores[answer] = scores.get(answer, 0.0) + (1.0 if weights is None else float(weights[i]))
    if not scores:
        return None, False
    best = max(scores.values())
    tied = sorted(a for a, s in scores.items() if s >= best - _TOL)
    if len(tied) == 1:
        return tied[0], False
    return tied[int(rng.random() * len(tied))], True


def majority_vote(answers: Sequence[str | None], rng: np.random.Generator) -> tuple[str | None, bool]:
    """Most common non-abstaining answer and whether it was a tie (broken by ``rng`` among tied answers)."""
    return _vote(answers, None, rng)


def weighted_vote(
    answers: Sequence[str | None], weights: Sequence[float], rng: np.random.Generator
) -> tuple[str | None, bool]:
    """Answer with the largest total weight of its supporters; ties broken by ``rng``."""
    if len(weights) != len(answers):
        raise InputError(f"got {len(weights)} weights for {len(answers)} answers")
    return _vote(answers, weights, rng)


@dataclass(frozen=True)
class _Table:
    """Answers as integer codes: ``codes[i, j]`` is agent j's answer to item i (-1 = abstain)."""

    item_ids: np.ndarray
    agents: list[str]
    codes: np.ndarray
    vocab: np.ndarray
    gold: np.ndarray  # code of the gold answer per item (-2 when no agent gave it)
    rank: np.ndarray  # rank of each code's answer in sorted string order
    _draws: dict[int, np.ndarray] = field(default_factory=dict, compare=False)

    def columns(self, team: Sequence[str]) -> np.ndarray:
        index = {a: j for j, a in enumerate(self.agents)}
        unknown = [a for a in team if a not in index]
        if unknown:
            raise InputError(
                f"unknown agent(s) {', '.join(map(str, unknown))}; agents with answers: "
                f"{', '.join(self.agents)}"
            )
        if len(set(team)) != len(team):
            raise InputError(f"team lists an agent twice: {list(team)}")
        return np.array([index[a] for a in team], dtype=int)

    def tie_draws(self, seed: int) -> np.ndarray:
        """The uniform draw ``item_rng(seed, item).random()`` of every item (cached per seed)."""
        if seed not in self._draws:
            self._draws[seed] = np.array([item_rng(seed, i).random() for i in self.item_ids])
        return self._draws[seed]


def _gold_series(gold: Mapping[Hashable, Any] | pd.Series) -> pd.Series:
    series = gold.copy() if isinstance(gold, pd.Series) else pd.Series(dict(gold), dtype=object)
    if series.isna().any():
        raise InputError(f"gold answer missing for item {series[series.isna()].index[0]!r}")
    series.index = series.index.map(str)
    if series.index.duplicated().any():
        raise InputError("gold lists an item twice")
    return series.astype(str).sort_index()


def _table(answers_df: pd.DataFrame, gold: Mapping[Hashable, Any] | pd.Series) -> _Table:
    missing = [c for c in ("item_id", "agent", "answer") if c not in answers_df.columns]
    if missing:
        raise InputError(f"answer table lacks column(s) {', '.join(missing)}")
    g = _gold_series(gold)
    df = answers_df[["item_id", "agent", "answer"]].copy()
    df["item_id"] = df["item_id"].astype(str)
    df["agent"] = df["agent"].astype(str)
    if df.duplicated(["item_id", "agent"]).any():
        row = df[df.duplicated(["item_id", "agent"])].iloc[0]
        raise InputError(f"agent {row['agent']!r} answers item {row['item_id']!r} twice")
    agents = sorted(df["agent"].unique())
    df = df[df["item_id"].isin(g.index)]
    answer = np.array([None if pd.isna(a) else str(a) for a in df["answer"]], dtype=object)
    codes_flat, vocab = pd.factorize(answer, use_na_sentinel=True)
    rows = g.index.get_indexer(df["item_id"])
    cols = pd.Index(agents).get_indexer(df["agent"])
    codes = np.full((len(g), len(agents)), -1, dtype=np.int64)
    codes[rows, cols] = codes_flat
    gold_codes = pd.Index(vocab).get_indexer(g.to_numpy())
    gold_codes[gold_codes < 0] = -2
    vocab = np.asarray(vocab, dtype=object)
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[sorted(range(len(vocab)), key=vocab.__getitem__)] = np.arange(len(vocab))
    return _Table(g.index.to_numpy(dtype=str), agents, codes, vocab, gold_codes, rank)


def _scores(
    t: _Table, team: Sequence[str], protocol: str, seed: int, weights: Mapping[str, float] | None
) -> dict[str, Any]:
    return _result(*_correct(t, team, protocol, seed, weights))


def _correct(
    t: _Table, team: Sequence[str], protocol: str, seed: int, weights: Mapping[str, float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per item: (correct, strictly correct, tied, every member abstained)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if len(team) == 0:
        raise InputError("a team needs at least one agent")
    sub = t.codes[:, t.columns(team)]
    answered = sub >= 0
    hit = sub == t.gold[:, None]
    n = len(t.item_ids)
    all_abstain = ~answered.any(axis=1)
    if protocol == "oracle":
        correct = hit.any(axis=1)
        return correct, correct, np.zeros(n, bool), all_abstain
    if protocol == "weighted":
        if weights is None:
            raise InputError("protocol='weighted' needs weights (see fit_vote_weights)")
        missing = [a for a in team if a not in weights]
        if missing:
            raise InputError(f"no vote weight for agent(s) {', '.join(missing)}")
        w = np.array([float(weights[a]) for a in team])
    else:
        w = np.ones(len(team))
    same = (sub[:, :, None] == sub[:, None, :]) & answered[:, None, :]
    support = np.where(answered, (same * w[None, None, :]).sum(axis=2), -np.inf)
    best = support.max(axis=1)
    at_best = answered & (support >= best[:, None] - _TOL)
    # several distinct answers reach the best support -> a tie to break
    first = np.where(at_best, sub, -1).max(axis=1)
    tied = (at_best & (sub != first[:, None])).any(axis=1)
    gold_best = ~all_abstain & (np.where(hit, support, -np.inf).max(axis=1) >= best - _TOL)
    strict = ~tied & gold_best
    if not tied.any():
        return strict, strict, tied, all_abstain
    # tie-break as _vote does: the floor(u * n_tied)-th of the tied answers in sorted order
    share = np.where(at_best, 1.0 / np.maximum((same & at_best[:, None, :]).sum(axis=2), 1), 0.0)
    n_tied = np.rint(share.sum(axis=1))
    sub_rank = np.where(answered, t.rank[np.maximum(sub, 0)] if len(t.rank) else -1, -1)
    gold_rank = np.where(t.gold >= 0, t.rank[np.maximum(t.gold, 0)] if len(t.rank) else -1, -1)
    gold_pos = np.rint((share * (sub_rank < gold_rank[:, None])).sum(axis=1))
    pick = np.floor(t.tie_draws(seed) * n_tied)
    correct = strict | (tied & gold_best & (pick == gold_pos))
    return correct, strict, tied, all_abstain


def _result(
    correct: np.ndarray, strict: np.ndarray, tied: np.ndarray, all_abstain: np.ndarray
) -> dict[str, Any]:
    n = len(correct)
    return {
        "accuracy": float(correct.mean()) if n else float("nan"),
        "strict_accuracy": float(strict.mean()) if n else float("nan"),
        "n_items": int(n),
        "n_ties": int(tied.sum()),
        "n_abstain_all": int(all_abstain.sum()),
    }


def team_scores(
    answers_df: pd.DataFrame,
    gold: Mapping[Hashable, Any] | pd.Series,
    team: Sequence[str],
    protocol: str = "majority",
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Accuracy of a team's vote over gold's items (ties broken by a seeded draw; strict: ties wrong)."""
    return _scores(_table(answers_df, gold), list(team), protocol, seed, weights)


def item_correctness(
    answers_df: pd.DataFrame,
    gold: Mapping[Hashable, Any] | pd.Series,
    team: Sequence[str],
    protocol: str = "majority",
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Whether the team's vote is right on each of gold's items (a boolean Series indexed by sorted item_id).

    The per-item form of :func:`team_scores` (same ties, same seed): what paired tests and bootstrap
    intervals need.
    """
    t = _table(answers_df, gold)
    return pd.Series(_correct(t, list(team), protocol, seed, weights)[0], index=pd.Index(t.item_ids, name="item_id"))


def team_answers(
    answers_df: pd.DataFrame,
    team: Sequence[str],
    protocol: str = "majority",
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The team's answer per item: DataFrame(item_id, answer, tied), sorted by item_id."""
    if protocol not in ("majority", "weighted"):
        raise InputError(f"team answers need protocol 'majority' or 'weighted', not {protocol!r}")
    if protocol == "weighted" and weights is None:
        raise InputError("protocol='weighted' needs weights (see fit_vote_weights)")
    team = list(team)
    wide = answers_df.pivot(index="item_id", columns="agent", values="answer").sort_index()
    unknown = [a for a in team if a not in wide.columns]
    if unknown:
        raise InputError(f"unknown agent(s) {', '.join(map(str, unknown))}")
    w = None if protocol == "majority" else [float(weights[a]) for a in team]  # type: ignore[index]
    out = []
    for item_id, row in wide[team].iterrows():
        answers = [None if pd.isna(a) else str(a) for a in row]
        answer, tied = _vote(answers, w, item_rng(seed, str(item_id)))
        out.append((str(item_id), answer, tied))
    return pd.DataFrame({
        "item_id": [o[0] for o in out],
        "answer": pd.Series([o[1] for o in out], dtype=object),  # keep None (abstain), not NaN
        "tied": [o[2] for o in out],
    })


def fit_vote_weights(
    answers_df: pd.DataFrame,
    gold: Mapping[Hashable, Any] | pd.Series,
    agents: Sequence[str],
    method: str = "log_odds",
    n_choices: int | None = None,
) -> dict[str, float]:
    """Per-agent vote weights learned on held-out items (Laplace-smoothed accuracy p).

    ``log_odds``: log(p / (1 - p)) + log(n_choices - 1) when n_choices is given, floored at 0
    (an agent no better than chance gets no say); ``accuracy``: p itself.
    """
    if method not in ("log_odds", "accuracy"):
        raise InputError(f"unknown weighting method {method!r}; valid: log_odds, accuracy")
    t = _table(answers_df, gold)
    cols = t.columns(list(agents))
    n_correct = (t.codes[:, cols] == t.gold[:, None]).sum(axis=0)
    p = (n_correct + 1.0) / (len(t.item_ids) + 2.0)
    if method == "accuracy":
        w = p
    else:
        w = np.log(p / (1.0 - p)) + (np.log(n_choices - 1) if n_choices and n_choices > 1 else 0.0)
        w = np.maximum(w, 0.0)
    return {a: float(x) for a, x in zip(agents, w)}


def split_items(
    item_ids: Sequence[str], fit_fraction: float = 0.5, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Seeded split of item ids into (fit, evaluate) lists, e.g. to learn vote weights on held-out items."""
    ids = np.sort(np.asarray(list(dict.fromkeys(map(str, item_ids))), dtype=str))
    perm = np.random.default_rng(seed).permutation(len(ids))
    k = int(round(fit_fraction * len(ids)))
    return sorted(ids[perm[:k]].tolist()), sorted(ids[perm[k:]].tolist())


def random_team_scores(
    answers_df: pd.DataFrame,
    gold: Mapping[Hashable, Any] | pd.Series,
    agents: Sequence[str],
    size: int,
    n_draws: int = 200,
    seed: int = 0,
    protocol: str = "majority",
    weights: Mapping[str, float] | None = None,
) -> tuple[float, float, np.ndarray]:
    """Accuracy of ``n_draws`` random teams of ``size`` drawn from ``agents``: (mean, std, per-draw)."""
    pool = sorted(dict.fromkeys(agents))
    if not 1 <= size <= len(pool):
        raise InputError(f"team size {size} must be between 1 and the {len(pool)} agents")
    t = _table(answers_df, gold)
    rng = np.random.default_rng(seed)
    draws = np.array([
        _scores(t, list(rng.choice(pool, size=size, replace=False)), protocol, seed, weights)["accuracy"]
        for _ in range(n_draws)
    ])
    return float(draws.mean()), float(draws.std()), draws


def single_agent_scores(answers_df: pd.DataFrame, gold: Mapping[Hashable, Any] | pd.Series) -> pd.DataFrame:
    """Each agent's accuracy over gold's items (abstain = wrong), best first."""
    t = _table(answers_df, gold)
    hit = t.codes == t.gold[:, None]
    frame = pd.DataFrame({
        "agent": t.agents,
        "accuracy": hit.mean(axis=0) if len(t.item_ids) else np.nan,
        "n_abstain": (t.codes < 0).sum(axis=0),
    })
    return frame.sort_values(["accuracy", "agent"], ascending=[False, True], ignore_index=True)


def curated_teams(labels: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """Teams of agents sharing a label (only labels held by two or more agents), sorted."""
    teams: dict[str, set[str]] = {}
    for agent, agent_labels in labels.items():
        for label in [agent_labels] if isinstance(agent_labels, str) else agent_labels:
            teams.setdefault(str(label), set()).add(str(agent))
    return {label: sorted(members) for label, members in sorted(teams.items()) if len(members) >= 2}
