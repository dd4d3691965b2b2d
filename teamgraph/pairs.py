"""Pair selection: which agent pairs converse, from one fingerprint vector per agent.

:func:`select_pairs` is a pure function ``fingerprints -> sorted list of (a, b) with a < b``: each
agent's ``k`` nearest neighbours by cosine similarity, plus ``explore`` random partners per agent,
capped at ``budget`` (a fraction of all N(N-1)/2 pairs), every agent in at least one pair. It replaces
the N(N-1)/2 conversations of the full graph by about N(k + explore) (issue 13).

- **Neighbours.** Exact (blocked dot products of the L2-normalised fingerprints) up to
  :data:`EXACT_MAX_AGENTS` agents; above it NN-Descent (Dong, Moses & Li 2011, "Efficient k-nearest
  neighbor graph construction for generic similarity measures", WWW '11) through ``pynndescent``,
  single-threaded so that a seed gives one answer. Ties: the agent that sorts first wins.
- **Exploration.** Agents in name order each draw ``explore`` partners uniformly among the agents
  they are not yet paired with (``numpy.random.default_rng(seed)``), so every agent adds exactly
  ``explore`` new pairs while it has unpaired agents left.
- **Budget.** At most ``floor(budget * N(N-1)/2)`` pairs are kept, in priority order: nearest-
  neighbour pairs first, by neighbour rank (a pair's best rank in either agent's list: every agent's
  nearest neighbour before anyone's second), then by similarity; then exploration pairs, first draws
  before second draws, in seeded random order. Pairs are dropped from the end of that order, never
  one that is the last pair of one of its agents: when the cap is below what covering every agent
  needs, the result has more pairs than the cap, and each pair beyond it is some agent's only one.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Hashable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from .errors import InputError, MissingDependencyError
from .limits import DEFAULT_SEED, LIMITS, check

__all__ = [
    "EXACT_MAX_AGENTS", "NN_DESCENT_MIN_NEIGHBOURS", "DEFAULT_K", "DEFAULT_EXPLORE", "DEFAULT_BUDGET",
    "select_pairs",
]

#: Up to this many agents the nearest neighbours are exact; above it NN-Descent (``pynndescent``). Measured on
#: 2 cores, 384-D clustered vectors, k = 10: exact 0.5 s at 2,000 agents and 11 s at 10,000; NN-Descent 0.9 s at
#: 5,000 and 2.3 s at 10,000 once compiled, but numba compiles it in every new process (40-50 s), so the
#: approximate search only pays from about 15,000-20,000 agents.
EXACT_MAX_AGENTS = 20_000
#: NN-Descent searches at least this many neighbours per agent and keeps the ``k`` most similar: with few
#: it misses many (k = 5 on 3,000 random 32-D points: recall 0.59 searching 5, 0.998 searching 30).
NN_DESCENT_MIN_NEIGHBOURS = 30
#: Nearest neighbours per agent.
DEFAULT_K = 10
#: Random partners per agent.
DEFAULT_EXPLORE = 2
#: Fraction of all pairs that may be selected (1.0: no cap).
DEFAULT_BUDGET = 1.0
#: Rows of the similarity matrix computed at once by the exact search (memory: rows x N floats).
_EXACT_BLOCK_ROWS = 1024

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    limit = LIMITS[name]
    if not limit.ok(int(value)):
        raise InputError(f"{name} {limit.text()}, got {value!r}")
    return int(value)


def _check_budget(budget: Any) -> float:
    limit = LIMITS["budget"]
    if isinstance(budget, bool) or not isinstance(budget, Real) or not limit.ok(float(budget)):
        raise InputError(f"budget {limit.text()} (a fraction of all pairs), got {budget!r}")
    return float(budget)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InputError(f"seed must be an integer, got {seed!r}")
    return int(check("seed", int(seed)))


def _agent_name(name: Hashable, seen: dict[str, Hashable]) -> str:
    """``name`` as text (``str`` for non-strings); a NaN or a name that collides as text raises."""
    if isinstance(name, float) and math.isnan(name):
        raise InputError("fingerprints: an agent name is NaN (a missing name?)")
    text = name if isinstance(name, str) else str(name)
    if text in seen:
        other = seen[text]
        if other == name:
            raise InputError(f"fingerprints: agent {text!r} appears twice")
        raise InputError(f"fingerprints: agent names {other!r} and {name!r} are the same as text ({text!r}); "
                         "rename one")
    seen[text] = name
    return text


def _fingerprint_matrix(fingerprints: Any) -> tuple[list[str], FloatArray]:
    """Agent names, sorted, and their fingerprints as L2-normalised rows in that order."""
    if isinstance(fingerprints, pd.DataFrame):
        items = list(zip(fingerprints.index, fingerprints.to_numpy()))
    elif isinstance(fingerprints, Mapping):
        items = list(fingerprints.items())
    else:
        raise InputError("fingerprints must map agent names to vectors (a dict, or a pandas DataFrame "
                         f"indexed by agent), got {type(fingerprints).__name__}")
    if len(items) < 2:
        raise InputError(f"fingerprints must have at least 2 agents, got {len(items)}")
    seen: dict[str, Hashable] = {}
    rows: dict[str, FloatArray] = {}
    width: tuple[str, int] | None = None
    for raw_name, raw_vector in items:
        name = _agent_name(raw_name, seen)
        try:
            vector = np.asarray(raw_vector, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"fingerprints[{name!r}] is not a vector of numbers") from None
        if vector.ndim != 1 or vector.size == 0:
            raise InputError(f"fingerprints[{name!r}] must be a non-empty 1-D vector, got shape {vector.shape}")
        if width is None:
            width = (name, vector.size)
        elif vector.size != width[1]:
            raise InputError(f"fingerprints[{name!r}] has length {vector.size} but fingerprints[{width[0]!r}] "
                             f"has {width[1]}: all vectors must have the same length")
        if not np.isfinite(vector).all():
            raise InputError(f"fingerprints[{name!r}] has a value that is not finite (NaN or infinity)")
        scale = float(np.abs(vector).max())
        if scale == 0.0:
            raise InputError(f"fingerprints[{name!r}] is all zeros: cosine similarity needs a non-zero vector")
        vector = vector / scale          # no overflow in the norm of huge values
        rows[name] = vector / float(np.linalg.norm(vector))
    names = sorted(rows)
    return names, np.stack([rows[n] for n in names])


def _exact_neighbours(unit: FloatArray, k: int) -> IntArray:
    """Each row's ``k`` most cosine-similar other rows, most similar first (ties: lower index)."""
    n = len(unit)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _EXACT_BLOCK_ROWS):
        stop = min(start + _EXACT_BLOCK_ROWS, n)
        sims = unit[start:stop] @ unit.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return out


