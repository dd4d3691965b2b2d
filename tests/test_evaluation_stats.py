"""Uncertainty and baselines of issue 11: hand-worked tables, exact enumerations, fake answer tables."""
import json

import numpy as np
import pandas as pd
import pytest

from teamgraph.config import config_from_dict

from teamgraph.errors import InputError
from teamgraph.evaluation.baselines import held_out_best_single, random_team_outcomes
from teamgraph.evaluation.likelihood import best_option, self_consistency_answers
from teamgraph.evaluation.stats import bootstrap_ci, mcnemar_exact, paired_permutation
from teamgraph.evaluation.voting import item_correctness, split_items, team_scores


def test_mcnemar_matches_hand_worked_tables():
    # 8 items only A got right, 2 only B, 5 both, 5 neither: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * 56/1024
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    res = mcnemar_exact(a, b)
    assert (res.a_only, res.b_only) == (8, 2) and res.p_value == pytest.approx(112 / 1024)
    assert res.difference == pytest.approx(0.3)
    # 0 vs 6 discordant: p = 2 / 2**6
    assert mcnemar_exact([0] * 6 + [1] * 4, [1] * 6 + [1] * 4).p_value == pytest.approx(2 / 64)
    # no discordant item: nothing to test
    assert mcnemar_exact([1, 0], [1, 0]).p_value == 1.0
    with pytest.raises(InputError, match="0/1"):
        mcnemar_exact([0.5, 1], [1, 0])


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    # Resampling 5 items of which 3 are right: the resampled mean is k/5 with k ~ Binomial(5, 0.6).
    # Exact CDF at k=0: 0.010, k=1: 0.087 -> 2.5% quantile 0.2; at k=4: 0.922 -> 97.5% quantile 1.0.
    assert bootstrap_ci([0, 0, 1, 1, 1], n_boot=20000, seed=1) == (pytest.approx(0.2), pytest.approx(1.0))
    # Large n: close to the normal approximation p +/- 1.96 sqrt(p(1-p)/n).
    x = np.r_[np.ones(140), np.zeros(60)]
    low, high = bootstrap_ci(x, n_boot=4000, seed=0)
    half = 1.96 * np.sqrt(0.7 * 0.3 / 200)
    assert low == pytest.approx(0.7 - half, abs=0.012) and high == pytest.approx(0.7 + half, abs=0.012)


def test_paired_permutation_approximates_the_exact_sign_flip_p_value():
    # 5 items, A ahead by 1 on each: only the all-plus and all-minus sign patterns reach |mean| = 1 -> p = 2/32.
    res = paired_permutation([1] * 5, [0] * 5, n_permutations=40000, seed=0)
    assert res.p_value == pytest.approx(2 / 32, abs=0.004)
    assert paired_permutation([0.5, 0.25], [0.5, 0.25]).p_value == 1.0


def _answers(table):
    """{agent: "ABCA..."} over items i0..iN -> an answer table."""
    rows = [(f"i{j}", agent, ans if ans != "-" else None) for agent, answers in table.items() for j, ans in enumerate(answers)]
    return pd.DataFrame(rows, columns=["item_id", "agent", "answer"])


def test_held_out_best_single_never_sees_the_items_it_is_scored_on():
    # x is perfect on the items of the first half and wrong on the second; y is the reverse but weaker overall.
    items = [f"i{j}" for j in range(10)]
    first, second = split_items(items, 0.5, seed=3)
    gold = pd.Series("A", index=items)
    x = "".join("A" if f"i{j}" in first else "B" for j in range(10))
    y = "".join("B" if f"i{j}" in first else ("A" if f"i{j}" in second[:4] else "B") for j in range(10))
    answers = _answers({"x": x, "y": y})
    # In-sample, x is the best single agent (5/10 against 4/10) ...
    assert team_scores(answers, gold, ["x"])["accuracy"] > team_scores(answers, gold, ["y"])["accuracy"]
    correct, chosen = held_out_best_single(answers, gold, ["x", "y"], seed=3)
    # ... but held out, the first half is scored with the agent best on the second half (y) and vice versa.
    assert chosen == {"first": "y", "second": "x"}
    assert correct.sum() == 0  # each half scored by the agent that is wrong there: no leak of the scored items


def test_item_correctness_agrees_with_team_scores_and_random_outcomes_with_single_teams():
    answers = _answers({"a": "AAB-", "b": "ABBA", "c": "BBAA"})
    gold = pd.Series(["A", "B", "B", "A"], index=["i0", "i1", "i2", "i3"])
    per_item = item_correctness(answers, gold, ["a", "b", "c"], seed=0)
    assert per_item.mean() == pytest.approx(team_scores(answers, gold, ["a", "b", "c"], seed=0)["accuracy"])
    assert list(per_item.index) == ["i0", "i1", "i2", "i3"]
    outcomes = random_team_outcomes(answers, gold, ["a", "b", "c"], size=1, n_draws=300, seed=0)
    # a team of one is one agent: every draw's accuracy is one of the agents' accuracies (1/2, 1, 1/4)
    assert set(outcomes.mean(axis=0).round(3)) <= {0.5, 1.0, 0.25}


