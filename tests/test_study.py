"""The study command end to end on a tiny labelled roster of real zoo models (slow)."""
import textwrap

import pytest

from teamgraph.cli import main

pytestmark = pytest.mark.slow

TINY = """
name: tiny-study
output: {out}
backends:
  local: {{type: llamacpp, n_ctx: 1024, n_threads: 2}}
defaults:
  backend: local
  sampling: {{max_tokens: 8, temperature: 0.8, top_p: 0.95, repeat_penalty: 1.2}}
agents:
  - {{name: Ada-s, model: smollm2-135m-instruct, persona: "You are Ada, a mathematician.", labels: {{family: smollm2, role: math}}}}
  - {{name: Galen-s, model: smollm2-135m-instruct, persona: "You are Galen, a physician.", labels: {{family: smollm2, role: medical}}}}
  - {{name: Ada-g, model: gemma-3-270m, persona: "Ada-g is a mathematician.", labels: {{family: gemma3, role: math}}}}
  - {{name: Galen-g, model: gemma-3-270m, persona: "Galen-g is a physician.", labels: {{family: gemma3, role: medical}}}}
topics: [general]
conversation: {{turns: 2, seed: 0}}
scoring: {{metric: cumulative_cosine, device: cpu}}
communities: {{n_seeds: 2, n_permutations: 20}}
evaluation: {{benchmarks: [arc_easy, gsm8k], n_items: 12, seed: 0, scoring: auto, random_draws: 20,
             per_benchmark: {{gsm8k: {{n_items: 4, max_tokens: 12}}}}}}
"""


def test_study_writes_every_table_and_a_report_from_the_store(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(textwrap.dedent(TINY.format(out=out)))
    report = tmp_path / "study.md"
    assert main(["study", str(cfg), "--report", str(report), "--quiet"]) == 0
    text = report.read_text()
    for section in ("## 1. What does the graph see?", "## 2. Per-agent accuracy", "## 3. Community teams",
                    "## Verdict", "Commit:", "arc_easy: n = 12, auto", "gsm8k: n = 4, auto"):
        assert section in text, section
    import pandas as pd

    agents = pd.read_csv(out / "study_agents.csv")
    arc, gsm = agents[agents["benchmark"] == "arc_easy"], agents[agents["benchmark"] == "gsm8k"]
    assert len(arc) == 4 and set(arc["mode"]) == {"likelihood"} and (arc["answered"] == 12).all()
    assert len(gsm) == 4 and set(gsm["mode"]) == {"generation"} and (gsm["n_items"] == 4).all()
    assert ((agents["ci_low"] <= agents["accuracy"]) & (agents["accuracy"] <= agents["ci_high"])).all()
    recovery = pd.read_csv(out / "study_recovery.csv")
    assert set(recovery["label"]) == {"family", "role"} and recovery["metric"].nunique() >= 4
    teams = pd.read_csv(out / "study_teams.csv")
    assert {"best single (held out)", "curated"} <= set(teams["kind"])
    # GSM8K is generated: its self-consistency baseline is k sampled replies (seeds 0..k-1) of the chosen agents
    sc = teams[(teams["benchmark"] == "gsm8k") & (teams["kind"] == "self-consistency")]
    communities = teams[(teams["benchmark"] == "gsm8k") & (teams["kind"] == "community")]
    assert len(communities) >= 1
    assert sorted(int(t.rsplit("x", 1)[1]) for t in sc["team"]) == sorted(communities["size"])
    # A second invocation makes no model call: the answers and conversations come from the store.
    from teamgraph.store import Store

    with Store(out / "store.sqlite") as store:
        before = store.counts()
    assert main(["study", str(cfg), "--report", str(report), "--quiet"]) == 0
    with Store(out / "store.sqlite") as store:
        assert store.counts() == before
    assert report.read_text().split("## 1.")[1] == text.split("## 1.")[1]  # same tables, same numbers
