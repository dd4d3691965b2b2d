"""Matplotlib figures of language-model graphs, used by the CLI and the notebooks.

Every function takes plain inputs (a :class:`Partition`, a relationship-value DataFrame, a
:class:`Conversation`, an evaluation table) and an optional ``ax``; functions that draw on one axes
return it (its figure is ``ax.figure``), :func:`plot_topic_grid` returns its figure. Drawing is
deterministic: sorted node order, seeded layouts, PCA without randomness, and :func:`save_figure`
writes PNG and SVG without dates, so the same inputs give the same files.

A sketch (``result`` from :func:`teamgraph.pipeline.run`)::

    fig = plot_topic_grid(result.partitions)
    save_figure(fig, "out/topics", formats=("png", "svg"))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib
import matplotlib.figure
import matplotlib.lines
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle

from .communities import Partition
from .conversations import Conversation
from .errors import InputError

__all__ = ["EVALUATION_COLUMNS", "aligned_team_colors", "community_colors", "graph_layout", "plot_graph",
           "plot_topic_grid", "plot_value_heatmap", "plot_trajectory", "plot_evaluation", "save_figure", "slug",
           "pick_trajectories", "write_figures"]

_PALETTE = plt.get_cmap("tab10").colors
_ISOLATE = (0.7, 0.7, 0.7)
_EDGE_GREY = "#888888"
#: Column names ``plot_evaluation`` accepts for each role, first match wins (case-insensitive).
EVALUATION_COLUMNS: dict[str, tuple[str, ...]] = {
    "group": ("group", "benchmark", "benchmark_group", "dataset", "task"),
    "team": ("team", "name", "label", "baseline"),
    "protocol": ("protocol", "method"),
    "accuracy": ("accuracy", "acc", "score", "mean_accuracy", "mean"),
    "std": ("std", "accuracy_std", "sd", "stdev", "stderr", "error"),
}


# -- colours and layout ------------------------------------------------------------------------

def _as_partition_and_graph(obj: Partition | nx.Graph) -> tuple[Partition | None, nx.Graph]:
    if isinstance(obj, Partition):
        return obj, obj.graph
    if isinstance(obj, nx.Graph):
        return None, obj
    raise InputError(f"expected a Partition or a networkx Graph, got {type(obj).__name__}")


def aligned_team_colors(partition: Partition, reference: Partition | None = None) -> list[int]:
    """Palette index of each team of ``partition``, matched to ``reference``'s teams by overlap.

    Without a reference, team i gets colour i. With one, each team takes the colour of the reference
    team it shares the most members with (greedy, largest overlap first; ties by team order), so
    the same group of agents keeps its colour across the panels of a topic grid.
    """
    teams = partition.teams
    if reference is None:
        return list(range(len(teams)))
    ref = [set(t) for t in reference.teams]
    pairs = sorted(
        ((-len(set(t) & r), i, j) for i, t in enumerate(teams) for j, r in enumerate(ref) if set(t) & r),
    )
    assigned: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in pairs:
        if i not in assigned and j not in used:
            assigned[i] = j
            used.add(j)
    free = (k for k in range(len(teams) + len(ref)) if k not in used)
    return [assigned[i] if i in assigned else next(free) for i in range(len(teams))]


def community_colors(partition: Partition, reference: Partition | None = None) -> dict[str, Any]:
    """One colour per team (tab10), grey for isolates; see :func:`aligned_team_colors` for ``reference``."""
    colors: dict[str, Any] = {}
    for members, index in zip(partition.teams, aligned_team_colors(partition, reference)):
        for name in members:
            colors[name] = _PALETTE[index % len(_PALETTE)]
    for name in partition.isolates:
        colors[name] = _ISOLATE
    return colors


def _sorted_edges(graph: nx.Graph) -> list[tuple[str, str, float]]:
    return sorted((min(u, v), max(u, v), float(d.get("weight", 1.0))) for u, v, d in graph.edges(data=True))


def graph_layout(graph: nx.Graph | Iterable[nx.Graph], seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic spring layout (sorted nodes, fixed seed) to share across figures.

    Given several graphs (e.g. one per topic), the layout is that of their union with summed edge
    weights, so every panel of a small-multiples figure puts each agent at the same place.
    """
    graphs = [graph] if isinstance(graph, nx.Graph) else list(graph)
    merged = nx.Graph()
    merged.add_nodes_from(sorted({n for g in graphs for n in g.nodes}))
    total: dict[tuple[str, str], float] = {}
    for g in graphs:
        for u, v, w in _sorted_edges(g):
            total[(u, v)] = total.get((u, v), 0.0) + w
    merged.add_weighted_edges_from((u, v, w) for (u, v), w in sorted(total.items()))
    if merged.number_of_nodes() == 0:
        return {}
    return {n: np.asarray(p) for n, p in nx.spring_layout(merged, weight="weight", seed=seed).items()}


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


