"""What the report shows, as one plain JSON-able document: per topic the graph, its teams and how much
to trust them, the conversations behind every edge, the agents, and the evaluation when there is one.

Everything here reads results the pipeline already made (partitions, relationship values,
conversations, the evaluation's ``scores.csv``); the only new work is arranging them for the page.
"""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx
import pandas as pd

from .._version import __version__
from ..communities import Partition
from ..conversations import Conversation
from ..errors import InputError
from ..teams import teams_document

__all__ = ["SCHEMA", "N_PARTNERS", "agent_records", "agents_from_records", "strongest_partners", "agreement_reading",
           "topic_summary", "topic_view", "conversation_records", "find_evaluation", "read_scores", "evaluation_view",
           "report_document"]

SCHEMA = "teamgraph.report/1"
#: Partners listed per agent in its panel (by relationship value in the topic shown).
N_PARTNERS = 5
_DIGITS = 4  # weights and positions in the page: enough to read, small to ship


def _r(x: Any, digits: int = _DIGITS) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


# -- agents -------------------------------------------------------------------------------------

def agent_records(partitions: Mapping[str, Partition], agents: Any = None) -> list[dict[str, Any]]:
    """One public record per agent drawn in any topic: name, model, persona, backend, format, labels.

    ``agents`` (a Roster, Agent objects or name -> dict) fills in what the graphs' node attributes do
    not carry; nothing named like a key is kept.
    """
    info: dict[str, dict[str, Any]] = {}
    for partition in partitions.values():
        for name, attrs in partition.graph.nodes(data=True):
            info.setdefault(str(name), {}).update(attrs)
    if agents is not None:
        items = agents.items() if isinstance(agents, Mapping) else ((a.name, a.public_dict()) for a in agents)
        for name, attrs in items:
            if str(name) in info:
                info[str(name)] = {**dict(attrs), **info[str(name)]}
    out = []
    for name in sorted(info):
        attrs = info[name]
        labels = attrs.get("labels") or []
        labels = [str(v) for v in (labels if isinstance(labels, (list, tuple)) else [labels])]
        record = {"name": name, "labels": labels}
        for key in ("model", "persona", "backend", "format"):
            value = attrs.get(key)
            record[key] = None if value in (None, "") else str(value)
        out.append(record)
    return out


def agents_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Agent name -> its public settings, from the configs of a store's run records (newest wins)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:  # oldest first
        config = record.get("config") or {}
        for agent in (config.get("agents") or []) if isinstance(config, Mapping) else []:
            if isinstance(agent, Mapping) and agent.get("name"):
                found[str(agent["name"])] = {k: v for k, v in agent.items() if "key" not in str(k).lower()}
    return found


# -- per topic ----------------------------------------------------------------------------------

def _edges(graph: nx.Graph) -> list[tuple[str, str, dict]]:
    return sorted(((min(u, v), max(u, v), d) for u, v, d in graph.edges(data=True)), key=lambda e: (e[0], e[1]))


def strongest_partners(values: pd.DataFrame | None, graph: nx.Graph, topic: str,
                       n: int = N_PARTNERS) -> dict[str, list[list[Any]]]:
    """Agent -> its ``n`` strongest partners ``[name, value, drawn, conversation ids]``, strongest first.

    From the relationship values of ``topic`` (every measured pair, drawn or cut by the threshold)
    when given, else from the graph's edges.
    """
    rows: list[tuple[str, str, float, list[str]]] = []
    if values is not None and len(values):
        from ..scoring import topic_values

        try:
            selected = topic_values(values, graph.graph.get("topic", topic))
        except InputError:  # values of other topics than this graph's: its edges say what is known
            selected = None
        if selected is not None:
            rows = [(r.agent_a, r.agent_b, float(r.weight), list(r.conversation_ids))
                    for r in selected.itertuples(index=False)]
    if not rows:
        rows = [(u, v, float(d.get("weight", 0.0)), list(d.get("conversations", []))) for u, v, d in _edges(graph)]
    by_agent: dict[str, list[tuple[float, str, list[str]]]] = {}
    for a, b, w, ids in rows:
        by_agent.setdefault(a, []).append((w, b, ids))
        by_agent.setdefault(b, []).append((w, a, ids))
    out = {}
    for agent, partners in sorted(by_agent.items()):
        partners.sort(key=lambda p: (-p[0], p[1]))
        out[agent] = [[name, _r(w), graph.has_edge(agent, name), ids] for w, name, ids in partners[:n]]
    return out


