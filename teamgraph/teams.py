"""Teams from a partition, and their JSON export (schema: docs/teams-json.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from ._version import __version__
from .communities import Partition

#: /2 added ``run_record`` and ``embedder`` (null when unknown); every /1 field is unchanged.
SCHEMA = "teamgraph.teams/2"
_DIGITS = 6  # rounding keeps exports byte-identical and readable


def mean_internal_weight(graph: nx.Graph, members: list[str]) -> float:
    """Mean weight over all member pairs; a pair without an edge counts 0."""
    n = len(members)
    if n < 2:
        return 0.0
    total = sum(graph[u][v]["weight"] for i, u in enumerate(members) for v in members[i + 1:] if graph.has_edge(u, v))
    return total / (n * (n - 1) / 2)


def teams_document(partition: Partition, extra: dict[str, Any] | None = None, *, run_record: str | None = None,
                   embedder: str | None = None) -> dict[str, Any]:
    """The export as a plain dict (what ``export_teams`` writes).

    ``run_record``: the id of the run record (``teamgraph runs STORE``) of the invocation that made
    the partition; ``embedder``: the id of the embedder behind the relationship values (default: the
    graph's ``embedder`` attribute when it has one).
    """
    g = partition.graph
    r = lambda x: None if x is None else round(float(x), _DIGITS)  # noqa: E731
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "teamgraph_version": __version__,
        "run_record": run_record,
        "topic": g.graph.get("topic"),
        "metric": g.graph.get("metric"),
        "embedder": embedder if embedder is not None else g.graph.get("embedder"),
        "threshold": {"rule": g.graph.get("threshold"), "value": r(g.graph.get("threshold_value"))},
        "agents": [{"name": n, **{k: v for k, v in sorted(g.nodes[n].items())}} for n in sorted(g.nodes)],
        "edges": [
            {"source": u, "target": v, "weight": r(d["weight"]), "n_conversations": d.get("n_conversations", 1),
             "conversations": list(d.get("conversations", []))}
            for u, v, d in sorted((min(a, b), max(a, b), d) for a, b, d in g.edges(data=True))
        ],
        "partition": {**partition.settings, "modularity": r(partition.modularity), "stability": r(partition.stability)},
        "teams": [
            {"id": i, "members": members, "size": len(members), "mean_internal_weight": r(mean_internal_weight(g, members))}
            for i, members in enumerate(partition.teams)
        ],
        "isolates": partition.isolates,
    }
    rounded = lambda result: {k: r(v) if isinstance(v, float) else v for k, v in result.to_dict().items()}  # noqa: E731
    for key in ("significance", "validation"):  # present once tested (significance.py, validation.py)
        result = getattr(partition, key, None)
        if result is not None:
            doc[key] = rounded(result)
    if partition.validation_by_kind:
        doc["validation_by_kind"] = {kind: rounded(res) for kind, res in sorted(partition.validation_by_kind.items())}
    if partition.significance is not None:
        doc["significance"]["verdict"] = partition.significance.verdict()
    if extra:
        doc.update(extra)
    return doc


def teams_json(partition: Partition, extra: dict[str, Any] | None = None, *, run_record: str | None = None,
               embedder: str | None = None) -> str:
    """The export as a JSON string (stable key order, 2-space indent, trailing newline)."""
    doc = teams_document(partition, extra, run_record=run_record, embedder=embedder)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def export_teams(partition: Partition, path: str | Path, extra: dict[str, Any] | None = None, *,
                 run_record: str | None = None, embedder: str | None = None) -> Path:
    """Write the teams JSON of ``partition`` to ``path``; identical inputs give identical bytes
    (``run_record`` and ``embedder``: see :func:`teams_document`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(teams_json(partition, extra, run_record=run_record, embedder=embedder), encoding="utf-8")
    return path
