"""Coherence metrics: pure functions from one conversation's utterance embeddings to a number.

Every metric takes ``embeddings`` (T x D, rows L2-normalised, in utterance order) and ``speakers``
(length T) and returns a float. Empty or failed utterances are embedded as zero vectors, so any
pair that involves one contributes a cosine of 0.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import InputError

Metric = Callable[[np.ndarray, Sequence[str]], float]

#: Consecutive utterances whose cosine exceeds this are treated as echoes by ``echo_discounted_cosine``.
DEFAULT_ECHO_THRESHOLD = 0.95


def consecutive_cosines(embeddings: np.ndarray) -> np.ndarray:
    """Cosine of each utterance with the next one (rows assumed L2-normalised), length T-1."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array, got shape {e.shape}")
    if len(e) < 2:
        return np.zeros(0)
    return np.einsum("ij,ij->i", e[:-1], e[1:])


def cumulative_cosine(embeddings: np.ndarray, speakers: Sequence[str] = ()) -> float:
    """The paper's relationship value: R = sum_t cos(e_t, e_{t+1})."""
    return float(consecutive_cosines(embeddings).sum())


def mean_cosine(embeddings: np.ndarray, speakers: Sequence[str] = ()) -> float:
    """Cumulative cosine divided by T-1, comparable across conversations of different lengths."""
    cos = consecutive_cosines(embeddings)
    return float(cos.mean()) if len(cos) else 0.0


def echo_discounted_cosine(
    embeddings: np.ndarray, speakers: Sequence[str] = (), echo_threshold: float = DEFAULT_ECHO_THRESHOLD
) -> float:
    """Mean consecutive cosine where a turn that repeats any earlier turn (cos > threshold) scores 0.

    Loops of identical or near-identical lines (common with small models) therefore pull the value
    towards 0 instead of to its maximum, as cumulative cosine does.
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
    """Mean cosine between every utterance of one speaker and every utterance of the other."""
    e = np.asarray(embeddings, dtype=np.float64)
    speakers = list(speakers)
    if len(speakers) != len(e):
        raise InputError(f"got {len(speakers)} speakers for {len(e)} embeddings")
    names = sorted(set(speakers))
    if len(names) != 2:
        return 0.0
    mask = np.array([s == names[0] for s in speakers])
    return float((e[mask] @ e[~mask].T).mean())


METRICS: dict[str, Metric] = {
    "cumulative_cosine": cumulative_cosine,
    "mean_cosine": mean_cosine,
    "echo_discounted_cosine": echo_discounted_cosine,
    "cross_speaker_cosine": cross_speaker_cosine,
}


def get_metric(metric: str | Metric) -> tuple[str, Metric]:
    """Resolve a metric name (or a callable) to ``(name, function)``."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    try:
        return metric, METRICS[metric]
    except KeyError:
        raise InputError(f"unknown metric '{metric}' (choose from: {', '.join(METRICS)})") from None
