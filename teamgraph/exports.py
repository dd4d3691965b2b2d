"""Graph exports for other tools: GEXF (Gephi) and node-link JSON (d3, sigma.js, networkx).

Both carry the agents' public attributes, every edge's weight and provenance, and, when a
:class:`Partition` is given, each agent's community. Nodes and edges are written in sorted order
and floats are rounded, so identical inputs give byte-identical files.

>>> import pandas as pd, tempfile, pathlib
>>> from teamgraph import build_graph, find_communities
>>> values = pd.DataFrame({"agent_a": ["ada", "cy", "ada"], "agent_b": ["bob", "dee", "cy"],
...                        "topic": "mathematics", "weight": [0.9, 0.8, 0.1]})
>>> partition = find_communities(build_graph(values, agents={"ada": {"family": "gemma"}}), n_seeds=2)
>>> tmp = tempfile.TemporaryDirectory()
>>> export_gexf(partition, pathlib.Path(tmp.name) / "graph.gexf").name
'graph.gexf'
>>> path = export_node_link(partition, pathlib.Path(tmp.name) / "graph.json")
>>> read_node_link(path).nodes["ada"]
{'community': 0, 'family': 'gemma', 'isolate': False}
>>> tmp.cleanup()
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
import numpy as np

from ._version import __version__
from .communities import Partition
from .errors import InputError

__all__ = ["NODE_LINK_SCHEMA", "LIST_SEPARATOR", "json_safe", "gexf_safe", "graph_node_link", "node_link_json",
           "export_node_link", "read_node_link", "gexf_graph", "gexf_text", "export_gexf"]

NODE_LINK_SCHEMA = "teamgraph.nodelink/1"
_DIGITS = 6  # as in the teams JSON: stable bytes, readable numbers
#: Separator used when a list attribute (labels, conversation ids) becomes one GEXF string.
LIST_SEPARATOR = ";"


def _split(graph_or_partition: nx.Graph | Partition, partition: Partition | None) -> tuple[nx.Graph, Partition | None]:
    if isinstance(graph_or_partition, Partition):
        return graph_or_partition.graph, partition or graph_or_partition
    if isinstance(graph_or_partition, nx.Graph):
        if graph_or_partition.is_directed() or graph_or_partition.is_multigraph():
            raise InputError("exports need an undirected simple graph (a language-model graph)")
        return graph_or_partition, partition
    raise InputError(f"expected a networkx Graph or a Partition, got {type(graph_or_partition).__name__}")


def _community_attributes(graph: nx.Graph, partition: Partition | None) -> dict[str, dict[str, Any]]:
    """Agent -> {"community": index in partition.communities, "isolate": bool}."""
    if partition is None:
        return {}
    membership = partition.membership()
    unknown = sorted(set(graph.nodes) - set(membership))
    if unknown:
        raise InputError(f"partition does not cover agent(s): {', '.join(map(str, unknown))}")
    isolates = set(partition.isolates)
    return {n: {"community": membership[n], "isolate": n in isolates} for n in graph.nodes}


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars -> Python, tuples/sets -> lists, floats rounded, NaN -> None."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, _DIGITS) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set):
        return [json_safe(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    return str(value)


def gexf_safe(value: Any) -> Any:
    """A value GEXF can hold (str, int, float, bool), or None to leave the attribute out.

    Lists become one string joined by ``;`` (``labels: [math, algebra]`` -> ``"math;algebra"``),
    mappings become compact JSON, non-finite floats and None are left out.
    """
    value = json_safe(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return LIST_SEPARATOR.join(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- node-link JSON ----------------------------------------------------------------------------

def graph_node_link(graph: nx.Graph | Partition, partition: Partition | None = None) -> dict[str, Any]:
    """The graph as a node-link document (the layout ``networkx.node_link_graph(doc, edges="edges")``
    and d3 read): ``graph`` (topic, metric, threshold, partition summary), ``nodes`` (``id`` plus
    attributes, ``community`` when a partition is given) and ``edges`` (``source < target``).
    """
    graph, partition = _split(graph, partition)
    communities = _community_attributes(graph, partition)
    meta: dict[str, Any] = {"schema": NODE_LINK_SCHEMA, "teamgraph_version": __version__}
    meta.update({k: json_safe(v) for k, v in sorted(graph.graph.items())})
    if partition is not None:
        meta["partition"] = json_safe({**partition.settings.as_dict(), "modularity": partition.modularity,
                                       "stability": partition.stability, "communities": partition.communities})
    nodes = []
    for name in sorted(graph.nodes, key=str):
        attrs = {k: v for k, v in graph.nodes[name].items() if k != "id"}
        attrs.update(communities.get(name, {}))
        nodes.append({"id": name, **{k: json_safe(v) for k, v in sorted(attrs.items())}})
    edges = []
    for u, v, d in sorted(((min(a, b), max(a, b), d) for a, b, d in graph.edges(data=True)), key=lambda e: (str(e[0]), str(e[1]))):
        edges.append({"source": u, "target": v, **{k: json_safe(x) for k, x in sorted(d.items()) if k not in ("source", "target")}})
    return {"directed": False, "multigraph": False, "graph": meta, "nodes": nodes, "edges": edges}


def node_link_json(graph: nx.Graph | Partition, partition: Partition | None = None) -> str:
    """:func:`graph_node_link` as JSON text (2-space indent, trailing newline)."""
    return json.dumps(graph_node_link(graph, partition), indent=2, ensure_ascii=False) + "\n"


def export_node_link(graph: nx.Graph | Partition, path: str | Path, partition: Partition | None = None) -> Path:
    """Write the node-link JSON of ``graph`` (with ``partition``'s communities) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(node_link_json(graph, partition), encoding="utf-8")
    return path


def read_node_link(path: str | Path) -> nx.Graph:
    """Read a node-link JSON file written by :func:`export_node_link` back into a graph."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not isinstance(doc.get("edges"), list):
        raise InputError(f"{path}: not a node-link document (needs 'nodes' and 'edges' lists)")
    g = nx.Graph(**doc.get("graph", {}))
    try:
        for node in doc["nodes"]:
            g.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
        for edge in doc["edges"]:
            g.add_edge(edge["source"], edge["target"], **{k: v for k, v in edge.items() if k not in ("source", "target")})
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: malformed node or edge ({exc})") from None
    return g


# -- GEXF --------------------------------------------------------------------------------------

def gexf_graph(graph: nx.Graph | Partition, partition: Partition | None = None, colors: bool = True) -> nx.Graph:
    """A copy of ``graph`` that ``networkx.write_gexf`` can write: sorted, GEXF-safe attributes,
    ``community``/``isolate`` per agent and (``colors``) the community colour as ``viz`` data."""
    graph, partition = _split(graph, partition)
    communities = _community_attributes(graph, partition)
    palette = {}
    if partition is not None and colors:
        from .viz import community_colors

        palette = community_colors(partition)
    reserved = {"id", "label", "pid", "start", "end", "viz", "weight", "type"}
    out = nx.Graph(name=f"teamgraph {graph.graph.get('topic', '')}".strip())
    for name in sorted(graph.nodes, key=str):
        attrs = {**graph.nodes[name], **communities.get(name, {})}
        safe = {k: gexf_safe(v) for k, v in sorted(attrs.items()) if k not in reserved}
        safe = {k: v for k, v in safe.items() if v is not None}
        if name in palette:
            r, g, b = (int(round(255 * c)) for c in palette[name][:3])
            safe["viz"] = {"color": {"r": r, "g": g, "b": b, "a": 1.0}}
        out.add_node(str(name), label=str(name), **safe)
    edges = sorted((min(str(a), str(b)), max(str(a), str(b)), d) for a, b, d in graph.edges(data=True))
    for i, (u, v, d) in enumerate(edges):
        safe = {k: gexf_safe(x) for k, x in sorted(d.items()) if k not in reserved}
        safe = {k: x for k, x in safe.items() if x is not None}
        out.add_edge(u, v, id=str(i), weight=gexf_safe(float(d.get("weight", 1.0))), **safe)
    # keep the GEXF type of each attribute the same on every node: ints stay ints, floats floats
    for key in {k for _, d in out.nodes(data=True) for k in d if k not in ("label", "viz")}:
        kinds = {type(d[key]) for _, d in out.nodes(data=True) if key in d}
        if kinds == {int, float}:
            for _, d in out.nodes(data=True):
                if key in d:
                    d[key] = float(d[key])
    return out


def gexf_text(graph: nx.Graph | Partition, partition: Partition | None = None, colors: bool = True) -> str:
    """The GEXF 1.2 document of ``graph`` as text; no date in it, so equal inputs give equal text."""
    from networkx.readwrite.gexf import GEXFWriter

    safe = gexf_graph(graph, partition, colors)
    source = graph.graph if isinstance(graph, nx.Graph) else graph.graph.graph
    writer = GEXFWriter(encoding="utf-8", prettyprint=True, version="1.2draft")
    meta = writer.xml.find("meta")
    if meta is not None:
        meta.attrib.pop("lastmodifieddate", None)  # today's date would change the bytes every day
        meta.find("creator").text = f"teamgraph {__version__} (NetworkX {nx.__version__})"
        description = "; ".join(f"{k}={json_safe(source[k])}" for k in ("topic", "metric", "threshold", "threshold_value")
                                if source.get(k) is not None)
        if description:
            from xml.etree.ElementTree import SubElement

            SubElement(meta, "description").text = description
    writer.add_graph(safe)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue().decode("utf-8")


def export_gexf(graph: nx.Graph | Partition, path: str | Path, partition: Partition | None = None,
                colors: bool = True) -> Path:
    """Write ``graph`` as GEXF for Gephi (communities as the ``community`` node attribute).

    Lists (labels, the conversation ids behind an edge) are joined with ``;``; read it back with
    ``networkx.read_gexf(path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gexf_text(graph, partition, colors), encoding="utf-8")
    return path