# -- the language-model graph ------------------------------------------------------------------

def plot_graph(
    partition: Partition | nx.Graph,
    ax: Any = None,
    pos: Mapping[str, Any] | None = None,
    title: str | None = None,
    colors: Mapping[str, Any] | None = None,
    legend: bool = True,
    node_size: float = 900,
) -> Any:
    """Draw the language-model graph: nodes coloured by community, edge width by weight.

    Widths grow linearly from the weakest to the strongest edge drawn; edges inside a team take
    the team's colour, edges between teams are grey. ``pos`` (see :func:`graph_layout`) fixes the
    layout; ``colors`` maps agent -> colour (default :func:`community_colors`). A bare graph (no
    partition) is drawn in grey. Returns the axes.
    """
    part, graph = _as_partition_and_graph(partition)
    ax = _new_axes(ax, (6, 5))
    pos = dict(pos) if pos is not None else graph_layout(graph)
    missing = sorted(set(graph.nodes) - set(pos))
    if missing:
        raise InputError(f"layout has no position for agent(s): {', '.join(missing)}")
    if colors is None:
        colors = community_colors(part) if part is not None else {n: _ISOLATE for n in graph.nodes}
    nodes = sorted(graph.nodes)
    edges = _sorted_edges(graph)
    if edges:
        w = np.array([e[2] for e in edges])
        span = w.max() - w.min()
        widths = 0.8 + 4.2 * ((w - w.min()) / span if span > 0 else np.ones_like(w))
        member = part.membership() if part is not None else {}
        edge_colors = [
            colors[u] if part is not None and member[u] == member[v] and colors[u] != _ISOLATE else _EDGE_GREY
            for u, v, _ in edges
        ]
        nx.draw_networkx_edges(graph, pos, edgelist=[(u, v) for u, v, _ in edges], ax=ax, width=list(widths),
                               edge_color=edge_colors, alpha=0.6)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=[colors[n] for n in nodes], node_size=node_size,
                           ax=ax, edgecolors="black", linewidths=0.6)
    nx.draw_networkx_labels(graph, pos, labels={n: n for n in nodes}, ax=ax, font_size=8)
    if title is None:
        topic = graph.graph.get("topic", "")
        if part is not None:
            title = (f"{topic}: {len(part.teams)} team(s), Q={part.modularity:.2f}, "
                     f"stability={part.stability:.2f}")
        else:
            title = str(topic)
    ax.set_title(title, fontsize=10)
    if legend and part is not None and (part.teams or part.isolates):
        handles = [Patch(facecolor=colors[t[0]], edgecolor="black", label=f"team {i} ({len(t)})")
                   for i, t in enumerate(part.teams)]
        if part.isolates:
            handles.append(Patch(facecolor=_ISOLATE, edgecolor="black", label=f"alone ({len(part.isolates)})"))
        ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False)
    ax.margins(0.15)
    ax.set_axis_off()
    return ax


