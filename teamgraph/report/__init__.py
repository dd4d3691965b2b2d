"""An interactive report a person opens in a browser: the graph of every topic, its teams, and the
conversations behind every edge, in one self-contained HTML file (docs/report.md).

plotly.js (from the installed ``plotly`` package) draws the graphs; the page works offline from
``file://``, fetches nothing and shows every name and utterance as text.

A sketch (``result`` from :func:`teamgraph.pipeline.run`)::

    page = build_report(result.partitions, result.conversations, result.values, agents=config.agents)
    page.write("out/demo/report.html")
    page                                             # in a notebook: the same view, inline
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..communities import Partition
from ..conversations import Conversation
from ..errors import InputError
from .data import (agents_from_records, evaluation_view, find_evaluation, read_scores, report_document)
from .figures import shared_layout, topic_figure, width_scale
from .page import packed_json, read_page_data, render_html, script_json

__all__ = ["ReportPage", "build_report", "write_report", "report_document", "agents_from_records", "evaluation_view",
           "find_evaluation", "read_scores", "render_html", "script_json", "packed_json", "read_page_data"]


@dataclass(frozen=True)
class ReportPage:
    """A rendered report: ``html`` is the whole page; in a notebook it shows inline (in an iframe)."""

    html: str

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (atomically: a reader never sees half a file)."""
        path = Path(path)
        if path.is_dir():
            raise InputError(f"{path}: is a folder; give the report's file name, e.g. {path / 'report.html'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(self.html, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:1100px;border:0" '
                'sandbox="allow-scripts"></iframe>')


def build_report(
    partitions: Mapping[str, Partition],
    conversations: Iterable[Conversation] = (),
    values: pd.DataFrame | None = None,
    *,
    agents: Any = None,
    evaluation: pd.DataFrame | Mapping[str, Any] | None = None,
    evaluation_source: str | Path | None = None,
    title: str = "teamgraph report",
    source: str | None = None,
    embedder: str | None = None,
    seed: int = 0,
) -> ReportPage:
    """The report of ``partitions``: one self-contained HTML page (see docs/report.md).

    Parameters
    ----------
    partitions : mapping of str to Partition
        Topic -> partition, e.g. ``run(config).partitions`` (with significance and label agreement
        when they were tested); every topic is drawn on one layout.
    conversations : iterable of Conversation, optional
        The conversations behind the edges (the page keeps those of drawn edges and listed partners).
    values : pandas.DataFrame, optional
        The relationship values behind the graphs (each agent's strongest partners).
    agents : Roster, Agent objects or mapping of name to settings, optional
        Model, persona, backend, format and labels of each agent (the graphs' node attributes first).
    evaluation : pandas.DataFrame or mapping, optional
        The tidy scores of ``teamgraph evaluate`` (its ``scores.csv``) or a view from :func:`evaluation_view`.
    evaluation_source : str or Path, optional
        Where the scores came from (an ``accuracy.png`` beside it is the chart).
    title, source : str, optional
        The page's title, and a line saying what it was made from.
    embedder : str, optional
        The embedder id shown (default: the one recorded with ``values``).
    seed : int, default 0
        Seed of the shared spring layout.

    Returns
    -------
    ReportPage
        ``.html`` is the page; ``.write(path)`` saves it; a notebook shows it inline.

    Examples
    --------
    >>> import networkx as nx
    >>> from teamgraph import find_communities
    >>> graph = nx.Graph([("ada", "bob", {"weight": 2.0}), ("cleo", "dan", {"weight": 1.0})])
    >>> page = build_report({"general": find_communities(graph, n_seeds=2)}, title="<demo>")
    >>> page.html.startswith("<!DOCTYPE html>"), "<title>&lt;demo&gt;</title>" in page.html
    (True, True)
    >>> [t["members"] for t in read_page_data(page.html)["views"]["general"]["teams"]]
    [['ada', 'bob'], ['cleo', 'dan']]
    """
    if isinstance(evaluation, pd.DataFrame):
        evaluation = evaluation_view(evaluation, evaluation_source)
    document = report_document(partitions, conversations, values, agents=agents, evaluation=evaluation, title=title,
                               source=source, embedder=embedder)
    from ..exports import json_safe

    document = {**json_safe({k: v for k, v in document.items() if k != "views"}),
                "views": {t: json_safe(v) for t, v in document["views"].items()}}  # NaN -> null, numpy -> plain
    pos = shared_layout(partitions, seed=seed)
    scale = width_scale(document["views"])
    for view in document["views"].values():
        view["figure"] = topic_figure(view, pos, document["agents"], scale)
    return ReportPage(render_html(document))


def write_report(path: str | Path, partitions: Mapping[str, Partition], conversations: Iterable[Conversation] = (),
                 values: pd.DataFrame | None = None, **kwargs: Any) -> Path:
    """:func:`build_report` written to ``path``.

    Parameters
    ----------
    path : str or Path
        The HTML file to write (its folder is made when missing).
    partitions, conversations, values, **kwargs
        As for :func:`build_report`.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    ``result`` from :func:`teamgraph.pipeline.run`::

        write_report("out/report.html", result.partitions, result.conversations, result.values)
    """
    return build_report(partitions, conversations, values, **kwargs).write(path)
