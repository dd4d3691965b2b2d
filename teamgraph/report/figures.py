"""Plotly figures of the report: one per topic, every topic on one layout.

plotly.js draws them; these functions only say what to draw. Edges are line traces binned by
width (plotly cannot vary one line trace's width), with an invisible marker at each edge's midpoint
that carries the edge's index for hover and click; agents are one marker trace coloured by
community. Edge lines are SVG paths (one per width bin): in a Chromium without a GPU, WebGL lines
of 10,000 edges took seconds per frame where SVG takes a fraction (benchmarks/bench_report.py); the
midpoint markers of a large graph are WebGL (``scattergl``), which keeps hover fast.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["WEBGL_EDGES", "LABELLED_AGENTS", "shared_layout", "width_scale", "topic_figure"]

#: Edges above which the edge midpoints (hover and click targets) are drawn with WebGL instead of SVG.
WEBGL_EDGES = 1500
#: Agents above which names are shown on hover only, not written beside every node.
LABELLED_AGENTS = 60
#: Line widths (px) of the weakest and strongest edge of all topics, and how many width bins.
MIN_WIDTH, MAX_WIDTH, WIDTH_BINS = 0.6, 6.0, 6
#: Edge opacity: this much up to ``_SPARSE`` edges, fading as 1/sqrt(edges) beyond (down to _MIN_ALPHA),
#: so that a dense graph shows where its edges crowd instead of one grey blot.
_ALPHA, _MIN_ALPHA, _SPARSE = 0.45, 0.06, 400


def shared_layout(partitions: Mapping[str, Any], seed: int = 0) -> dict[str, tuple[float, float]]:
    """Agent -> (x, y): :func:`teamgraph.viz.graph_layout` of the union of every topic's graph, rounded."""
    from ..viz import graph_layout

    pos = graph_layout([p.graph for p in partitions.values()], seed=seed)
    return {str(n): (round(float(p[0]), 4), round(float(p[1]), 4)) for n, p in pos.items()}


def width_scale(views: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    """(lowest, highest) edge weight over every topic: one scale, so widths compare across topics."""
    weights = [e[2] for view in views.values() for e in view["edges"] if e[2] is not None]
    return (min(weights), max(weights)) if weights else (0.0, 1.0)


def _bins(weights: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.full(len(weights), WIDTH_BINS - 1, dtype=int)
    return np.clip(((weights - low) / (high - low) * WIDTH_BINS).astype(int), 0, WIDTH_BINS - 1)


def _segments(edges: Sequence[Sequence[Any]], pos: Mapping[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """x and y of ``edges`` as one polyline with a gap (NaN, null in JSON) after each edge."""
    n = len(edges)
    x = np.full(3 * n, np.nan)
    y = np.full(3 * n, np.nan)
    for i, edge in enumerate(edges):
        (x0, y0), (x1, y1) = pos[edge[0]], pos[edge[1]]
        x[3 * i], x[3 * i + 1], y[3 * i], y[3 * i + 1] = x0, x1, y0, y1
    return x, y


def topic_figure(view: Mapping[str, Any], pos: Mapping[str, tuple[float, float]], agents: Sequence[Mapping[str, Any]],
                 scale: tuple[float, float]) -> dict[str, Any]:
    """The figure of one topic (``view`` from :func:`.data.topic_view`) as plotly JSON data.

    Traces, in order: the edge width bins (``meta: "edge-lines"``), the edge midpoints
    (``meta: "edges"``, ``customdata``: index into ``view["edges"]``) and the agents
    (``meta: "agents"``, ``customdata``: names). Names reach plotly HTML-escaped: plotly reads
    a few tags in labels, so ``<b>`` in a name must show as ``<b>``, not bold.
    """
    import plotly.graph_objects as go

    edges = view["edges"]
    gl = len(edges) > WEBGL_EDGES
    fig = go.Figure()
    alpha = max(_MIN_ALPHA, min(_ALPHA, _ALPHA * (_SPARSE / max(len(edges), 1)) ** 0.5))
    edge_color = f"rgba(110, 110, 110, {alpha:.3f})"
    weights = np.array([e[2] for e in edges], dtype=float)
    bins = _bins(weights, *scale)
    for b in range(WIDTH_BINS):
        chosen = [e for e, k in zip(edges, bins) if k == b]
        if not chosen:
            continue
        x, y = _segments(chosen, pos)
        width = MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * (b + 0.5) / WIDTH_BINS
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"width": round(width, 2), "color": edge_color},
                              hoverinfo="skip", showlegend=False, meta="edge-lines", name=f"edges {b + 1}"))
    if edges:
        mid = np.array([[(pos[e[0]][0] + pos[e[1]][0]) / 2, (pos[e[0]][1] + pos[e[1]][1]) / 2] for e in edges])
        hover = [f"{html.escape(e[0])} – {html.escape(e[1])}<br>value {e[2]:.3f} · {e[3]} conversation"
                 f"{'s' if e[3] != 1 else ''}<br><i>click to read</i>" for e in edges]
        midpoints = go.Scattergl if gl else go.Scatter
        fig.add_trace(midpoints(x=mid[:, 0].round(4), y=mid[:, 1].round(4), mode="markers",
                                customdata=list(range(len(edges))), hovertext=hover, hoverinfo="text", meta="edges",
                                name="edges", showlegend=False, marker={"size": 7 if gl else 11, "color": "rgba(0, 0, 0, 0)"}))
    names = [a["name"] for a in agents if a["name"] in view["colors"]]
    team = view["membership"]
    labelled = len(names) <= LABELLED_AGENTS
    node_hover = [f"<b>{html.escape(n)}</b><br>"
                  + (f"team {team[n]}" if n in team else "alone") + "<br><i>click for details</i>" for n in names]
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], customdata=names,
        mode="markers+text" if labelled else "markers", text=[html.escape(n) for n in names],
        textposition="top center", textfont={"size": 12}, hovertext=node_hover, hoverinfo="text",
        meta="agents", name="agents", showlegend=False,
        marker={"size": 16 if labelled else 10, "color": [view["colors"][n] for n in names],
                "line": {"width": 1.5, "color": "#ffffff"}}))
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    pad_x = 0.12 * (max(xs) - min(xs) or 1.0)
    pad_y = 0.12 * (max(ys) - min(ys) or 1.0)
    fig.update_layout(
        margin={"l": 8, "r": 8, "t": 8, "b": 8}, hovermode="closest", clickmode="event", dragmode="pan",
        showlegend=False, plot_bgcolor="#ffffff", paper_bgcolor="#ffffff", uirevision="graph",
        xaxis={"visible": False, "range": [min(xs) - pad_x, max(xs) + pad_x]},
        yaxis={"visible": False, "range": [min(ys) - pad_y, max(ys) + pad_y]},
        hoverlabel={"align": "left"}, font={"family": "system-ui, sans-serif"},
    )
    import json

    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False, engine="json"))  # numpy -> lists, NaN gaps -> null
