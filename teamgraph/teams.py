"""Teams from a partition, and their JSON export (schema: docs/teams-json.md).

The examples use one small partition: two pairs of agents that talk well within the pair,
``[['ada', 'bob'], ['cy', 'dee']]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from ._version import __version__
from .communities import Partition

__all__ = ["SCHEMA", "mean_internal_weight", "teams_document", "teams_json", "export_teams"]

#: /2 added ``run_record`` and ``embedder`` (null when unknown); every /1 field is unchanged.
SCHEMA = "teamgraph.teams/2"
_DIGITS = 6  # rounding keeps exports byte-identical and readable


def mean_internal_weight(graph: nx.Graph, members: list[str]) -> float:
    """Mean weight over all member pairs; a pair without an edge counts 0.

    Parameters
    ----------
    graph : networkx.Graph
        A language-model graph (edges carry ``weight``).
    members : list of str
        The agents of one team.

    Returns
    -------
    float
        0.0 for fewer than two members.

    Raises
    ------
    KeyError
        An edge between members has no ``weight``.

    Examples
    --------
    >>> g = nx.Graph([("ada", "bob", {"weight": 0.5}), ("bob", "cy", {"weight": 0.25})])
    >>> mean_internal_weight(g, ["ada", "bob", "cy"])  # (0.5 + 0.25 + 0) / 3 pairs
    0.25
    """
    n = len(members)
    if n < 2:
        return 0.0
    total = sum(graph[u][v]["weight"] for i, u in enumerate(members) for v in members[i + 1:] if graph.has_edge(u, v))
    return float(total) / (n * (n - 1) / 2)


def teams_document(partition: Partition, extra: dict[str, Any] | None = None, *, run_record: str | None = None,
                   embedder: str | None = None) -> dict[str, Any]:
    """The export as a plain dict (what ``export_teams`` writes).

    Fields (docs/teams-json.md): ``schema``, ``teamgraph_version``, ``run_record``, ``topic``,
    ``metric``, ``embedder``, ``threshold``, ``agents`` (with their public attributes), ``edges``
    (with provenance), ``partition`` (settings, modularity, stability), ``teams``, ``isolates``,
    and ``significance``/``validation``/``validation_by_kind`` once the partition carries them.
    Floats are rounded to 6 digits and lists sorted, so identical inputs give identical documents.

    Parameters
    ----------
    partition : Partition
        From :func:`teamgraph.find_communities`.
    extra : dict, optional
        More top-level fields (they replace fields of the same name).
    run_record : str, optional
        The id of the run record (``teamgraph runs STORE``) of the invocation that made the
        partition; None when unknown.
    embedder : str, optional
        The id of the embedder behind the relationship values (default: the graph's ``embedder``
        attribute when it has one, else None).

    Returns
    -------
    dict
        Plain JSON values only.

    Raises
    ------
    KeyError
        An edge of ``partition.graph`` has no ``weight``.

    Examples
    --------
    >>> import pandas as pd
    >>> from teamgraph import build_graph, find_communities
    >>> values = pd.DataFrame({"agent_a": ["ada", "cy", "ada"], "agent_b": ["bob", "dee", "cy"],
    ...                        "topic": "mathematics", "weight": [0.9, 0.8, 0.1]})
    >>> partition = find_communities(build_graph(values, topic="mathematics"), n_seeds=2)
    >>> doc = teams_document(partition, run_record="20250101-120000-ab12",
    ...                      embedder="sentence-transformers/all-MiniLM-L6-v2")
    >>> doc["schema"], doc["topic"], doc["threshold"]
    ('teamgraph.teams/2', 'mathematics', {'rule': 'mean', 'value': 0.6})
    >>> [(team["members"], team["mean_internal_weight"]) for team in doc["teams"]]
    [(['ada', 'bob'], 0.9), (['cy', 'dee'], 0.8)]
    """
    g = partition.graph
    def r(x: Any) -> float | None:
        return None if x is None else round(float(x), _DIGITS)

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
        "partition": {**partition.settings.as_dict(), "modularity": r(partition.modularity), "stability": r(partition.stability)},
        "teams": [
            {"id": i, "members": members, "size": len(members), "mean_internal_weight": r(mean_internal_weight(g, members))}
            for i, members in enumerate(partition.teams)
        ],
        "isolates": partition.isolates,
    }
    def rounded(result: Any) -> dict[str, Any]:
        return {k: r(v) if isinstance(v, float) else v for k, v in result.to_dict().items()}

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
    """The export as a JSON string (stable key order, 2-space indent, trailing newline).

    Parameters
    ----------
    partition, extra, run_record, embedder
        As for :func:`teams_document`.

    Returns
    -------
    str

    Raises
    ------
    KeyError
        An edge of ``partition.graph`` has no ``weight``.

    Examples
    --------
    >>> import pandas as pd
    >>> from teamgraph import build_graph, find_communities
    >>> values = pd.DataFrame({"agent_a": ["ada", "cy", "ada"], "agent_b": ["bob", "dee", "cy"],
    ...                        "topic": "mathematics", "weight": [0.9, 0.8, 0.1]})
    >>> partition = find_communities(build_graph(values, topic="mathematics"), n_seeds=2)
    >>> text = teams_json(partition)
    >>> text.splitlines()[1], text.endswith("}\\n")
    ('  "schema": "teamgraph.teams/2",', True)
    """
    doc = teams_document(partition, extra, run_record=run_record, embedder=embedder)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def export_teams(partition: Partition, path: str | Path, extra: dict[str, Any] | None = None, *,
                 run_record: str | None = None, embedder: str | None = None) -> Path:
    """Write the teams JSON of ``partition`` to ``path``; identical inputs give identical bytes
    (``run_record`` and ``embedder``: see :func:`teams_document`).

    Parameters
    ----------
    partition : Partition
        From :func:`teamgraph.find_communities`.
    path : str or Path
        The file to write (replaced when it exists); missing folders are made.
    extra : dict, optional
        More top-level fields, as for :func:`teams_document`.
    run_record : str, optional
        The id of the run record that made the partition.
    embedder : str, optional
        The id of the embedder behind the relationship values.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        The file cannot be written.

    Examples
    --------
    >>> import pandas as pd
    >>> from teamgraph import build_graph, find_communities
    >>> values = pd.DataFrame({"agent_a": ["ada", "cy", "ada"], "agent_b": ["bob", "dee", "cy"],
    ...                        "topic": "mathematics", "weight": [0.9, 0.8, 0.1]})
    >>> partition = find_communities(build_graph(values, topic="mathematics"), n_seeds=2)
    >>> import json, tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = export_teams(partition, pathlib.Path(tmp.name) / "out" / "teams.json")
    >>> json.loads(path.read_text())["teams"][0]["members"]
    ['ada', 'bob']
    >>> path.read_bytes() == export_teams(partition, path).read_bytes()
    True
    >>> tmp.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(teams_json(partition, extra, run_record=run_record, embedder=embedder), encoding="utf-8")
    return path