def agreement_reading(kind: str | None, ari: float, p_value: float, alpha: float = 0.05) -> str:
    """The label agreement in plain words, e.g. ``the teams follow the family labels``."""
    what = f"the {kind} labels" if kind else "the labels"
    if p_value < alpha and ari >= 0.5:
        return f"the teams follow {what}"
    if p_value < alpha:
        return f"the teams partly follow {what}"
    return f"no evidence that the teams follow {what}"


def topic_summary(partition: Partition, document: Mapping[str, Any]) -> dict[str, Any]:
    """Modularity, stability, the significance verdict and the label agreements of one topic."""
    from ..significance import verdict

    g = partition.graph
    agreements = []
    found = dict(partition.validation_by_kind) or ({None: partition.validation} if partition.validation else {})
    for kind, agreement in sorted(found.items(), key=lambda kv: str(kv[0])):
        agreements.append({"kind": kind, "ari": _r(agreement.ari, 3), "nmi": _r(agreement.nmi, 3),
                           "p_value": _r(agreement.p_value, 4), "nmi_p_value": _r(agreement.nmi_p_value, 4),
                           "summary": agreement.summary(),
                           "reading": agreement_reading(kind, agreement.ari, agreement.p_value)})
    return {
        "n_agents": g.number_of_nodes(), "n_edges": g.number_of_edges(),
        "modularity": _r(partition.modularity, 3), "stability": _r(partition.stability, 3),
        "metric": document.get("metric"), "embedder": document.get("embedder"),
        "threshold": document.get("threshold"), "settings": document.get("partition"),
        "significance": document.get("significance"), "verdict": verdict(partition.significance),
        "agreements": agreements,
    }


def topic_view(topic: str, partition: Partition, colors: Mapping[str, str], values: pd.DataFrame | None,
               embedder: str | None = None) -> dict[str, Any]:
    """Everything the page shows for one topic, except its figure (see :mod:`.figures`)."""
    document = teams_document(partition, embedder=embedder)
    membership = {name: team["id"] for team in document["teams"] for name in team["members"]}
    teams = [{**team, "color": colors[team["members"][0]]} for team in document["teams"]]
    edges = [[u, v, _r(d.get("weight", 1.0)), int(d.get("n_conversations", 1)), list(d.get("conversations", []))]
             for u, v, d in _edges(partition.graph)]
    return {
        "topic": topic,
        "summary": topic_summary(partition, document),
        "teams": teams,
        "isolates": list(document["isolates"]),
        "membership": membership,
        "colors": dict(colors),
        "edges": edges,
        "partners": strongest_partners(values, partition.graph, topic),
    }


# -- conversations ------------------------------------------------------------------------------

def conversation_records(conversations: Iterable[Conversation], wanted: set[str] | None = None) -> dict[str, Any]:
    """Conversation id -> ``{agent_a, agent_b, topic, utterances: [[speaker, text, status], ...]}``."""
    out = {}
    for conv in sorted(conversations, key=lambda c: c.id):
        if wanted is not None and conv.id not in wanted:
            continue
        out[conv.id] = {"agent_a": conv.agent_a, "agent_b": conv.agent_b, "topic": conv.topic,
                        "utterances": [[u.speaker, u.text, u.status] for u in conv.utterances]}
    return out


# -- evaluation ---------------------------------------------------------------------------------

