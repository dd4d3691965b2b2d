"""Matplotlib figures of language-model graphs, used by the CLI and the notebooks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np

from .communities import Partition

_PALETTE = plt.get_cmap("tab10").colors


def community_colors(partition: Partition) -> dict[str, Any]:
    """One colour per team (tab10), grey for isolates."""
    colors = {}
    for i, members in enumerate(partition.teams):
        for name in members:
            colors[name] = _PALETTE[i % len(_PALETTE)]
    for name in partition.isolates:
        colors[name] = (0.7, 0.7, 0.7)
    return colors


def graph_layout(graph: nx.Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic spring layout (sorted nodes, fixed seed) to share across figures."""
    ordered = nx.Graph()
    ordered.add_nodes_from(sorted(graph.nodes))
    ordered.add_weighted_edges_from(sorted((min(u, v), max(u, v), d["weight"]) for u, v, d in graph.edges(data=True)))
    return nx.spring_layout(ordered, weight="weight", seed=seed)


def plot_graph(
    partition: Partition,
    ax: Any = None,
    pos: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Any:
    """Draw the partition's graph: nodes coloured by community, edge width by weight."""
    graph = partition.graph
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    pos = pos or graph_layout(graph)
    colors = community_colors(partition)
    nodes = sorted(graph.nodes)
    weights = np.array([d["weight"] for _, _, d in graph.edges(data=True)])
    widths = 0.5 + 4.0 * (weights / weights.max()) if len(weights) and weights.max() > 0 else []
    nx.draw_networkx_edges(graph, pos, ax=ax, width=list(widths), alpha=0.5, edge_color="#555555")
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=[colors[n] for n in nodes], node_size=600, ax=ax,
                           edgecolors="black", linewidths=0.5)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=9)
    ax.set_title(title or f"{graph.graph.get('topic', '')}: Q={partition.modularity:.2f}, stability={partition.stability:.2f}")
    ax.set_axis_off()
    return ax


def save_figure(fig: Any, path: str | Path, formats: Sequence[str] = ("png",), dpi: int = 120) -> list[Path]:
    """Save ``fig`` under ``path`` with each suffix in ``formats``; closes the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = path.with_suffix("." + fmt)
        fig.savefig(target, dpi=dpi, bbox_inches="tight", metadata={"Software": None} if fmt == "png" else None)
        written.append(target)
    plt.close(fig)
    return written
