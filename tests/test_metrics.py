import math

import numpy as np
import pytest

from teamgraph.errors import InputError
from teamgraph.metrics import (
    consecutive_cosines, cross_speaker_cosine, cumulative_cosine, echo_discounted_cosine, get_metric, mean_cosine,
)

S = math.sqrt(0.5)
X, Y, D = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [S, S, 0.0]


def test_cumulative_cosine_sums_consecutive_cosines():
    e = np.array([X, D, Y, Y])  # cosines: S, S, 1
    assert cumulative_cosine(e) == pytest.approx(2 * S + 1)
    assert mean_cosine(e) == pytest.approx((2 * S + 1) / 3)


def test_orthogonal_turns_score_zero_and_short_conversations_are_zero():
    assert cumulative_cosine(np.array([X, Y, X, Y])) == pytest.approx(0.0)
    assert cumulative_cosine(np.array([X])) == 0.0
    assert mean_cosine(np.array([X])) == 0.0


def test_empty_utterance_zero_vector_contributes_nothing():
    e = np.array([X, [0, 0, 0], X])
    assert consecutive_cosines(e).tolist() == [0.0, 0.0]


def test_identical_loop_gets_maximum_cumulative_but_zero_echo_discounted():
    loop = np.array([X] * 6)
    assert cumulative_cosine(loop) == pytest.approx(5.0)  # the paper's metric rewards the loop
    assert echo_discounted_cosine(loop) == 0.0


def test_alternating_loop_is_discounted_after_first_round():
    # A B A B: turns 2 and 3 repeat earlier turns, so only the first pair (cos S) counts, over 3 pairs.
    e = np.array([X, D, X, D])
    assert echo_discounted_cosine(e) == pytest.approx(S / 3)
    assert mean_cosine(e) == pytest.approx(S)


def test_echo_discounted_equals_mean_cosine_without_echoes():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert echo_discounted_cosine(e) == pytest.approx(mean_cosine(e))
    assert echo_discounted_cosine(e, echo_threshold=-1.0) == 0.0  # everything counts as an echo


def test_cross_speaker_cosine_means_between_speakers_only():
    e = np.array([X, Y, X, D])
    speakers = ["a", "b", "a", "b"]
    # a = {X, X}; b = {Y, D}: cos(X,Y)=0, cos(X,D)=S, twice each
    assert cross_speaker_cosine(e, speakers) == pytest.approx(S / 2)
    with pytest.raises(InputError):
        cross_speaker_cosine(e, ["a", "b"])


def test_unknown_metric_names_the_choices():
    with pytest.raises(InputError, match="cumulative_cosine"):
        get_metric("nope")
