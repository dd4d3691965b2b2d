"""Baselines a community team must beat, per item, so that every comparison can be paired.

- :func:`held_out_best_single`: the best single agent *chosen on other items* (two-fold cross-fit:
  chosen on one half, scored on the other, and back), so the choice never sees the items it is scored on.
- :func:`random_team_outcomes`: many random teams of a size, each item's correctness per draw.
- Self-consistency of an agent (k samples, majority vote): :func:`vote_samples` over k generated replies
  (each sampled with its own evaluation seed), or, for likelihood answers, draws from the stored option
  distribution (:func:`teamgraph.evaluation.likelihood.self_consistency_answers`). Score either with
  :func:`teamgraph.evaluation.voting.item_correctness` like any team of one.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from teamgraph.errors import InputError
from teamgraph.evaluation.voting import _correct, _table, item_rng, majority_vote, split_items

__all__ = ["held_out_best_single", "random_team_outcomes", "vote_samples"]


def held_out_best_single(
    answers_df: pd.DataFrame, gold: Mapping[Hashable, Any] | pd.Series, agents: Sequence[str], seed: int = 0,
) -> tuple[pd.Series, dict[str, str]]:
    """Correctness per item of the best single agent chosen on the other half of the items.

    The items are split in two seeded halves; on each half the agent used is the one with the best
    accuracy on the *other* half (ties: the first by name). Returns (boolean Series by item_id, the
    agent chosen for each half: ``{"first": ..., "second": ...}``).
    """
    pool = sorted(dict.fromkeys(map(str, agents)))
    if not pool:
        raise InputError("held_out_best_single needs at least one agent")
    t = _table(answers_df, gold)
    first, second = split_items(t.item_ids, 0.5, seed)
    if not first or not second:
        raise InputError("held_out_best_single needs at least two items")
    hit = pd.DataFrame(t.codes[:, t.columns(pool)] == t.gold[:, None], index=t.item_ids, columns=pool)
    chosen = {}
    parts = []
    for name, fit, scored in (("first", second, first), ("second", first, second)):
        acc = hit.loc[fit].mean(axis=0)
        best = sorted(pool, key=lambda a: (-acc[a], a))[0]
        chosen[name] = best
        parts.append(hit.loc[scored, best])
    out = pd.concat(parts).sort_index()
    out.index.name = "item_id"
    return out.astype(bool), chosen


def random_team_outcomes(
    answers_df: pd.DataFrame, gold: Mapping[Hashable, Any] | pd.Series, agents: Sequence[str], size: int,
    n_draws: int = 200, seed: int = 0, protocol: str = "majority",
) -> pd.DataFrame:
    """Correctness of ``n_draws`` random teams of ``size`` (majority vote): items x draws, booleans.

    Column means are the draws' accuracies (their spread is the random-team interval); row means are
    each item's expected correctness under a random team (what a paired test compares against).
    """
    pool = sorted(dict.fromkeys(map(str, agents)))
    if not 1 <= size <= len(pool):
        raise InputError(f"team size {size} must be between 1 and the {len(pool)} agents")
    t = _table(answers_df, gold)
    rng = np.random.default_rng(seed)
    draws = [_correct(t, list(rng.choice(pool, size=size, replace=False)), protocol, seed, None)[0]
             for _ in range(n_draws)]
    return pd.DataFrame(np.column_stack(draws), index=pd.Index(t.item_ids, name="item_id"))


def vote_samples(samples: pd.DataFrame, k: int, seed: int = 0, name: str | None = None) -> pd.DataFrame:
    """Self-consistency from sampled answers: each item's majority over its first ``k`` samples.

    ``samples`` has columns item_id, sample (0, 1, ...) and answer (normalised, None = abstain) for
    one agent; samples 0..k-1 must all be there. Ties are broken by a seeded draw per item, as in team
    votes. Returns (item_id, agent, answer) with agent ``name`` (default ``"x<k>"``).
    """
    if k < 1:
        raise InputError(f"self-consistency needs k >= 1, got {k}")
    first = samples[samples["sample"] < k]
    counts = first.groupby("item_id")["sample"].nunique()
    short = counts[counts < k]
    if not short.empty:
        raise InputError(f"self-consistency x{k} needs {k} samples per item; item {short.index[0]!r} has {short.iloc[0]}")
    rows = []
    for item_id, group in first.sort_values("sample").groupby("item_id", sort=True):
        answers = [None if pd.isna(a) else str(a) for a in group["answer"]]
        vote, _tied = majority_vote(answers, item_rng(seed, str(item_id)))
        rows.append((str(item_id), name or f"x{k}", vote))
    return pd.DataFrame(rows, columns=["item_id", "agent", "answer"], dtype=object)