def plot_topic_grid(
    partitions: Mapping[str, Partition],
    ncols: int | None = None,
    pos: Mapping[str, Any] | None = None,
    seed: int = 0,
    panel_size: tuple[float, float] = (4.2, 4.0),
) -> Any:
    """Small multiples: one roster's graph under each topic, all with the SAME layout and colours.

    Panels follow the order of ``partitions`` (e.g. ``{"general": ..., "mathematics": ...}``). The
    shared layout is that of the union of the graphs (:func:`graph_layout`); team colours are
    matched to the first panel's teams, so a group that stays together keeps its colour.
    Returns the figure.
    """
    if not partitions:
        raise InputError("plot_topic_grid needs at least one partition")
    topics = list(partitions)
    for t in topics:
        if not isinstance(partitions[t], Partition):
            raise InputError(f"partitions['{t}'] is a {type(partitions[t]).__name__}, not a Partition")
    n = len(topics)
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             layout="constrained", squeeze=False)
    pos = dict(pos) if pos is not None else graph_layout([partitions[t].graph for t in topics], seed=seed)
    reference = partitions[topics[0]]
    for ax, topic in zip(axes.flat, topics):
        part = partitions[topic]
        colors = community_colors(part, reference=None if part is reference else reference)
        plot_graph(part, ax=ax, pos=pos, colors=colors,
                   title=f"{topic}\nQ={part.modularity:.2f}, stability={part.stability:.2f}")
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    return fig


# -- relationship values -----------------------------------------------------------------------

def _value_matrix(values: pd.DataFrame | nx.Graph | Partition, topic: str | None) -> tuple[dict, str]:
    """(pair -> weight, metric name) from a relationship-value table, a graph or a partition."""
    if isinstance(values, Partition):
        values = values.graph
    if isinstance(values, nx.Graph):
        return {(u, v): w for u, v, w in _sorted_edges(values)}, values.graph.get("metric", "weight")
    if not isinstance(values, pd.DataFrame):
        raise InputError(f"expected relationship values (DataFrame) or a graph, got {type(values).__name__}")
    from .scoring import topic_values

    frame = topic_values(values, topic)
    pairs = {(a, b): float(w) for a, b, w in zip(frame["agent_a"], frame["agent_b"], frame["weight"])}
    return pairs, frame.attrs.get("metric", "weight")


def plot_value_heatmap(
    values: pd.DataFrame | nx.Graph | Partition,
    partition: Partition | None = None,
    topic: str | None = None,
    ax: Any = None,
    annotate: bool | None = None,
    cmap: str = "viridis",
) -> Any:
    """Heatmap of relationship values between every two agents, ordered by community.

    ``values`` is a relationship-value DataFrame (as :func:`teamgraph.relationship_values` returns;
    ``topic`` picks one topic, None averages all of them), or a graph / partition (its edge weights;
    edges removed by the threshold show as blank cells). With a ``partition`` rows follow its
    communities (largest first) and each team is outlined. Cells carry their value when there are at
    most 10 agents (``annotate``). Returns the axes.
    """
    pairs, metric = _value_matrix(values, topic)
    names = sorted({n for pair in pairs for n in pair})
    if isinstance(values, (nx.Graph, Partition)):
        graph = values.graph if isinstance(values, Partition) else values
        names = sorted(set(names) | set(graph.nodes))
    if partition is not None:
        in_partition = [n for c in partition.communities for n in c]
        order = in_partition + sorted(set(names) - set(in_partition))
    else:
        order = names
    if not order:
        raise InputError("no relationship values to draw")
    index = {n: i for i, n in enumerate(order)}
    matrix = np.full((len(order), len(order)), np.nan)
    for (a, b), w in pairs.items():
        if a in index and b in index:
            matrix[index[a], index[b]] = matrix[index[b], index[a]] = w
    n = len(order)
    ax = _new_axes(ax, (max(4.5, 0.5 * n + 2.5), max(4.0, 0.5 * n + 1.8)))
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#f0f0f0")
    finite = matrix[np.isfinite(matrix)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(n), order, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), order, fontsize=8)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label=metric)
    if annotate is None:
        annotate = n <= 10
    if annotate:
        mid = (vmin + vmax) / 2
        for i in range(n):
            for j in range(n):
                if np.isfinite(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] < mid else "black")
    if partition is not None:
        colors = community_colors(partition)
        start = 0
        for members in partition.communities:
            size = len(members)
            if size >= 2:
                ax.add_patch(Rectangle((start - 0.5, start - 0.5), size, size, fill=False,
                                       edgecolor=colors[members[0]], linewidth=2.5, clip_on=False))
            start += size
    if topic is None and isinstance(values, (nx.Graph, Partition)):
        topic = (values.graph if isinstance(values, Partition) else values).graph.get("topic")
    ax.set_title(f"relationship values ({topic or 'all topics'})", fontsize=10)
    return ax


