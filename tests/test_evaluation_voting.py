"""Voting on hand-made answer tables, and team_scores against a naive recount on random tables."""
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from teamgraph.errors import InputError
from teamgraph.evaluation import (
    curated_teams,
    fit_vote_weights,
    item_rng,
    majority_vote,
    random_team_scores,
    single_agent_scores,
    split_items,
    team_answers,
    team_scores,
)

# 3 agents x 4 items, worked out by hand:
#   i1: A A B  gold A -> majority A (right)
#   i2: A B C  gold B -> three-way tie
#   i3: - - -  gold C -> all abstain (wrong)
#   i4: D - C  gold C -> two-way tie C/D
ANSWERS = {
    ("i1", "a"): "A", ("i1", "b"): "A", ("i1", "c"): "B",
    ("i2", "a"): "A", ("i2", "b"): "B", ("i2", "c"): "C",
    ("i3", "a"): None, ("i3", "b"): None, ("i3", "c"): None,
    ("i4", "a"): "D", ("i4", "b"): None, ("i4", "c"): "C",
}
GOLD = {"i1": "A", "i2": "B", "i3": "C", "i4": "C"}


def _table(answers=ANSWERS):
    rows = [(i, a, ans) for (i, a), ans in answers.items()]
    return pd.DataFrame(rows, columns=["item_id", "agent", "answer"])


def _tie_pick(candidates, seed, item_id):
    """The documented tie rule: sorted tied answers, pick floor(u * n) with u from item_rng."""
    ordered = sorted(candidates)
    return ordered[int(item_rng(seed, item_id).random() * len(ordered))]


def test_majority_vote_basics():
    rng = np.random.default_rng(0)
    assert majority_vote(["A", "A", None, "B"], rng) == ("A", False)
    assert majority_vote([None, None], rng) == (None, False)
    assert majority_vote([], rng) == (None, False)
    answer, tied = majority_vote(["A", "B", None], rng)
    assert tied and answer in {"A", "B"}
    picks = {majority_vote(["A", "B"], np.random.default_rng(s))[0] for s in range(50)}
    assert picks == {"A", "B"}  # the tie-break is random, not always the first answer


def test_hand_table_majority():
    for seed in range(5):
        got = team_scores(_table(), GOLD, ["a", "b", "c"], seed=seed)
        resolved = (_tie_pick("ABC", seed, "i2") == "B") + (_tie_pick("CD", seed, "i4") == "C")
        assert got == {
            "accuracy": (1 + resolved) / 4,
            "strict_accuracy": 1 / 4,
            "n_items": 4,
            "n_ties": 2,
            "n_abstain_all": 1,
        }


def test_hand_table_oracle_weighted_single():
    oracle = team_scores(_table(), GOLD, ["a", "b", "c"], protocol="oracle")
    assert oracle["accuracy"] == 3 / 4 and oracle["n_ties"] == 0 and oracle["n_abstain_all"] == 1
    # weights a=1, b=1, c=3: i1 B(3) beats A(2) -> wrong; i2 C wins -> wrong; i4 C(3) > D(1) -> right
    weights = {"a": 1, "b": 1, "c": 3}
    weighted = team_scores(_table(), GOLD, ["a", "b", "c"], protocol="weighted", weights=weights)
    assert weighted["accuracy"] == weighted["strict_accuracy"] == 1 / 4
    assert weighted["n_ties"] == 0
    single = single_agent_scores(_table(), GOLD)
    assert single["agent"].tolist() == ["b", "a", "c"]
    assert single["accuracy"].tolist() == [0.5, 0.25, 0.25]
    assert single["n_abstain"].tolist() == [2, 1, 1]


def test_team_of_two_and_missing_rows_abstain():
    table = _table()
    table = table[~((table["item_id"] == "i1") & (table["agent"] == "b"))]  # b never answered i1
    got = team_scores(table, GOLD, ["a", "b"], seed=0)
    # i1: only a answers A -> right; i2: A/B tie; i3: abstain; i4: only a -> D wrong
    assert got["strict_accuracy"] == 1 / 4
    assert got["n_ties"] == 1 and got["n_abstain_all"] == 1
    assert got["accuracy"] == (1 + (_tie_pick("AB", 0, "i2") == "B")) / 4


def test_ties_stable_across_row_order_and_other_items():
    table = _table()
    base = team_scores(table, GOLD, ["a", "b", "c"], seed=3)
    shuffled = table.sample(frac=1.0, random_state=1)
    assert team_scores(shuffled, GOLD, ["a", "b", "c"], seed=3) == base
    # the same tied item, alone in another table, is broken the same way
    only_i2 = table[table["item_id"] == "i2"]
    alone = team_answers(only_i2, ["a", "b", "c"], seed=3)
    full = team_answers(shuffled, ["a", "b", "c"], seed=3).set_index("item_id")
    assert alone["answer"].iloc[0] == full.loc["i2", "answer"]
    assert full.loc["i2", "tied"] and not full.loc["i1", "tied"]
    assert full.loc["i1", "answer"] == "A" and full.loc["i3", "answer"] is None


def _naive_scores(df, gold, team, protocol, seed, weights=None):
    """Direct recount, one item at a time, with no shared code beyond the tie rule."""
    lookup = {(r.item_id, r.agent): (None if pd.isna(r.answer) else r.answer) for r in df.itertuples()}
    correct = strict = ties = abstain = 0
    for item_id, g in gold.items():
        votes = [lookup.get((item_id, a)) for a in team]
        given = [(a, v) for a, v in zip(team, votes) if v is not None]
        if not given:
            abstain += 1
            continue
        if protocol == "oracle":
            hit = any(v == g for _, v in given)
            correct += hit
            strict += hit
            continue
        score = Counter()
        for a, v in given:
            score[v] += 1.0 if protocol == "majority" else weights[a]
        top = max(score.values())
        best = [v for v, s in score.items() if abs(s - top) < 1e-9]
        if len(best) == 1:
            correct += best[0] == g
            strict += best[0] == g
        else:
            ties += 1
            correct += _tie_pick(best, seed, item_id) == g
    n = len(gold)
    return {"accuracy": correct / n, "strict_accuracy": strict / n, "n_items": n,
            "n_ties": ties, "n_abstain_all": abstain}


