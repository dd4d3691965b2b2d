"""``conversation.pairs: knn`` through the real pipeline: the corpus backend (real MMLU sentences), MiniLM
fingerprints, select_pairs, only the selected pairs conversed, resume, ``teamgraph plan --pairs`` (issue 13)."""
import json
import subprocess
import sys

import pytest

from teamgraph.config import config_from_dict
from teamgraph.pipeline import planned_conversations, run
from teamgraph.store import Store

SUBJECTS = ("high_school_biology", "high_school_world_history")


def config_dict(tmp_path, pairs):
    agents = [{"name": f"{s.split('_')[-1]}{i}", "model": f"mmlu:{s}", "labels": {"subject": s}}
              for s in SUBJECTS for i in range(4)]
    return {"name": "knn", "output": str(tmp_path / "out"), "store": str(tmp_path / "store.sqlite"),
            "backends": {"corpus": {"type": "corpus"}}, "defaults": {"backend": "corpus"}, "agents": agents,
            "topics": ["general", "history"], "conversation": {"turns": 4, "pairs": pairs},
            "communities": {"n_permutations": 0, "n_seeds": 2}}


KNN = {"strategy": "knn", "k": 2, "explore": 1, "budget": 0.4, "probes": 3}


@pytest.fixture(scope="module")
def knn_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("knn")
    config = config_from_dict(config_dict(tmp, KNN))
    first = run(config, progress=False, figures=False)
    record = json.loads((tmp / "out" / "run_record.json").read_text())
    second = run(config, progress=False, figures=False)
    again = json.loads((tmp / "out" / "run_record.json").read_text())
    return tmp, config, first, record, second, again


def pairs_of(conversations, topic):
    return {c.pair for c in conversations if c.topic == topic}


def test_only_selected_pairs_converse_and_the_graph_has_only_them(knn_run):
    _, config, result, record, _, _ = knn_run
    n_all = 8 * 7 // 2
    for topic in config.topics:
        conversed = pairs_of(result.conversations, topic)
        assert len(conversed) == record["pairs"][topic]
        assert 8 // 2 <= len(conversed) <= int(0.4 * n_all)  # every agent covered, the budget kept
        assert {a for pair in conversed for a in pair} == set(config.agents.names)
        assert {tuple(sorted(e)) for e in result.graphs[topic].edges} <= conversed  # unmeasured: no edge
        topic_rows = result.values[result.values["topic"] == topic]
        assert len(topic_rows) == len(conversed)
    assert record["model_calls"]["made"]["probes"] == 8 * 3 * 2
    assert record["model_calls"]["made"]["utterances"] == 4 * len(result.conversations)
    assert "probes_s" in record["timings"]


def test_knn_prefers_same_subject_pairs(knn_run):
    """The corpus backend plants the subjects: nearest neighbours by fingerprint are mostly same-subject."""
    _, config, result, _, _, _ = knn_run
    subject = {a.name: a.labels[0] for a in config.agents}
    conversed = [p for topic in config.topics for p in pairs_of(result.conversations, topic)]
    same = sum(subject[a] == subject[b] for a, b in conversed)
    assert same / len(conversed) > 12 / 28  # the share of same-subject pairs among all pairs of 4+4 agents


def test_rerun_resumes_from_the_store_without_model_calls(knn_run):
    _, _, first, _, second, again = knn_run
    assert again["model_calls"]["made"]["probes"] == 0 and again["model_calls"]["made"]["utterances"] == 0
    assert [c.id for c in second.conversations] == [c.id for c in first.conversations]
    assert second.values.equals(first.values)


def test_planned_conversations_are_the_runs_even_in_a_store_shared_with_an_all_pairs_run(knn_run, tmp_path):
    tmp, config, result, _, _, _ = knn_run
    every = config_from_dict(config_dict(tmp, "all"))
    full = run(every, out_dir=tmp_path / "all", progress=False, figures=False)
    assert len(full.conversations) == 2 * 28
    # the all-pairs run reused the knn run's conversations: same ids for the same pairs
    assert {c.id for c in result.conversations} <= {c.id for c in full.conversations}
    with Store(tmp / "store.sqlite") as store:
        assert [c.id for c in planned_conversations(store, config)] == sorted(c.id for c in result.conversations)
        assert len(planned_conversations(store, every)) == 2 * 28


def test_plan_pairs_prints_the_selected_pairs_and_the_saving(knn_run, tmp_path):
    tmp, config, result, _, _, _ = knn_run
    path = tmp_path / "knn.json"  # JSON is YAML
    path.write_text(json.dumps(config_dict(tmp, KNN)))
    cmd = [sys.executable, "-m", "teamgraph", "plan", str(path)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert "pairs: knn (k=2, explore=1, budget=0.4)" in plain.stdout and "--pairs selects them" in plain.stdout
    chosen = subprocess.run(cmd + ["--pairs", "--quiet"], capture_output=True, text=True, timeout=300)
    assert chosen.returncode == 0, chosen.stderr
    printed = {(line.split("] ")[0][1:], tuple(line.split("] ")[1].split(" -- ")))
               for line in chosen.stdout.splitlines() if line.startswith("[")}
    assert printed == {(c.topic, c.pair) for c in result.conversations}
    n = len(result.conversations)
    assert f"{n} conversations" in chosen.stdout and f"({56 - n} of 56 conversations saved" in chosen.stdout


def test_plan_with_a_bad_pairs_setting_exits_2_naming_the_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config_dict(tmp_path, {"strategy": "knn", "budget": 0})))
    proc = subprocess.run([sys.executable, "-m", "teamgraph", "plan", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "conversation.pairs.budget" in proc.stderr
