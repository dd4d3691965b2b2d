"""Coherence metrics: pure functions from one conversation's utterance embeddings to a number.

Every metric takes ``embeddings`` (T x D, rows L2-normalised, in utterance order) and ``speakers``
(length T) and returns a float. Empty or failed utterances are embedded as zero vectors, so any
pair that involves one contributes a cosine of 0.

>>> import numpy as np
>>> embeddings = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])  # the last turn repeats the one before
>>> {name: round(fn(embeddings, ["ada", "bob", "ada"]), 6) for name, fn in METRICS.items()}
{'cumulative_cosine': 1.6, 'mean_cosine': 0.8, 'echo_discounted_cosine': 0.3, 'cross_speaker_cosine': 0.8}
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import InputError

__all__ = ["Metric", "DEFAULT_ECHO_THRESHOLD", "consecutive_cosines", "cumulative_cosine", "mean_cosine",
           "echo_discounted_cosine", "cross_speaker_cosine", "METRICS", "get_metric"]

#: The type of a metric: ``(embeddings, speakers) -> float``.
Metric = Callable[[np.ndarray, Sequence[str]], float]

#: Consecutive utterances whose cosine exceeds this are treated as echoes by ``echo_discounted_cosine``.
DEFAULT_ECHO_THRESHOLD = 0.95


def consecutive_cosines(embeddings: np.ndarray) -> np.ndarray:
    """Cosine of each utterance with the next one (rows assumed L2-normalised), length T-1.

    Parameters
    ----------
    embeddings : array_like, shape (T, D)
        One row per utterance, in order, L2-normalised (the dot product is the cosine).

    Returns
    -------
    numpy.ndarray, shape (T-1,)
        ``cos(e_t, e_{t+1})`` for t = 0 .. T-2; empty when T < 2.

    Raises
    ------
    InputError
        ``embeddings`` is not 2-D.

    Examples
    --------
    >>> consecutive_cosines(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    array([0.6, 0.8])
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array, got shape {e.shape}")
    if len(e) < 2:
        return np.zeros(0)
    cosines: np.ndarray = np.einsum("ij,ij->i", e[:-1], e[1:])
    return cosines


def cumulative_cosine(embeddings: np.ndarray, speakers: Sequence[str] = ()) -> float:
    """The paper's relationship value: R = sum_t cos(e_t, e_{t+1}).

    It grows with the length of the conversation; :func:`mean_cosine` does not.

    Parameters
    ----------
    embeddings : array_like, shape (T, D)
        One L2-normalised row per utterance, in order.
    speakers : sequence of str, optional
        Not used (metrics share one signature).

    Returns
    -------
    float
        The sum of consecutive cosines; 0.0 for fewer than two utterances.

    Raises
    ------
    InputError
        ``embeddings`` is not 2-D.

    Examples
    --------
    >>> cumulative_cosine(np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]]))
    1.6
    """
    return float(consecutive_cosines(embeddings).sum())


def mean_cosine(embeddings: np.ndarray, speakers: Sequence[str] = ()) -> float:
    """Cumulative cosine divided by T-1, comparable across conversations of different lengths.

    Parameters
    ----------
    embeddings : array_like, shape (T, D)
        One L2-normalised row per utterance, in order.
    speakers : sequence of str, optional
        Not used (metrics share one signature).

    Returns
    -------
    float
        The mean consecutive cosine; 0.0 for fewer than two utterances.

    Raises
    ------
    InputError
        ``embeddings`` is not 2-D.

    Examples
    --------
    >>> mean_cosine(np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]]))
    0.8
    """
    cos = consecutive_cosines(embeddings)
    return float(cos.mean()) if len(cos) else 0.0


def echo_discounted_cosine(
    embeddings: np.ndarray, speakers: Sequence[str] = (), echo_threshold: float = DEFAULT_ECHO_THRESHOLD
) -> float:
    """Mean consecutive cosine where a turn that repeats any earlier turn (cos > threshold) scores 0.

    Loops of identical or near-identical lines (common with small models) therefore pull the value
    towards 0 instead of to its maximum, as cumulative cosine does.

    Parameters
    ----------
    embeddings : array_like, shape (T, D)
        One L2-normalised row per utterance, in order.
    speakers : sequence of str, optional
        Not used (metrics share one signature).
    echo_threshold : float, default :data:`DEFAULT_ECHO_THRESHOLD` (0.95)
        A turn whose cosine with any earlier turn exceeds this is an echo.

    Returns
    -------
    float
        The mean consecutive cosine with echoes scored 0; 0.0 for fewer than two utterances.

    Raises
    ------
    InputError
        ``embeddings`` is not 2-D.

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])  # the third turn echoes the second
    >>> echo_discounted_cosine(e), echo_discounted_cosine(e, echo_threshold=1.5)
    (0.3, 0.8)
    """
    e = np.asarray(embeddings, dtype=np.float64)
    cos = consecutive_cosines(e)
    if not len(cos):
        return 0.0
    sims = e @ e.T
    # echo[t] is True when utterance t nearly repeats any earlier utterance (t >= 1).
    earlier = np.tril(sims, k=-1)
    earlier[np.triu_indices(len(e))] = -np.inf
    echo = earlier.max(axis=1)[1:] > echo_threshold
    return float(np.where(echo, 0.0, cos).mean())


def cross_speaker_cosine(embeddings: np.ndarray, speakers: Sequence[str]) -> float:
    """Mean cosine between every utterance of one speaker and every utterance of the other.

    Unlike the consecutive metrics it ignores turn order: it measures how close the two agents'
    contributions are as sets.

    Parameters
    ----------
    embeddings : array_like, shape (T, D)
        One L2-normalised row per utterance.
    speakers : sequence of str, length T
        Who said each utterance.

    Returns
    -------
    float
        The mean over all cross-speaker pairs; 0.0 unless exactly two speakers appear.

    Raises
    ------
    InputError
        ``speakers`` and ``embeddings`` differ in length.

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    >>> cross_speaker_cosine(e, ["ada", "bob", "ada"])  # (cos(ada1, bob) + cos(ada2, bob)) / 2
    0.8
    """
    e = np.asarray(embeddings, dtype=np.float64)
    speakers = list(speakers)
    if len(speakers) != len(e):
        raise InputError(f"got {len(speakers)} speakers for {len(e)} embeddings")
    names = sorted(set(speakers))
    if len(names) != 2:
        return 0.0
    mask = np.array([s == names[0] for s in speakers])
    return float((e[mask] @ e[~mask].T).mean())


#: Metric name -> function: the names ``relationship_values(metric=...)`` and configs accept.
METRICS: dict[str, Metric] = {
    "cumulative_cosine": cumulative_cosine,
    "mean_cosine": mean_cosine,
    "echo_discounted_cosine": echo_discounted_cosine,
    "cross_speaker_cosine": cross_speaker_cosine,
}


def get_metric(metric: str | Metric) -> tuple[str, Metric]:
    """Resolve a metric name (or a callable) to ``(name, function)``.

    Parameters
    ----------
    metric : str or callable
        A key of :data:`METRICS`, or any function ``(embeddings, speakers) -> float``.

    Returns
    -------
    tuple of (str, callable)
        The name (a callable's ``__name__``, or ``"custom"``) and the function.

    Raises
    ------
    InputError
        ``metric`` is a name not in :data:`METRICS`.

    Examples
    --------
    >>> get_metric("mean_cosine")[0]
    'mean_cosine'
    >>> get_metric(lambda e, s: 0.0)[0]
    '<lambda>'
    """
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    try:
        return metric, METRICS[metric]
    except KeyError:
        raise InputError(f"unknown metric '{metric}' (choose from: {', '.join(METRICS)})") from None
