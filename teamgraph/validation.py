"""Validation against known labels: do the communities recover the agents' specialisations?

Labels (``Agent.labels``, e.g. ``math``/``medical``) are used here only to *measure* a partition,
never to build it. Each agent counts with its first label; agents without labels are left out.
Labels may carry a kind, ``kind:value`` (``family:qwen2.5``, ``role:math``; a YAML mapping
``{family: qwen2.5, role: math}`` becomes those strings): ``kind="family"`` measures agreement
with that kind alone, so one run can ask whether the graph sees models or specialisations.
Agreement is the adjusted Rand index (ARI, 0 = chance, 1 = identical) and the normalised mutual
information (NMI, arithmetic normalisation as scikit-learn's default), each with a one-sided
permutation p-value: labels are shuffled among the labelled agents, communities kept.

``label_gap`` asks the same question of the relationship values themselves, before any threshold
or clustering: is a pair of agents with the same label valued higher than a mixed pair?
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

import pandas as pd

from .communities import Partition
from .errors import InputError
from .limits import DEFAULT_LABEL_PERMUTATIONS, DEFAULT_SEED, check
from .scoring import topic_values

__all__ = [
    "LabelAgreement", "LabelGap", "ari_nmi", "label_agreement", "label_kinds", "labels_of_kind", "label_gap"
]


@dataclass(frozen=True)
class LabelAgreement:
    """ARI and NMI between communities and labels, with permutation p-values (+1 corrected)."""

    ari: float
    nmi: float
    p_value: float
    nmi_p_value: float
    n_agents: int
    n_labels: int
    n_communities: int
    n_permutations: int
    seed: int
    unlabelled: list[str] = field(default_factory=list)
    kind: str | None = None

    def summary(self) -> str:
        """One line for the CLI, e.g. ``labels: ARI 0.63 (p=0.004), NMI 0.71 (p=0.004), 6 agents``."""
        what = f"labels[{self.kind}]" if self.kind else "labels"
        return (f"{what}: ARI {self.ari:.2f} (p={self.p_value:.3g}), NMI {self.nmi:.2f} (p={self.nmi_p_value:.3g}), "
                f"{self.n_agents} agents, {self.n_labels} labels")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _codes(items: Sequence[Any]) -> np.ndarray:
    uniq = {v: i for i, v in enumerate(sorted(set(items), key=str))}
    return np.array([uniq[v] for v in items], dtype=np.int64)


def _contingency(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Contingency tables of one row labelling against many column labellings.

    ``rows``: (n,) codes; ``cols``: (P, n) codes. Returns (P, R, C) counts.
    """
    n_r, n_c = int(rows.max()) + 1, int(cols.max()) + 1
    flat = rows[None, :] * n_c + cols + (np.arange(len(cols)) * n_r * n_c)[:, None]
    return np.bincount(flat.ravel(), minlength=len(cols) * n_r * n_c).reshape(len(cols), n_r, n_c)


def _comb2(x: np.ndarray) -> np.ndarray:
    pairs: np.ndarray = x * (x - 1) / 2.0
    return pairs


