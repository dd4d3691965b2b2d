"""The language-model graph: agents as nodes, relationship values as weighted edges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import networkx as nx
import numpy as np
import pandas as pd

from .errors import InputError
from .scoring import check_values, topic_values

THRESHOLD_RULES = ("none", "mean", "quantile:Q", "top_k:K")


@dataclass(frozen=True)
class Threshold:
    """A weak-edge rule: ``none``, ``mean`` (default), ``quantile`` with ``q``, or ``top_k`` with ``k``."""

    rule: str = "mean"
    q: float | None = None
    k: int | None = None

    @classmethod
    def parse(cls, spec: "str | Threshold") -> "Threshold":
        """Parse ``"none"``, ``"mean"``, ``"quantile:0.75"`` or ``"top_k:3"``."""
        if isinstance(spec, Threshold):
            return spec
        text = str(spec).strip().lower()
        name, _, arg = text.partition(":")
        try:
            if name in ("none", "mean") and not arg:
                return cls(name)
            if name == "quantile" and arg and 0.0 <= float(arg) <= 1.0:
                return cls("quantile", q=float(arg))
            if name == "top_k" and arg and int(arg) >= 1:
                return cls("top_k", k=int(arg))
        except ValueError:
            pass
        raise InputError(f"threshold: '{spec}' is not one of {', '.join(THRESHOLD_RULES)} (0<=Q<=1, K>=1)")

    def __str__(self) -> str:
        if self.rule == "quantile":
            return f"quantile:{self.q:g}"
        if self.rule == "top_k":
            return f"top_k:{self.k}"
        return self.rule


def edge_mask(values: pd.DataFrame, threshold: Threshold) -> tuple[np.ndarray, float | None]:
    """Which value rows (one per agent pair) survive ``threshold``, and the cut-off used (None for none/top_k).

    ``mean`` and ``quantile`` keep the rows at or above the cut-off; ``top_k`` keeps a pair when it
    is among the ``k`` strongest pairs of either of its agents, ties going to the partner whose
    name sorts first. This is the one implementation: ``build_graph`` and the significance test's
    null graphs both use it.
    """
    w = values["weight"].to_numpy(dtype=float)
    if threshold.rule == "none" or len(w) == 0:
        return np.ones(len(w), dtype=bool), None
    if threshold.rule == "mean":
        cut = float(w.mean())
        return w >= cut, cut
    if threshold.rule == "quantile":
        cut = float(np.quantile(w, threshold.q))
        return w >= cut, cut
    ends = np.concatenate([values["agent_a"].to_numpy(), values["agent_b"].to_numpy()]).astype(str)
    names, index = np.unique(ends, return_inverse=True)  # sorted names: column order breaks ties
    i, j = index[:len(w)], index[len(w):]
    strength = np.full((len(names), len(names)), -np.inf)  # -inf: pair not measured
    strength[i, j] = strength[j, i] = w
    strongest = np.argsort(-strength, axis=1, kind="stable")[:, :threshold.k]
    top = np.zeros(strength.shape, dtype=bool)
    np.put_along_axis(top, strongest, True, axis=1)
    top &= np.isfinite(strength)
    return (top | top.T)[i, j], None


def build_graph(
    values: pd.DataFrame,
    threshold: str | Threshold = "mean",
    topic: str | None = None,
    agents: Iterable[Any] | Mapping[str, Mapping] | None = None,
) -> nx.Graph:
    """Build the language-model graph of one topic (or of all topics when ``topic`` is None, or
    ``"all"`` when no topic is named so; see :func:`teamgraph.scoring.topic_values`).

    Weak edges are removed by ``threshold``, and so are edges of value <= 0 (modularity needs
    non-negative weights; values that are all 0 give a graph without edges, where every agent is an
    isolate). Edges carry ``weight``, ``n_conversations`` and ``conversations`` (provenance ids).
    Nodes are every agent seen in ``values`` (plus ``agents``), in sorted order, with their public
    attributes. ``values`` go through :func:`teamgraph.scoring.check_values`: agent names that are
    not strings (``0, 1, 2``) become strings (``"0", "1", "2"``), as ``agents`` keys do; a pair
    given as (b, a) is the pair (a, b), and rows of one pair and topic are merged (their
    conversation-weighted mean); names that collide as text, missing names, and weights that are
    not finite numbers raise InputError naming the row or pair.

    >>> g = build_graph(values, threshold="mean", topic="mathematics")  # doctest: +SKIP
    >>> sorted(g.nodes)[:2], g.graph["threshold"]                       # doctest: +SKIP
    """
    values = check_values(values)
    all_names = set(values["agent_a"]) | set(values["agent_b"])
    selected = topic_values(values, topic)  # sorted by pair
    topic_name = "all" if topic is None else topic
    rule = Threshold.parse(threshold)
    keep, cut = edge_mask(selected, rule)

    attrs = _agent_attributes(agents)
    all_names |= set(attrs)
    g = nx.Graph(topic=topic_name, metric=values.attrs.get("metric", "unknown"),
                 threshold=str(rule), threshold_value=cut)
    for name in sorted(all_names):
        g.add_node(name, **attrs.get(name, {}))
    for row, kept in zip(selected.itertuples(index=False), keep):
        if kept and row.weight > 0:
            g.add_edge(row.agent_a, row.agent_b, weight=float(row.weight),
                       n_conversations=int(row.n_conversations), conversations=list(row.conversation_ids))
    return g


def build_graphs(values: pd.DataFrame, threshold: str | Threshold = "mean", agents: Any = None) -> dict[str, nx.Graph]:
    """One graph per topic plus the all-topics aggregate under the key ``"all"``."""
    values = check_values(values)
    graphs = {t: build_graph(values, threshold, t, agents) for t in sorted(values["topic"].unique(), key=str)}
    if len(graphs) > 1 or "all" not in graphs:
        graphs["all"] = build_graph(values, threshold, None, agents)
    return graphs


def _agent_attributes(agents: Any) -> dict[str, dict]:
    """Public node attributes from Agent objects or a name -> dict mapping (never secrets)."""
    if agents is None:
        return {}
    if isinstance(agents, Mapping):
        items = agents.items()
    else:
        items = ((a.name, a.public_dict()) for a in agents)
    out = {}
    for name, info in items:
        clean = {k: v for k, v in dict(info).items() if "key" not in k.lower() and k != "name"}
        out[str(name)] = clean
    return out