# -- one conversation --------------------------------------------------------------------------

def plot_trajectory(
    conversation: Conversation,
    embedder: Any = None,
    ax: Any = None,
    embeddings: np.ndarray | None = None,
    annotate: bool = True,
) -> Any:
    """The path of one conversation through embedding space, projected to 2-D with PCA.

    Each utterance is embedded (``embedder``: a :class:`teamgraph.Embedder`, a model name, an object
    with ``encode``, or None for the default; or pass ``embeddings``, one row per utterance),
    projected onto the first two principal components of this conversation, coloured by speaker,
    joined by arrows in the order spoken and labelled with its turn number (1-based). PCA rescales
    every conversation, so the title gives the mean cosine of consecutive (shown) turns, comparable
    across conversations. Empty or failed utterances are left out and named in the title. Returns the axes.
    """
    if not isinstance(conversation, Conversation):
        raise InputError(f"expected a Conversation, got {type(conversation).__name__}")
    utterances = list(conversation.utterances)
    if embeddings is None:
        from .embedding import as_embedder

        embeddings = as_embedder(embedder).encode([u.text if u.status == "ok" else "" for u in utterances])
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or len(e) != len(utterances):
        raise InputError(f"conversation {conversation.id}: {len(utterances)} utterances but embeddings of shape {e.shape}")
    keep = [i for i, u in enumerate(utterances) if u.status == "ok" and u.text.strip() and np.linalg.norm(e[i]) > 0]
    if not keep:
        raise InputError(f"conversation {conversation.id}: no non-empty utterance to plot")
    points = np.zeros((len(keep), 2))
    explained = [0.0, 0.0]
    if len(keep) >= 2:
        from sklearn.decomposition import PCA

        k = min(2, len(keep), e.shape[1])
        pca = PCA(n_components=k, svd_solver="full")
        with np.errstate(invalid="ignore", divide="ignore"):  # identical turns: zero variance, ratio 0/0
            points[:, :k] = pca.fit_transform(e[keep])
        explained[:k] = [float(x) for x in np.nan_to_num(pca.explained_variance_ratio_)]
    ax = _new_axes(ax, (6, 5))
    speakers = [conversation.agent_a, conversation.agent_b]
    speaker_color = {s: _PALETTE[i] for i, s in enumerate(speakers)}
    ax.plot(points[:, 0], points[:, 1], color="#bbbbbb", linewidth=1, zorder=1)
    for p, q in zip(points[:-1], points[1:]):
        ax.annotate("", xy=q, xytext=p, arrowprops=dict(arrowstyle="-|>", color="#888888", lw=1.0,
                                                        shrinkA=7, shrinkB=7), zorder=2)
    for s in speakers:
        rows = [r for r, i in enumerate(keep) if utterances[i].speaker == s]
        ax.scatter(points[rows, 0], points[rows, 1], s=90, color=speaker_color[s], edgecolors="black",
                   linewidths=0.5, label=s, zorder=3)
    if annotate:
        for r, i in enumerate(keep):
            ax.annotate(str(i + 1), points[r], textcoords="offset points", xytext=(6, 6), fontsize=8, zorder=4)
    skipped = [i + 1 for i in range(len(utterances)) if i not in set(keep)]
    title = f"{conversation.agent_a} × {conversation.agent_b} on {conversation.topic}"
    if len(keep) >= 2:  # PCA rescales each conversation: the cosines say how close the hops really are
        unit = e[keep] / np.linalg.norm(e[keep], axis=1, keepdims=True)
        title += f"\nmean cosine of consecutive turns {np.mean(np.sum(unit[:-1] * unit[1:], axis=1)):.2f}"
    if skipped:
        title += f"\n(turn(s) {', '.join(map(str, skipped))} empty, not shown)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)", fontsize=9)
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)", fontsize=9)
    ax.legend(title="speaker", fontsize=8, title_fontsize=8, loc="best")
    ax.margins(0.15)
    ax.tick_params(labelsize=7)
    return ax