def ari_nmi(communities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ARI and NMI of one community coding against ``labels`` of shape (P, n) or (n,).

    Matches ``sklearn.metrics.adjusted_rand_score`` / ``normalized_mutual_info_score``.
    """
    labels = np.atleast_2d(labels)
    table = _contingency(np.asarray(communities), labels).astype(float)
    n = float(labels.shape[1])
    a, b = table.sum(axis=2), table.sum(axis=1)  # (P, R) community sizes, (P, C) label counts
    # ARI from pair counts (Hubert & Arabie).
    index = _comb2(table).sum(axis=(1, 2))
    sa, sb = _comb2(a).sum(axis=1), _comb2(b).sum(axis=1)
    expected = sa * sb / _comb2(np.array(n))
    maximum = (sa + sb) / 2.0
    denom = maximum - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        ari = np.where(denom == 0, 1.0, (index - expected) / denom)
    # NMI = MI / mean(H(communities), H(labels)).
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(table > 0, n * table / (a[:, :, None] * b[:, None, :]), 1.0)
        mi = (table / n * np.log(ratio)).sum(axis=(1, 2))
        h_a = -np.where(a > 0, a / n * np.log(a / n), 0.0).sum(axis=1)
        h_b = -np.where(b > 0, b / n * np.log(b / n), 0.0).sum(axis=1)
    both_trivial = (h_a == 0) & (h_b == 0)
    nmi = np.where(both_trivial, 1.0, np.clip(mi, 0, None) / np.maximum((h_a + h_b) / 2.0, np.finfo(float).eps))
    return ari, nmi


def label_agreement(
    partition: Partition | Sequence[Sequence[str]],
    labels: Mapping[str, Any] | None = None,
    n_permutations: int = DEFAULT_LABEL_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
    kind: str | None = None,
) -> LabelAgreement | None:
    """ARI/NMI between a partition's communities and the agents' labels, with permutation p-values.

    ``labels`` maps agent -> label or list of labels (the first counts); by default the graph's
    node attribute ``labels`` is used. Returns None when fewer than two agents are labelled or
    they all share one label (agreement is undefined). With ``kind``, each agent counts with its
    ``kind:value`` label instead (see :func:`label_kinds`). Returns a new object and leaves
    ``partition`` as it is: ``partition.with_validation(result, kind)`` gives a copy carrying it.

    Parameters
    ----------
    partition : Partition or list of list of str
        The communities.
    labels : mapping, optional
        Agent -> label or list of labels; default the graph's node attribute ``labels``.
    n_permutations : int
        Label shuffles for the p-values (limit ``n_permutations``).
    seed : int
        Seed of the shuffles.
    kind : str, optional
        Use each agent's ``kind:value`` label (``family``, ``role``).

    Returns
    -------
    LabelAgreement or None
        ARI, NMI and their permutation p-values; None where agreement is undefined.

    Raises
    ------
    InputError
        Plain communities without ``labels``, or ``n_permutations`` out of its limit.

    Examples
    --------
    >>> agree = label_agreement([["a", "b"], ["c", "d"]], {"a": "x", "b": "x", "c": "y", "d": "y"})
    >>> agree.ari, agree.n_agents
    (1.0, 4)
    """
    check("n_permutations", n_permutations)
    if isinstance(partition, Partition):
        communities = partition.communities
        if labels is None:
            labels = {n: d.get("labels") for n, d in partition.graph.nodes(data=True)}
    else:
        communities = [list(c) for c in partition]
        if labels is None:
            raise InputError("label_agreement on plain communities needs labels=...")
    member = {str(n): i for i, c in enumerate(communities) for n in c}
    chosen = _first_labels(labels) if kind is None else labels_of_kind(labels, kind)
    first = {n: v for n, v in chosen.items() if n in member}
    unlabelled = sorted(set(member) - set(first))
    names = sorted(first)
    if len(names) < 2 or len(set(first.values())) < 2:
        return None
    comm = _codes([member[n] for n in names])
    lab = _codes([first[n] for n in names])
    ari, nmi = ari_nmi(comm, lab)
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(lab, (n_permutations, len(lab))), axis=1)
    null_ari, null_nmi = ari_nmi(comm, shuffled)
    tol = 1e-12
    result = LabelAgreement(
        ari=float(ari[0]), nmi=float(nmi[0]),
        p_value=(1 + int((null_ari >= ari[0] - tol).sum())) / (n_permutations + 1),
        nmi_p_value=(1 + int((null_nmi >= nmi[0] - tol).sum())) / (n_permutations + 1),
        n_agents=len(names), n_labels=int(lab.max()) + 1, n_communities=int(comm.max()) + 1,
        n_permutations=int(n_permutations), seed=int(seed), unlabelled=unlabelled, kind=kind,
    )
    return result


def _label_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v not in (None, "")]
    return [] if value in (None, "") else [str(value)]


def label_kinds(labels: Mapping[str, Any]) -> list[str]:
    """The kinds of ``kind:value`` labels used by any agent, sorted.

    >>> label_kinds({"a": ["family:qwen", "role:math"], "b": ["role:medical", "plain"]})
    ['family', 'role']
    """
    return sorted({lab.split(":", 1)[0] for v in labels.values() for lab in _label_list(v) if ":" in lab})


def labels_of_kind(labels: Mapping[str, Any], kind: str) -> dict[str, str]:
    """Agent -> the value of its first ``kind:value`` label; agents without one are left out.

    >>> labels_of_kind({"a": ["family:qwen", "role:math"], "b": ["role:medical"]}, "role")
    {'a': 'math', 'b': 'medical'}
    """
    out = {}
    for name, value in labels.items():
        for lab in _label_list(value):
            k, sep, v = lab.partition(":")
            if sep and k == kind and v:
                out[str(name)] = v
                break
    return out


@dataclass(frozen=True)
class LabelGap:
    """Mean relationship value of same-label pairs minus that of mixed pairs, with a permutation p-value."""

    gap: float
    p_value: float
    n_agents: int
    n_pairs: int
    n_permutations: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value not in (None, ""):
            out[str(name)] = str(value)
    return out


def label_gap(
    values: pd.DataFrame,
    labels: Mapping[str, Any],
    topic: str | None = None,
    n_permutations: int = DEFAULT_LABEL_PERMUTATIONS,
    seed: int = 0,
) -> LabelGap | None:
    """Same-label minus mixed-label mean of the relationship values of ``topic`` (None or "all": all topics).

    Only pairs of two labelled agents count (first label each). The one-sided p-value shuffles the
    labels among those agents. Returns None when there are no same-label or no mixed pairs.

    >>> v = pd.DataFrame({"agent_a": ["a", "a", "b"], "agent_b": ["b", "c", "c"], "topic": "t", "weight": [0.9, 0.1, 0.2]})
    >>> round(label_gap(v, {"a": "x", "b": "x", "c": "y"}).gap, 3)
    0.75
    """
    check("n_permutations", n_permutations)
    selected = topic_values(values, topic)
    first = _first_labels(labels)
    keep = selected["agent_a"].isin(first) & selected["agent_b"].isin(first)
    selected = selected[keep]
    names = sorted(set(selected["agent_a"]) | set(selected["agent_b"]))
    if len(names) < 2:
        return None
    index = {n: i for i, n in enumerate(names)}
    a = selected["agent_a"].map(index).to_numpy()
    b = selected["agent_b"].map(index).to_numpy()
    w = selected["weight"].to_numpy(dtype=float)
    lab = _codes([first[n] for n in names])
    rng = np.random.default_rng(seed)
    runs = np.vstack([lab, rng.permuted(np.broadcast_to(lab, (n_permutations, len(lab))), axis=1)])
    same = runs[:, a] == runs[:, b]
    n_same = same.sum(axis=1)
    if n_same[0] == 0 or n_same[0] == len(w):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):  # a shuffle without same or mixed pairs: undefined,
        gaps = (same @ w) / n_same - ((~same) @ w) / (len(w) - n_same)
    gaps = np.where(np.isfinite(gaps), gaps, np.inf)  # counted against rejection
    return LabelGap(gap=float(gaps[0]), p_value=(1 + int((gaps[1:] >= gaps[0] - 1e-12).sum())) / (n_permutations + 1),
                    n_agents=len(names), n_pairs=len(w), n_permutations=int(n_permutations), seed=int(seed))