def _approximate_neighbours(unit: FloatArray, k: int, seed: int) -> IntArray:
    """Each row's ``k`` nearest other rows by NN-Descent (``pynndescent``), most similar first; -1 pads."""
    try:
        import pynndescent
    except ImportError:
        raise MissingDependencyError(
            f"select_pairs on {len(unit)} agents (more than EXACT_MAX_AGENTS = {EXACT_MAX_AGENTS}) uses "
            "NN-Descent, which needs pynndescent: pip install pynndescent") from None
    n = len(unit)
    searched = min(max(k, NN_DESCENT_MIN_NEIGHBOURS) + 1, n - 1)   # + 1: an agent finds itself
    index = pynndescent.NNDescent(unit.astype(np.float32), metric="cosine", n_neighbors=searched,
                                  random_state=seed, n_jobs=1)
    found = np.asarray(index.neighbor_graph[0], dtype=np.int64)
    out = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        others = found[i][(found[i] != i) & (found[i] >= 0)]
        others = np.unique(others)            # sorted: ties below go to the lower index
        sims = unit[others] @ unit[i]
        others = others[np.argsort(-sims, kind="stable")][:k]
        out[i, :len(others)] = others
    return out


def _neighbour_pairs(unit: FloatArray, neighbours: IntArray) -> tuple[IntArray, IntArray]:
    """The unique pairs ``(a, b)``, ``a < b``, of a neighbour table, in priority order."""
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = neighbours.ravel()
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int64), n)
    found = cols >= 0
    rows, cols, ranks = rows[found], cols[found], ranks[found]
    first, second = np.minimum(rows, cols), np.maximum(rows, cols)
    # one entry per pair, with its best (lowest) rank from either side
    order = np.lexsort((ranks, second, first))
    first, second, ranks = first[order], second[order], ranks[order]
    new = np.ones(len(first), dtype=bool)
    new[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    first, second, ranks = first[new], second[new], ranks[new]
    sims = np.einsum("ij,ij->i", unit[first], unit[second])
    order = np.lexsort((second, first, -sims, ranks))
    return first[order], second[order]


def _exploration_pairs(n: int, explore: int, partners: list[set[int]],
                       rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """``explore`` new random partners per agent (fewer when it has run out), in priority order."""
    first: list[int] = []
    second: list[int] = []
    draw: list[int] = []
    for i in range(n):
        mine = partners[i]
        free_count = n - 1 - len(mine)
        wanted = min(explore, free_count)
        if wanted <= 0:
            continue
        if 2 * free_count < n or 2 * wanted > free_count:
            # few agents free, or most of them wanted: draw from the explicit list
            free = np.setdiff1d(np.arange(n), np.fromiter(mine | {i}, dtype=np.int64, count=len(mine) + 1))
            chosen = [int(j) for j in rng.choice(free, size=wanted, replace=False)]
        else:
            # at least half the agents free, at most half of those wanted: draw and redraw
            # (at most 4 draws a partner on average)
            chosen = []
            while len(chosen) < wanted:
                j = int(rng.integers(n))
                if j != i and j not in mine and j not in chosen:
                    chosen.append(j)
        for t, j in enumerate(chosen):
            mine.add(j)
            partners[j].add(i)
            first.append(min(i, j))
            second.append(max(i, j))
            draw.append(t)
    tiebreak = rng.random(len(first))
    order = np.lexsort((tiebreak, np.asarray(draw, dtype=np.int64)))
    return np.asarray(first, dtype=np.int64)[order], np.asarray(second, dtype=np.int64)[order]


def _capped(first: IntArray, second: IntArray, n: int, cap: int) -> tuple[IntArray, IntArray]:
    """Drop pairs from the end of the priority order down to ``cap``, never an agent's last pair."""
    keep = np.ones(len(first), dtype=bool)
    degree = np.bincount(first, minlength=n) + np.bincount(second, minlength=n)
    kept = len(first)
    for p in range(len(first) - 1, -1, -1):
        if kept <= cap:
            break
        a, b = int(first[p]), int(second[p])
        if degree[a] > 1 and degree[b] > 1:
            keep[p] = False
            degree[a] -= 1
            degree[b] -= 1
            kept -= 1
    return first[keep], second[keep]


def select_pairs(
    fingerprints: Mapping[Any, Any] | pd.DataFrame,
    k: int = DEFAULT_K,
    explore: int = DEFAULT_EXPLORE,
    budget: float = DEFAULT_BUDGET,
    seed: int = DEFAULT_SEED,
) -> list[tuple[str, str]]:
    """The agent pairs to converse: ``k`` nearest neighbours plus ``explore`` random partners per agent.

    Cosine similarity of the fingerprints picks the neighbours (exact up to :data:`EXACT_MAX_AGENTS`
    agents, NN-Descent through ``pynndescent`` above); the module docstring gives the exploration
    draws, the priority order and the cap. Every agent is in at least one pair; the same inputs and
    seed give the same pairs. Agent names that are not strings are converted with ``str``.

    Parameters
    ----------
    fingerprints : mapping or pandas.DataFrame
        Agent name -> fingerprint vector (all of one length, finite, not all zeros), or a DataFrame
        with one row per agent, indexed by agent name. At least 2 agents.
    k : int, default :data:`DEFAULT_K`
        Nearest neighbours per agent (>= 1); more than N - 1 means all of them.
    explore : int, default :data:`DEFAULT_EXPLORE`
        Random partners per agent (>= 0), drawn among the agents it is not already paired with.
    budget : float, default :data:`DEFAULT_BUDGET`
        Fraction of all N(N-1)/2 pairs that may be selected, in (0, 1]; exceeded only by pairs that are
        some agent's only pair.
    seed : int, default 0
        Seeds the exploration draws and NN-Descent (0 .. 2**32-1).

    Returns
    -------
    list of (str, str)
        Unique pairs ``(a, b)`` with ``a < b``, sorted.

    Raises
    ------
    InputError
        A setting out of its limit (the message names it), fewer than 2 agents, a fingerprint that is
        not a finite non-zero vector of the common length, or agent names that collide as text.
    MissingDependencyError
        More than :data:`EXACT_MAX_AGENTS` agents and ``pynndescent`` is not installed.

    Examples
    --------
    >>> fingerprints = {"ada": [1.0, 0.0], "bob": [0.9, 0.1], "cy": [0.0, 1.0], "dee": [0.1, 0.9],
    ...                 "eve": [-1.0, 0.0], "fay": [-0.9, -0.1]}
    >>> select_pairs(fingerprints, k=1, explore=0)
    [('ada', 'bob'), ('cy', 'dee'), ('eve', 'fay')]
    >>> len(select_pairs(fingerprints, k=1, explore=1))  # 3 neighbour pairs + 6 random ones, of 15
    9
    >>> select_pairs(fingerprints, k=1, explore=1, budget=0.3)  # at most 4 pairs: the neighbours first
    [('ada', 'bob'), ('ada', 'dee'), ('cy', 'dee'), ('eve', 'fay')]
    """
    k = _check_int("k", k)
    explore = _check_int("explore", explore)
    budget = _check_budget(budget)
    seed = _check_seed(seed)
    names, unit = _fingerprint_matrix(fingerprints)
    n = len(names)
    k = min(k, n - 1)
    if n <= EXACT_MAX_AGENTS or k == n - 1:
        neighbours = _exact_neighbours(unit, k)
    else:
        neighbours = _approximate_neighbours(unit, k, seed)
    near_first, near_second = _neighbour_pairs(unit, neighbours)
    partners: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(near_first.tolist(), near_second.tolist()):
        partners[a].add(b)
        partners[b].add(a)
    rng = np.random.default_rng(seed)
    far_first, far_second = _exploration_pairs(n, explore, partners, rng)
    first = np.concatenate([near_first, far_first])
    second = np.concatenate([near_second, far_second])
    total = n * (n - 1) // 2
    cap = max(1, math.floor(budget * total * (1 + 1e-12)))   # 1e-12: 0.29 * 100 is 28.999999999999996
    first, second = _capped(first, second, n, cap)
    order = np.lexsort((second, first))
    return [(names[a], names[b]) for a, b in zip(first[order].tolist(), second[order].tolist())]