# -- evaluation --------------------------------------------------------------------------------

def _find_column(table: pd.DataFrame, role: str, given: str | None) -> str | None:
    if given is not None:
        if given not in table.columns:
            raise InputError(f"evaluation table has no column '{given}' (columns: {', '.join(map(str, table.columns))})")
        return given
    lower = {str(c).lower(): c for c in table.columns}
    for alias in EVALUATION_COLUMNS[role]:
        if alias in lower:
            return lower[alias]
    return None


def plot_evaluation(
    table: pd.DataFrame,
    ax: Any = None,
    group: str | None = None,
    team: str | None = None,
    accuracy: str | None = None,
    std: str | None = None,
    protocol: str | None = None,
    protocols: Sequence[str] | None = None,
    chance: float | Mapping[str, float] | None = None,
) -> Any:
    """Bar chart of accuracy per team and baseline, one block of bars per benchmark group, with error bars.

    ``table`` has one row per (group, team[, protocol]), e.g. the ``scores`` of
    :func:`teamgraph.evaluation.runner.evaluate` or a hand-made frame. Columns are found by name (the
    first of each list in :data:`EVALUATION_COLUMNS`, case-insensitive) unless given:

    - ``group`` / ``benchmark`` (optional: one block when absent);
    - ``team`` / ``name`` / ``label`` / ``baseline`` (required); a ``kind`` column (community, random,
      curated, single, ...) prefixes the label and picks the colour;
    - ``protocol`` (optional): the rows drawn are those in ``protocols``; by default, when the table
      has ``majority`` rows, each team's majority row (or its only row, e.g. the best single agent),
      otherwise every row, labelled ``team (protocol)`` when protocols differ;
    - ``accuracy`` / ``acc`` / ``score`` (required) and ``std`` / ``accuracy_std`` (optional: error
      bars where finite, e.g. the spread of random teams).

    Bars keep the table's row order. ``chance`` draws a dashed line (a number, or one per group).
    Returns the axes.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise InputError("plot_evaluation needs a non-empty DataFrame")
    acc_col = _find_column(table, "accuracy", accuracy)
    team_col = _find_column(table, "team", team)
    if acc_col is None or team_col is None:
        raise InputError("evaluation table needs a team and an accuracy column "
                         f"(columns: {', '.join(map(str, table.columns))})")
    group_col = _find_column(table, "group", group)
    std_col = _find_column(table, "std", std)
    proto_col = _find_column(table, "protocol", protocol)
    kind_col = next((c for c in table.columns if str(c).lower() == "kind" and c != team_col), None)
    frame = table.reset_index(drop=True).copy()
    frame["_group"] = frame[group_col].astype(str) if group_col is not None else "all"
    frame["_label"] = frame[team_col].astype(str)
    if kind_col is not None:
        kinds = frame[kind_col].astype(str)
        sources = frame["source"].fillna("").astype(str) if "source" in frame else pd.Series("", index=frame.index)
        # "curated" + source "math" -> "curated math: Ada+Euler" (the runner's curated teams name their label)
        prefix = [("" if k.lower() in t.lower() else f"{k} {src}: " if k == "curated" and src else f"{k}: ")
                  for k, t, src in zip(kinds, frame["_label"], sources)]
        frame["_label"] = pd.Series(prefix, index=frame.index) + frame["_label"]
        frame["_color"] = kinds
    else:
        frame["_color"] = frame["_label"]
    if proto_col is not None:
        proto = frame[proto_col].astype(str)
        if protocols is not None:
            frame = frame[proto.isin([str(p) for p in protocols])]
            if frame.empty:
                raise InputError(f"no rows with protocol(s) {', '.join(map(str, protocols))}")
        elif (proto == "majority").any():
            keep = frame.assign(_majority=proto == "majority").sort_values("_majority", ascending=False, kind="stable")
            first = keep.drop_duplicates(["_group", "_label"]).index
            frame = frame.loc[sorted(first)]
        if frame[proto_col].nunique(dropna=True) > 1 and frame.duplicated(["_group", "_label"]).any():
            frame["_label"] = frame["_label"] + " (" + frame[proto_col].astype(str) + ")"
    acc = pd.to_numeric(frame[acc_col], errors="coerce").to_numpy(dtype=float)
    err = (pd.to_numeric(frame[std_col], errors="coerce").to_numpy(dtype=float) if std_col is not None
           else np.full(len(frame), np.nan))
    groups = list(dict.fromkeys(frame["_group"]))
    color_keys = list(dict.fromkeys(frame["_color"]))
    color_of = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(color_keys)}
    x, ticks, labels, spans = [], [], [], []
    pos = 0.0
    for g in groups:
        rows = np.flatnonzero((frame["_group"] == g).to_numpy())
        spans.append((g, pos, pos + len(rows) - 1))
        for r in rows:
            x.append(pos)
            ticks.append(pos)
            labels.append(frame["_label"].iloc[r])
            pos += 1
        pos += 0.8  # gap between groups
    order = np.concatenate([np.flatnonzero((frame["_group"] == g).to_numpy()) for g in groups])
    x = np.asarray(x)
    heights, errors = acc[order], err[order]
    colors = [color_of[frame["_color"].iloc[r]] for r in order]
    ax = _new_axes(ax, (max(6.0, 2.0 + 0.45 * len(x) + 0.4 * len(groups)), 4.8))
    ax.bar(x, np.nan_to_num(heights), width=0.8, color=colors, edgecolor="black", linewidth=0.4)
    has_err = np.isfinite(errors) & np.isfinite(heights)
    if has_err.any():
        ax.errorbar(x[has_err], heights[has_err], yerr=errors[has_err], fmt="none", ecolor="black",
                    elinewidth=1, capsize=3)
    finite = heights[np.isfinite(heights)]
    top = 1.0 if finite.size and finite.min() >= 0 and finite.max() <= 1 else None
    if top is not None:
        ax.set_ylim(0, 1.08)
    for g, lo, hi in spans:
        ax.text((lo + hi) / 2, 0.99, g, ha="center", va="top", fontsize=9, transform=ax.get_xaxis_transform())
        level = chance.get(g) if isinstance(chance, Mapping) else chance
        if level is not None:
            ax.hlines(level, lo - 0.45, hi + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xticks(ticks, labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(str(acc_col))
    ax.set_title("team accuracy against baselines", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if len(color_keys) > 1 and kind_col is not None:
        handles = [Patch(facecolor=color_of[k], edgecolor="black", label=k) for k in color_keys]
        if chance is not None:
            handles.append(matplotlib.lines.Line2D([], [], color="black", linestyle="dashed", label="chance"))
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


# -- files -------------------------------------------------------------------------------------

def save_figure(fig: Any, path: str | Path, formats: Sequence[str] = ("png",), dpi: int = 120) -> list[Path]:
    """Save ``fig`` under ``path`` with each suffix in ``formats``; closes the figure.

    The image is exactly the figure's size (``fig.get_size_inches() * dpi`` pixels for PNG), and
    PNG, SVG and PDF files carry no date or random ids, so equal figures give equal bytes.
    """
    if hasattr(fig, "figure") and not isinstance(fig, matplotlib.figure.Figure):
        fig = fig.figure  # an axes was given
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    no_dates = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    with plt.rc_context({"svg.hashsalt": "teamgraph", "svg.fonttype": "path"}):
        for fmt in formats:
            known = path.suffix.lstrip(".").lower() in no_dates  # "fig.png" -> fig.svg; "graph_v1.5" -> graph_v1.5.svg
            target = path.with_suffix("." + fmt) if known else path.with_name(f"{path.name}.{fmt}")
            fig.savefig(target, dpi=dpi, format=fmt, metadata=no_dates.get(fmt))
            written.append(target)
    plt.close(fig)
    return written


def slug(text: str) -> str:
    """A file-name-safe form of a topic or agent name."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text).lower())[:60] or "topic"