def test_self_consistency_samples_the_stored_letter_distribution():
    certain = {"A": 0.0, "B": -50.0, "C": -50.0}                  # always A
    split = {"A": np.log(0.5), "B": np.log(0.5), "C": -50.0}      # A or B
    answers = pd.DataFrame({
        "item_id": ["q1", "q2"], "agent": "m", "mode": "likelihood",
        "raw": [json.dumps(certain), json.dumps(split)], "answer": ["A", "A"],
    })
    sc = self_consistency_answers(answers, "m", k=5, seed=0).set_index("item_id")["answer"]
    assert sc["q1"] == "A" and sc["q2"] in {"A", "B"}
    # Over many seeds, the 5-sample vote on a 50/50 item picks A about half the time (binomial: 0.5).
    picks = [self_consistency_answers(answers, "m", k=5, seed=s).set_index("item_id")["answer"]["q2"] for s in range(400)]
    assert picks.count("A") / 400 == pytest.approx(0.5, abs=0.08)
    assert best_option(split) == "A" and best_option({}) is None
    with pytest.raises(InputError, match="likelihood answers"):
        self_consistency_answers(answers.assign(mode="generation"), "m", k=3)


def test_cloze_answers_maximise_per_character_likelihood_and_sample_whole_text_probabilities():
    from teamgraph.evaluation.likelihood import option_distribution_logits, option_scores

    raw = {"A": [-10.0, 3, 20], "B": [-6.0, 2, 4]}  # A: -0.5 per character, B: -1.5; B is more probable whole
    assert best_option(option_scores(raw)) == "A"
    assert option_distribution_logits(raw) == {"A": -10.0, "B": -6.0}
    answers = pd.DataFrame({"item_id": ["q"], "agent": "m", "mode": "cloze", "raw": [json.dumps(raw)], "answer": ["A"]})
    picks = [self_consistency_answers(answers, "m", k=1, seed=s)["answer"][0] for s in range(300)]
    assert picks.count("B") / 300 == pytest.approx(1 / (1 + np.exp(-4)), abs=0.05)  # softmax of (-10, -6)


def test_settings_can_be_set_per_benchmark():
    cfg = config_from_dict({"agents": [{"name": "a"}, {"name": "b"}], "evaluation": {
        "n_items": 200, "max_tokens": 16, "scoring": "likelihood",
        "per_benchmark": {"arc_easy": {"scoring": "cloze"}, "gsm8k": {"n_items": 100, "max_tokens": 192,
                                                                        "scoring": "generation"}}}})
    ev = cfg.evaluation
    assert (ev.scoring_for("arc_easy"), ev.scoring_for("mmlu_medical"), ev.scoring_for("gsm8k")) == \
        ("cloze", "likelihood", "generation")
    assert (ev.for_benchmark("gsm8k").n_items, ev.for_benchmark("gsm8k").max_tokens) == (100, 192)
    assert (ev.for_benchmark("arc_easy").n_items, ev.for_benchmark("arc_easy").max_tokens) == (200, 16)


def test_self_consistency_of_generated_samples_is_the_majority_of_the_first_k():
    from teamgraph.evaluation.baselines import vote_samples

    # item 1: samples 5, 5, 7, 7, 7 -> x3 picks 5 (2 of 3), x5 picks 7 (3 of 5)
    # item 2: samples None, 4, None, 4, 9 -> abstentions do not vote: 4 in both
    # item 3: samples None x5 -> abstains
    samples = pd.DataFrame(
        [("1", s, a) for s, a in enumerate(["5", "5", "7", "7", "7"])]
        + [("2", s, a) for s, a in enumerate([None, "4", None, "4", "9"])]
        + [("3", s, None) for s in range(5)], columns=["item_id", "sample", "answer"])
    x3 = vote_samples(samples.sample(frac=1, random_state=0), 3, name="m x3")
    x5 = vote_samples(samples, 5)
    assert x3["answer"].tolist() == ["5", "4", None] and set(x3["agent"]) == {"m x3"}
    assert x5["answer"].tolist() == ["7", "4", None] and set(x5["agent"]) == {"x5"}
    with pytest.raises(InputError, match="needs 6 samples per item"):
        vote_samples(samples, 6)


def test_options_from_a_servers_top_tokens_take_the_best_spelling_and_minus_inf_for_the_rest():
    import math

    from teamgraph.backends.base import options_from_top
    from teamgraph.errors import RequestFailed

    top = {" A": -1.0, "A": -2.5, " B": -0.5, "\n": -0.1, " the": -3.0}
    assert options_from_top(top, ("A", "B", "C"), "m") == {"A": -1.0, "B": -0.5, "C": -math.inf}
    assert best_option(options_from_top(top, ("A", "B", "C"), "m")) == "B"
    with pytest.raises(RequestFailed, match="none of the options A, B is among the 2 most probable"):
        options_from_top({"\n": -0.1, " the": -2.0}, ("A", "B"), "m")
