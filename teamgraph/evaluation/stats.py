"""Uncertainty of accuracies: bootstrap intervals over items and paired tests between two scorers.

All functions take per-item outcomes on the *same* items in the same order (a 0/1 correctness vector,
or a fraction in [0, 1] such as the mean correctness of many random teams on an item), so every
comparison is paired by item, as it must be when two teams answered the same questions.

- :func:`bootstrap_ci`: percentile interval of the mean, resampling items with replacement (seeded).
- :func:`mcnemar_exact`: exact McNemar test of two 0/1 vectors (two-sided binomial test on the
  discordant items).
- :func:`paired_permutation`: two-sided sign-flip permutation test of the mean per-item difference
  (for outcomes that are not 0/1, e.g. a team against the average of random teams).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from teamgraph.errors import InputError

__all__ = ["bootstrap_ci", "PairedTest", "mcnemar_exact", "paired_permutation"]


def _vector(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise InputError(f"{name} must be a non-empty 1-D sequence of per-item outcomes")
    if not np.isfinite(v).all():
        raise InputError(f"{name} has missing or infinite values")
    return v


def bootstrap_ci(outcomes: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item ``outcomes`` (items resampled with replacement).

    >>> bootstrap_ci([1, 1, 1, 1])
    (1.0, 1.0)
    """
    v = _vector(outcomes, "outcomes")
    if n_boot < 1 or not 0 < level < 1:
        raise InputError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired comparison of A against B on the same items."""

    test: str
    n_items: int
    mean_a: float
    mean_b: float
    difference: float
    p_value: float
    a_only: int | None = None  # McNemar: items A got right and B wrong
    b_only: int | None = None

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether ``p_value < alpha``."""
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


def mcnemar_exact(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> PairedTest:
    """Exact McNemar test of two 0/1 correctness vectors on the same items (two-sided).

    Under the null the discordant items split 50/50; p = two-sided binomial test on them.

    >>> mcnemar_exact([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]).p_value  # 5 of 5 discordant items favour A
    0.0625
    """
    from scipy.stats import binomtest

    x, y = _vector(a, "a"), _vector(b, "b")
    if len(x) != len(y):
        raise InputError(f"paired outcomes differ in length: {len(x)} and {len(y)}")
    if not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise InputError("mcnemar_exact needs 0/1 outcomes; use paired_permutation for fractions")
    a_only = int(((x == 1) & (y == 0)).sum())
    b_only = int(((x == 0) & (y == 1)).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)
    return PairedTest("mcnemar_exact", len(x), float(x.mean()), float(y.mean()), float(x.mean() - y.mean()),
                      min(p, 1.0), a_only, b_only)


def paired_permutation(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                       n_permutations: int = 10000, seed: int = 0) -> PairedTest:
    """Two-sided sign-flip permutation test of the mean per-item difference a - b (+1 corrected).

    >>> paired_permutation([1, 1, 1], [1, 1, 1]).p_value
    1.0
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if len(x) != len(y):
        raise InputError(f"paired outcomes differ in length: {len(x)} and {len(y)}")
    if n_permutations < 1:
        raise InputError(f"n_permutations must be >= 1, got {n_permutations}")
    d = x - y
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, len(d)))
    null = np.abs((signs * d).mean(axis=1))
    p = (1 + int((null >= observed - 1e-12).sum())) / (n_permutations + 1)
    return PairedTest("paired_permutation", len(x), float(x.mean()), float(y.mean()), float(d.mean()), min(p, 1.0))