def pick_trajectories(conversations: Sequence[Conversation], n: int) -> list[Conversation]:
    """The first ``n`` conversations by (pair, topic, id): one pair under each topic comes first."""
    usable = [c for c in conversations if any(u.status == "ok" and u.text.strip() for u in c.utterances)]
    return sorted(usable, key=lambda c: (c.pair, c.topic, c.id or ""))[:max(n, 0)]


def write_figures(
    out_dir: str | Path,
    partitions: Mapping[str, Partition],
    values: pd.DataFrame | None = None,
    conversations: Sequence[Conversation] = (),
    embedder: Any = None,
    evaluation: pd.DataFrame | None = None,
    formats: Sequence[str] = ("png", "svg"),
    n_trajectories: int = 3,
    dpi: int = 120,
    seed: int = 0,
) -> list[Path]:
    """Write every figure of a run into ``out_dir``; returns the files written.

    - ``graph_<topic>``: each topic's graph (one shared layout, so agents stay in place);
    - ``topics``: the small multiples of all topics (when there are two or more besides ``all``);
    - ``heatmap_<topic>``: relationship values ordered by that topic's communities;
    - ``trajectory_<a>_<b>_<topic>``: the first ``n_trajectories`` conversations (:func:`pick_trajectories`);
    - ``evaluation``: the evaluation chart, when an ``evaluation`` table is given.
    """
    if not partitions:
        raise InputError("no graphs to draw")
    out = Path(out_dir)
    files: list[Path] = []
    pos = graph_layout([p.graph for p in partitions.values()], seed=seed)
    for topic, part in partitions.items():
        fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
        plot_graph(part, ax=ax, pos=pos)
        files += save_figure(fig, out / f"graph_{slug(topic)}", formats, dpi)
    per_topic = {t: p for t, p in partitions.items() if t != "all"}
    if len(per_topic) >= 2:
        files += save_figure(plot_topic_grid(per_topic, pos=pos), out / "topics", formats, dpi)
    for topic, part in partitions.items():
        source = values if values is not None else part
        ax = plot_value_heatmap(source, part, topic=topic if values is not None else None)
        files += save_figure(ax.figure, out / f"heatmap_{slug(topic)}", formats, dpi)
    for conv in pick_trajectories(list(conversations), n_trajectories):
        ax = plot_trajectory(conv, embedder=embedder)
        name = f"trajectory_{slug(conv.pair[0])}_{slug(conv.pair[1])}_{slug(conv.topic)}"
        if any(f.stem == name for f in files):
            name += f"_{slug(conv.id or '')[:8]}"
        files += save_figure(ax.figure, out / name, formats, dpi)
    if evaluation is not None:
        files += save_figure(plot_evaluation(evaluation).figure, out / "evaluation", formats, dpi)
    return files