def find_evaluation(store_path: str | Path, run_name: str | None = None) -> Path | None:
    """The ``scores.csv`` of the newest successful evaluation recorded in the store, or None.

    The record names its JSON file (``<evaluation out>/evaluate_record.json``); the scores lie beside
    it. A relative name is tried from here, then from the store's folder and its parent.
    """
    from ..records import read_run_records

    records = [r for r in read_run_records(store_path)
               if r.get("kind") == "evaluate" and r.get("status") == "success" and r.get("file")
               and (run_name is None or r.get("name") == run_name)]
    store_dir = Path(store_path).resolve().parent
    for record in reversed(records):  # newest first
        file = Path(record["file"])
        for base in (Path.cwd(), store_dir, store_dir.parent):
            scores = (file if file.is_absolute() else base / file).parent / "scores.csv"
            if scores.is_file():
                return scores
    return None


def read_scores(path: str | Path) -> pd.DataFrame:
    """An evaluation's tidy scores (``scores.csv`` as ``teamgraph evaluate`` writes it), checked."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.csv"
    try:
        scores = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such evaluation file (give the scores.csv of `teamgraph evaluate`)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("group", "kind", "team", "size", "source", "protocol", "accuracy", "n_items")
               if c not in scores.columns]
    if missing or scores.empty:
        raise InputError(f"{path}: not the scores of `teamgraph evaluate` "
                         f"({'missing column ' + ', '.join(missing) if missing else 'no rows'})")
    return scores


def evaluation_view(scores: pd.DataFrame, source: str | Path | None = None) -> dict[str, Any]:
    """The evaluation's summary table (:func:`teamgraph.evaluation.summary_table`) and its chart
    (:func:`teamgraph.viz.plot_evaluation`; the ``accuracy.png`` beside the scores when there is one)
    as a PNG data URI."""
    from ..evaluation.result import summary_table

    table = summary_table(scores)
    png = None
    if source is not None and (Path(source).parent / "accuracy.png").is_file():
        png = (Path(source).parent / "accuracy.png").read_bytes()
    if png is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..viz import plot_evaluation

        ax = plot_evaluation(scores)
        buffer = io.BytesIO()
        ax.figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        plt.close(ax.figure)
        png = buffer.getvalue()
    return {
        "source": None if source is None else str(source),
        "columns": [str(c) for c in table.columns],
        "rows": [["" if v is None else str(v) for v in row] for row in table.itertuples(index=False)],
        "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
    }


# -- the whole document -------------------------------------------------------------------------

def report_document(
    partitions: Mapping[str, Partition],
    conversations: Iterable[Conversation] = (),
    values: pd.DataFrame | None = None,
    *,
    agents: Any = None,
    evaluation: Mapping[str, Any] | None = None,
    title: str = "teamgraph report",
    source: str | None = None,
    embedder: str | None = None,
) -> dict[str, Any]:
    """The report's data (without figures): agents, one view per topic, conversations, evaluation.

    ``partitions``: topic -> Partition, as ``teamgraph run`` makes them (with significance and label
    agreement when tested); ``values``: the relationship values behind them (for every agent's
    strongest partners); ``conversations``: those behind the edges (others are left out).
    """
    if not partitions:
        raise InputError("a report needs at least one topic's partition")
    from .colors import topic_colors

    embedder = embedder or (values.attrs.get("embedder") if values is not None else None)
    colors = topic_colors(partitions)
    views = {topic: topic_view(topic, p, colors[topic], values, embedder) for topic, p in partitions.items()}
    wanted = {cid for view in views.values() for edge in view["edges"] for cid in edge[4]}
    wanted |= {cid for view in views.values() for partners in view["partners"].values() for p in partners for cid in p[3]}
    return {
        "schema": SCHEMA,
        "teamgraph_version": __version__,
        "title": title,
        "source": source,
        "topics": list(partitions),
        "agents": agent_records(partitions, agents),
        "views": views,
        "conversations": conversation_records(conversations, wanted),
        "evaluation": dict(evaluation) if evaluation is not None else None,
    }
