import json

import teamgraph as tg
from teamgraph.embedding import Embedder

from .test_scoring import CONVS, conv

MORE = CONVS + [
    conv("cleo", "hippo", "mathematics", ["organs and blood", "blood and the heart", "the heart again"], "c4"),
    conv("bob", "cleo", "mathematics", ["dosage matters", "dosage and weight", "weight-based dosing"], "c5"),
]


def pipeline(counting_encoder_cls, path):
    values = tg.relationship_values(MORE, metric="mean_cosine", embedder=Embedder(counting_encoder_cls()))
    graph = tg.build_graph(values, threshold="none", topic="mathematics",
                           agents={"ada": {"labels": ["math"], "api_key_env": "OPENAI_API_KEY"}})
    partition = tg.find_communities(graph, n_seeds=5, seed=0)
    return tg.export_teams(partition, path), partition


def test_identical_inputs_give_byte_identical_exports(tmp_path):
    from .conftest import CountingEncoder

    p1, part = pipeline(CountingEncoder, tmp_path / "a.json")
    p2, _ = pipeline(CountingEncoder, tmp_path / "b" / "teams.json")
    assert p1.read_bytes() == p2.read_bytes()
    doc = json.loads(p1.read_text())
    assert doc["schema"] == "teamgraph.teams/2" and doc["topic"] == "mathematics"
    assert doc["run_record"] is None  # no run: no record (teamgraph run names its own; see test_run_records.py)
    assert doc["metric"] == "mean_cosine" and doc["threshold"] == {"rule": "none", "value": None}
    names = sorted(m for t in doc["teams"] for m in t["members"]) + doc["isolates"]
    assert sorted(names) == sorted(a["name"] for a in doc["agents"]) == ["ada", "bob", "cleo", "hippo"]
    assert all(e["conversations"] for e in doc["edges"])
    assert doc["partition"]["n_seeds"] == 5 and doc["partition"]["modularity"] == round(part.modularity, 6)
    assert "api_key_env" not in p1.read_text() and "OPENAI_API_KEY" not in p1.read_text()
