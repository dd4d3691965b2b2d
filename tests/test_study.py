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
evaluation: {{benchmarks: [arc_easy], n_items: 12, seed: 0, scoring: auto, random_draws: 20}}
"""


def test_study_writes_every_table_and_a_report_from_the_store(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(textwrap.dedent(TINY.format(out=out)))
    report = tmp_path / "study.md"
    assert main(["study", str(cfg), "--report", str(report), "--quiet"]) == 0
    text = report.read_text()
    for section in ("## 1. What does the graph see?", "## 2. Per-agent accuracy", "## 3. Community teams",
                    "## Verdict", "Commit:", "n = 12 items"):
        assert section in text, section
    import pandas as pd

    agents = pd.read_csv(out / "study_agents.csv")
    assert len(agents) == 4 and set(agents["mode"]) == {"likelihood"} and (agents["answered"] == 12).all()
    assert ((agents["ci_low"] <= agents["accuracy"]) & (agents["accuracy"] <= agents["ci_high"])).all()
    recovery = pd.read_csv(out / "study_recovery.csv")
    assert set(recovery["label"]) == {"family", "role"} and recovery["metric"].nunique() >= 4
    teams = pd.read_csv(out / "study_teams.csv")
    assert {"best single (held out)", "curated"} <= set(teams["kind"])
    # A second invocation makes no model call: the answers and conversations come from the store.
    from teamgraph.store import Store

    with Store(out / "store.sqlite") as store:
        before = store.counts()
    assert main(["study", str(cfg), "--report", str(report), "--quiet"]) == 0
    with Store(out / "store.sqlite") as store:
        assert store.counts() == before
    assert report.read_text().split("## 1.")[1] == text.split("## 1.")[1]  # same tables, same numbers