@pytest.mark.parametrize("trial", range(6))
def test_team_scores_match_naive_recount(trial):
    rng = np.random.default_rng(trial)
    agents = [f"m{k}" for k in range(7)]
    items = [f"q{k}" for k in range(60)]
    options = ["A", "B", "C", "D", None]
    rows = [(i, a, options[rng.integers(len(options))]) for i in items for a in agents if rng.random() > 0.1]
    df = pd.DataFrame(rows, columns=["item_id", "agent", "answer"])
    gold = {i: options[rng.integers(4)] for i in items}
    weights = {a: float(rng.integers(1, 4)) for a in agents}  # small integers make weighted ties likely
    for size in (2, 3, 4, 7):
        team = list(rng.choice(agents, size=size, replace=False))
        for protocol in ("majority", "weighted", "oracle"):
            for seed in (0, 11):
                got = team_scores(df, gold, team, protocol=protocol, seed=seed, weights=weights)
                want = _naive_scores(df, gold, team, protocol, seed, weights)
                assert got == pytest.approx(want), (size, protocol, seed)


def test_team_answers_agree_with_team_scores():
    rng = np.random.default_rng(42)
    agents = ["x", "y", "z", "w"]
    df = pd.DataFrame([(f"q{i}", a, "ABC"[rng.integers(3)]) for i in range(40) for a in agents],
                      columns=["item_id", "agent", "answer"])
    gold = {f"q{i}": "ABC"[rng.integers(3)] for i in range(40)}
    answers = team_answers(df, agents, seed=7)
    accuracy = np.mean([gold[r.item_id] == r.answer for r in answers.itertuples()])
    assert team_scores(df, gold, agents, seed=7)["accuracy"] == pytest.approx(accuracy)


def test_fit_vote_weights_by_hand():
    gold = {"i1": "A", "i2": "A", "i3": "A", "i4": "A"}
    rows = [(i, "good", "A" if i != "i4" else "B") for i in gold]
    rows += [(i, "bad", "A" if i == "i1" else "B") for i in gold]
    df = pd.DataFrame(rows, columns=["item_id", "agent", "answer"])
    w = fit_vote_weights(df, gold, ["good", "bad"])
    # good: 3/4 -> p = 4/6 -> log(2); bad: 1/4 -> p = 2/6 -> log(1/2) < 0 -> floored at 0
    assert w["good"] == pytest.approx(np.log(2.0))
    assert w["bad"] == 0.0
    w4 = fit_vote_weights(df, gold, ["good", "bad"], n_choices=4)
    assert w4["bad"] == pytest.approx(np.log(0.5) + np.log(3.0))
    acc = fit_vote_weights(df, gold, ["good", "bad"], method="accuracy")
    assert acc == pytest.approx({"good": 4 / 6, "bad": 2 / 6})


def test_random_team_scores():
    rng = np.random.default_rng(5)
    agents = [f"m{k}" for k in range(5)]
    df = pd.DataFrame([(f"q{i}", a, "ABCD"[rng.integers(4)]) for i in range(50) for a in agents],
                      columns=["item_id", "agent", "answer"])
    gold = {f"q{i}": "ABCD"[rng.integers(4)] for i in range(50)}
    mean, std, draws = random_team_scores(df, gold, agents, size=3, n_draws=30, seed=1)
    assert draws.shape == (30,) and mean == pytest.approx(draws.mean()) and std == pytest.approx(draws.std())
    again = random_team_scores(df, gold, agents, size=3, n_draws=30, seed=1)[2]
    assert np.array_equal(draws, again)
    # size 1: every draw is some single agent's accuracy
    singles = set(single_agent_scores(df, gold)["accuracy"].round(12))
    assert set(random_team_scores(df, gold, agents, size=1, n_draws=20)[2].round(12)) <= singles
    # the full roster: every draw is the same team
    full = team_scores(df, gold, agents, seed=2)["accuracy"]
    mean, std, _ = random_team_scores(df, gold, agents, size=5, n_draws=5, seed=2)
    assert mean == pytest.approx(full) and std == 0.0
    with pytest.raises(InputError):
        random_team_scores(df, gold, agents, size=6)


def test_curated_teams():
    labels = {"a": ["math", "med"], "b": ["math"], "c": "med", "d": ["code"]}
    assert curated_teams(labels) == {"math": ["a", "b"], "med": ["a", "c"]}


def test_split_items():
    ids = [f"q{i}" for i in range(11)]
    fit, held = split_items(ids, 0.5, seed=3)
    assert sorted(fit + held) == sorted(ids) and not set(fit) & set(held)
    assert (fit, held) == split_items(list(reversed(ids)), 0.5, seed=3)


def test_bad_inputs():
    with pytest.raises(InputError, match="zed"):
        team_scores(_table(), GOLD, ["a", "zed"])
    with pytest.raises(InputError, match="protocol"):
        team_scores(_table(), GOLD, ["a"], protocol="unanimous")
    with pytest.raises(InputError, match="weights"):
        team_scores(_table(), GOLD, ["a", "b"], protocol="weighted")
    dup = pd.concat([_table(), _table().head(1)])
    with pytest.raises(InputError, match="twice"):
        team_scores(dup, GOLD, ["a", "b"])
