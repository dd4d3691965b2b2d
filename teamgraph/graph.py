"""The language-model graph: agents as nodes, relationship values as weighted edges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import networkx as nx
import numpy as np
import pandas as pd

from .errors import InputError
from .scoring import check_values, topic_values

__all__ = ["THRESHOLD_RULES", "Threshold", "edge_mask", "build_graph", "build_graphs"]

#: The threshold specs :meth:`Threshold.parse` accepts (Q and K stand for numbers).
THRESHOLD_RULES = ("none", "mean", "quantile:Q", "top_k:K")


@dataclass(frozen=True)
class Threshold:
    """A weak-edge rule: ``none``, ``mean`` (default), ``quantile`` with ``q``, or ``top_k`` with ``k``.

    ``mean`` and ``quantile`` keep the pairs whose value is at or above the mean (the ``q``
    quantile) of the topic's values; ``top_k`` keeps each agent's ``k`` strongest pairs; ``none``
    keeps every pair. See :func:`edge_mask`. ``str(threshold)`` gives back the spec.

    Parameters
    ----------
    rule : {"mean", "none", "quantile", "top_k"}, default "mean"
    q : float, optional
        The quantile, 0 <= q <= 1 (``quantile`` only).
    k : int, optional
        Pairs kept per agent, k >= 1 (``top_k`` only).

    Examples
    --------
    >>> Threshold.parse("quantile:0.75")
    Threshold(rule='quantile', q=0.75, k=None)
    >>> str(Threshold("top_k", k=3))
    'top_k:3'
    """

    rule: str = "mean"
    q: float | None = None
    k: int | None = None

    @classmethod
    def parse(cls, spec: "str | Threshold") -> "Threshold":
        """Parse ``"none"``, ``"mean"``, ``"quantile:0.75"`` or ``"top_k:3"``.

        Parameters
        ----------
        spec : str or Threshold
            A spec (case and surrounding spaces do not matter), or a Threshold, returned as it is.

        Returns
        -------
        Threshold

        Raises
        ------
        InputError
            ``spec`` is not one of :data:`THRESHOLD_RULES`, or Q is outside 0 .. 1 or K below 1.

        Examples
        --------
        >>> Threshold.parse(" TOP_K:3 ")
        Threshold(rule='top_k', q=None, k=3)
        >>> Threshold.parse("median")
        Traceback (most recent call last):
        teamgraph.errors.InputError: threshold: 'median' is not one of none, mean, quantile:Q, top_k:K (0<=Q<=1, K>=1)
        """
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

    Parameters
    ----------
    values : pandas.DataFrame
        Checked relationship values of one topic (one row per pair), as
        :func:`teamgraph.scoring.topic_values` returns them.
    threshold : Threshold

    Returns
    -------
    keep : numpy.ndarray of bool
        One entry per row of ``values``.
    cut : float or None
        The value cut at (``mean``, ``quantile``), else None.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["ada", "ada", "bob"], "agent_b": ["bob", "cy", "cy"],
    ...                        "weight": [0.9, 0.2, 0.4]})
    >>> edge_mask(values, Threshold("mean"))
    (array([ True, False, False]), 0.5)
    >>> edge_mask(values, Threshold("top_k", k=1))[0]
    array([ True, False,  True])
    """
    w = values["weight"].to_numpy(dtype=float)
    if threshold.rule == "none" or len(w) == 0:
        return np.ones(len(w), dtype=bool), None
    if threshold.rule == "mean":
        cut = float(w.mean())
        return w >= cut, cut
    if threshold.rule == "quantile":
        cut = float(np.quantile(w, float(threshold.q or 0.0)))
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
    agents: Iterable[Any] | Mapping[str, Mapping[str, Any]] | None = None,
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

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values (:func:`teamgraph.relationship_values`): columns ``agent_a, agent_b,
        topic, weight`` and optionally ``n_conversations, conversation_ids``.
    threshold : str or Threshold, default "mean"
        The weak-edge rule (:class:`Threshold`).
    topic : str, optional
        The topic to draw; None (or ``"all"``) gives the mean over all topics.
    agents : iterable of Agent or mapping of str to dict, optional
        Node attributes: Agent objects (their ``public_dict()``) or name -> attributes. Keys that
        contain ``key`` are dropped, so no secret reaches a node. Agents without values become
        isolated nodes.

    Returns
    -------
    networkx.Graph
        Graph attributes ``topic``, ``metric`` (from ``values.attrs``, else ``"unknown"``),
        ``threshold`` (the spec) and ``threshold_value`` (the cut-off, or None).

    Raises
    ------
    InputError
        ``values`` are not valid relationship values, ``topic`` is not among them, or
        ``threshold`` is not a rule.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["ada", "ada", "bob"], "agent_b": ["bob", "cy", "cy"],
    ...                        "topic": "mathematics", "weight": [0.9, 0.2, 0.4]})
    >>> g = build_graph(values, threshold="mean", topic="mathematics")
    >>> sorted(g.nodes), list(g.edges(data="weight"))
    (['ada', 'bob', 'cy'], [('ada', 'bob', 0.9)])
    >>> g.graph["threshold"], g.graph["threshold_value"]
    ('mean', 0.5)
    >>> sorted(build_graph(values, threshold="top_k:1").edges)
    [('ada', 'bob'), ('bob', 'cy')]
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
    """One graph per topic plus the all-topics aggregate under the key ``"all"``.

    Each graph is :func:`build_graph` of its topic. With a single topic the aggregate equals it,
    so ``"all"`` is added only when there are several topics (or the one topic is not named
    ``"all"``).

    Parameters
    ----------
    values : pandas.DataFrame
        Relationship values, as for :func:`build_graph`.
    threshold : str or Threshold, default "mean"
        The weak-edge rule, applied to each topic separately.
    agents : iterable of Agent or mapping of str to dict, optional
        Node attributes, as for :func:`build_graph`.

    Returns
    -------
    dict of str to networkx.Graph
        Topic -> graph, topics in sorted order, then ``"all"``.

    Raises
    ------
    InputError
        ``values`` are not valid relationship values or ``threshold`` is not a rule.

    Examples
    --------
    >>> values = pd.DataFrame({"agent_a": ["ada", "ada", "ada", "ada"], "agent_b": ["bob", "cy", "bob", "cy"],
    ...                        "topic": ["mathematics", "mathematics", "medicine", "medicine"],
    ...                        "weight": [0.9, 0.2, 0.1, 0.8]})
    >>> {topic: sorted(g.edges) for topic, g in build_graphs(values).items()}
    {'mathematics': [('ada', 'bob')], 'medicine': [('ada', 'cy')], 'all': [('ada', 'bob'), ('ada', 'cy')]}
    """
    values = check_values(values)
    graphs = {t: build_graph(values, threshold, t, agents) for t in sorted(values["topic"].unique(), key=str)}
    if len(graphs) > 1 or "all" not in graphs:
        graphs["all"] = build_graph(values, threshold, None, agents)
    return graphs


def _agent_attributes(agents: Any) -> dict[str, dict[str, Any]]:
    """Public node attributes from Agent objects or a name -> dict mapping (never secrets)."""
    if agents is None:
        return {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(agents, Mapping):
        items = agents.items()
    else:
        items = ((a.name, a.public_dict()) for a in agents)
    out = {}
    for name, info in items:
        clean = {k: v for k, v in dict(info).items() if "key" not in k.lower() and k != "name"}
        out[str(name)] = clean
    return out
