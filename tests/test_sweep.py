import textwrap

import numpy as np
import pandas as pd
import pytest

import teamgraph as tg
from teamgraph.cli import main
from teamgraph.config import load_config
from teamgraph.embedding import Embedder
from teamgraph.errors import InputError
from teamgraph.sweep import COMPARE_COLUMNS, SWEEP_COLUMNS, compare_metrics, config_conversations, sweep

from .conftest import CountingEncoder
from .test_significance import planted_values

VOCAB = {"math": "prime proof theorem integral lemma matrix algebra number".split(),
         "medical": "fever vaccine patient virus dose clinic wound infection".split()}
DOMAIN = {"m1": "math", "m2": "math", "m3": "math", "d1": "medical", "d2": "medical", "d3": "medical"}


def domain_conversations(repeats=3, topics=("mathematics", "medicine"), turns=6, seed=0):
    """Each speaker talks in its own domain's words: same-domain pairs are coherent, mixed pairs are not."""
    rng = np.random.default_rng(seed)
    names = sorted(DOMAIN)
    convs, repeat_of = [], {}
    for topic in topics:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for r in range(repeats):
                    texts = [" ".join(rng.choice(VOCAB[DOMAIN[(a, b)[t % 2]]], 4)) for t in range(turns)]
                    conv = tg.Conversation(a, b, topic, [tg.Utterance((a, b)[t % 2], x) for t, x in enumerate(texts)],
                                           f"{topic[:3]}-{a}-{b}-{r}")
                    convs.append(conv)
                    repeat_of[conv.id] = r
    return convs, repeat_of


AGENTS = {n: {"labels": [d]} for n, d in DOMAIN.items()}


def test_sweep_returns_the_full_grid_in_order():
    values = pd.concat([planted_values(topic="a"), planted_values(topic="b", seed=1)])
    agents = {n: {"labels": [n[0]]} for n in set(values["agent_a"]) | set(values["agent_b"])}
    table = sweep(values, resolutions=[0.5, 1.0, 2.0], thresholds=["none", "mean", "top_k:3"], topics=["a", "all"],
                  agents=agents, n_seeds=3, n_permutations=30)
    assert list(table.columns) == SWEEP_COLUMNS
    assert len(table) == 2 * 3 * 3
    assert list(table["topic"]) == ["a"] * 9 + ["all"] * 9
    assert list(table["threshold"][:9]) == ["none"] * 3 + ["mean"] * 3 + ["top_k:3"] * 3
    assert list(table["resolution"][:3]) == [0.5, 1.0, 2.0]
    at_one = table[(table.topic == "a") & (table.threshold == "mean") & (table.resolution == 1.0)].iloc[0]
    assert at_one["n_communities"] == 3 and at_one["ari"] == 1.0 and at_one["p_value"] == pytest.approx(1 / 31)
    assert at_one["communities"] == "c1,c2,c3,c4 | d1,d2,d3,d4 | m1,m2,m3,m4"
    # more resolution, never fewer communities on this graph; edges: none keeps all 66 pairs
    none = table[(table.topic == "a") & (table.threshold == "none")]
    assert list(none["n_edges"]) == [66] * 3 and none["n_communities"].is_monotonic_increasing


def test_sweep_without_labels_or_permutations_leaves_nan_and_checks_input():
    values = planted_values()
    table = sweep(values, resolutions=[1.0], thresholds=["mean"], topics=["t"], n_seeds=2, n_permutations=0)
    assert len(table) == 1 and np.isnan(table["p_value"][0]) and np.isnan(table["ari"][0])
    with pytest.raises(InputError, match="threshold: 'median'"):
        sweep(values, thresholds=["median"], topics=["t"])
    with pytest.raises(InputError, match="resolution must be > 0"):
        sweep(values, resolutions=[0], topics=["t"])
    with pytest.raises(InputError, match="topic 'x'"):
        sweep(values, resolutions=[1.0], thresholds=["mean"], topics=["x"], n_permutations=0)


def test_compare_metrics_grid_and_repeat_subsets():
    convs, repeat_of = domain_conversations()
    table = compare_metrics(convs, metrics=["mean_cosine", "echo_discounted_cosine"], repeats=[1, 3],
                            repeat_of=repeat_of, agents=AGENTS, embedder=Embedder(CountingEncoder()),
                            n_seeds=3, n_permutations=50)
    assert list(table.columns) == COMPARE_COLUMNS
    assert len(table) == 2 * 2 * 3  # metrics x repeats x (two topics + all)
    assert list(table["topic"][:3]) == ["mathematics", "medicine", "all"]
    assert list(table["n_conversations"][:6]) == [15, 15, 30, 45, 45, 90]
    # same-domain talk is coherent, mixed talk is not: communities are the domains
    assert (table["ari"] == 1.0).all(), table[["metric", "repeats", "topic", "ari", "communities"]]
    assert (table["p_value"] < 0.05).all()
    # six agents in two labels of three: a random relabelling is perfect with probability 2/20, so
    # the label p-value cannot go below 0.1 on such a roster (docs/signal.md)
    assert table["label_p_value"].between(0.07, 0.13).all()
    assert (table["label_gap"] > 0.3).all() and table["label_gap_p_value"].between(0.07, 0.13).all()
    # without repeat indices every conversation is used once
    flat = compare_metrics(convs, metrics=["mean_cosine"], topics=["all"], agents=AGENTS,
                           embedder=Embedder(CountingEncoder()), n_seeds=2, n_permutations=0)
    assert list(flat["repeats"]) == ["all"] and list(flat["n_conversations"]) == [90]
    with pytest.raises(InputError, match="unknown metric 'nope'"):
        compare_metrics(convs, metrics=["nope"])
    with pytest.raises(InputError, match="no repeat index"):
        compare_metrics(convs, repeat_of={})


def test_compare_metrics_sees_no_structure_when_domains_are_mixed_at_random():
    convs, repeat_of = domain_conversations(topics=("mathematics",))
    rng = np.random.default_rng(5)
    shuffled = dict(zip(DOMAIN, rng.permutation(list(DOMAIN.values()))))
    relabelled = {n: {"labels": [shuffled[n]]} for n in DOMAIN}
    table = compare_metrics(convs, metrics=["mean_cosine"], repeats=[3], repeat_of=repeat_of, agents=relabelled,
                            embedder=Embedder(CountingEncoder()), n_seeds=3, n_permutations=50)
    assert table["ari"][0] < 0.5 and table["label_p_value"][0] > 0.05
    assert table["label_gap"][0] < 0.3 and table["label_gap_p_value"][0] > 0.05


@pytest.fixture
def fake_embedder(monkeypatch):
    monkeypatch.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test"))
    monkeypatch.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())


def test_sweep_cli_on_a_conversations_file(tmp_path, capsys, fake_embedder):
    convs, _ = domain_conversations(repeats=1, topics=("mathematics",))
    tg.write_conversations(convs, tmp_path / "c.jsonl")
    code = main(["sweep", "--conversations", str(tmp_path / "c.jsonl"), "--resolutions", "0.5,1",
                 "--thresholds", "mean,top_k:2", "--permutations", "20", "--seeds", "2", "--csv", str(tmp_path / "s.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "15 conversations, metric cumulative_cosine" in out and "top_k:2" in out
    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 4 and list(table["resolution"]) == [0.5, 1.0, 0.5, 1.0]


@pytest.mark.parametrize("args, message", [
    (["sweep"], "a run config or --conversations"),
    (["sweep", "--conversations", "c.jsonl", "--thresholds", "median"], "threshold: 'median'"),
    (["sweep", "--conversations", "c.jsonl", "--permutations", "-1"], "--permutations must be in 0 .. 1000000, got -1"),
    (["sweep", "--conversations", "c.jsonl", "--resolutions", "1,x"], "comma-separated numbers"),
    (["sweep", "--conversations", "c.jsonl", "--repeats", "2"], "--repeats needs a run config"),
    (["compare", "tiny.yaml"], "no store; run `teamgraph run"),
    (["compare", "tiny.yaml", "--topic", "cooking"], "topic 'cooking' not in tiny.yaml"),
])
def test_sweep_and_compare_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    tg.write_conversations(domain_conversations(repeats=1)[0], tmp_path / "c.jsonl")
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


TINY = textwrap.dedent("""
    name: tiny
    output: out
    backends: {local: {type: llamacpp, n_ctx: 512}}
    agents:
      - {name: m1, persona: "m1 is a mathematician.", labels: [math]}
      - {name: m2, persona: "m2 is a mathematician.", labels: [math]}
      - {name: d1, persona: "d1 is a physician.", labels: [medical]}
      - {name: d2, persona: "d2 is a physician.", labels: [medical]}
    topics: [mathematics]
    conversation: {turns: 4, repeats: 1}
    communities: {n_seeds: 2}
""")


def fill_store(config, path, repeats):
    """Write the planned conversations of ``config`` (with ``repeats``) into a store, no model calls."""
    import dataclasses

    from teamgraph.pipeline import open_backends, plan

    config = dataclasses.replace(config, conversation=dataclasses.replace(config.conversation, repeats=repeats))
    rng = np.random.default_rng(0)
    with tg.Store(path) as store:
        for spec in plan(config, open_backends(config)):
            store.add_conversation(spec.id, spec.opener.name, spec.partner.name, spec.topic, spec.turns, {})
            names = (spec.opener.name, spec.partner.name)
            store.add_utterances([{"conversation_id": spec.id, "turn": t, "speaker": names[t % 2],
                                   "text": " ".join(rng.choice(VOCAB[DOMAIN[names[t % 2]]], 4))}
                                  for t in range(spec.turns)])


def test_config_conversations_reads_the_planned_ones_from_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    config = load_config(tmp_path / "tiny.yaml")
    fill_store(config, tmp_path / "out" / "store.sqlite", repeats=1)
    convs, repeat_of = config_conversations(config)
    assert len(convs) == 6 and set(repeat_of.values()) == {0}
    import dataclasses

    three = dataclasses.replace(config, conversation=dataclasses.replace(config.conversation, repeats=3))
    with pytest.raises(InputError, match="12 of 18 planned conversations are not in the store; pass --run"):
        config_conversations(three)


def test_compare_cli_reports_each_metric_repeat_and_topic(tmp_path, monkeypatch, capsys, fake_embedder):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    fill_store(load_config(tmp_path / "tiny.yaml"), tmp_path / "out" / "store.sqlite", repeats=2)
    code = main(["compare", "tiny.yaml", "--repeats", "1", "2", "--metrics", "mean_cosine,cross_speaker_cosine",
                 "--permutations", "10", "--csv", "cmp.csv"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tiny: 12 conversations" in out
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert list(table["metric"]) == ["mean_cosine"] * 2 + ["cross_speaker_cosine"] * 2
    assert list(table["repeats"]) == [1, 2, 1, 2] and list(table["n_conversations"]) == [6, 12, 6, 12]
    assert table["ari"].notna().all()


def test_topic_option_loads_only_that_topics_conversations(tmp_path, monkeypatch, capsys, fake_embedder):
    import dataclasses

    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(TINY.replace("topics: [mathematics]", "topics: [mathematics, medicine]"))
    config = load_config(tmp_path / "two.yaml")
    fill_store(dataclasses.replace(config, topics=("mathematics",)), tmp_path / "out" / "store.sqlite", repeats=1)
    assert main(["compare", "two.yaml", "--metrics", "mean_cosine", "--permutations", "5"]) == 2
    assert "6 of 12 planned conversations are not in the store" in capsys.readouterr().err
    assert main(["compare", "two.yaml", "--metrics", "mean_cosine", "--permutations", "5", "--topic", "mathematics"]) == 0
    out = capsys.readouterr().out
    assert "tiny: 6 conversations" in out and "medicine" not in out.split("\n", 1)[1]
    # asking for "all" too means all topics: the missing medicine conversations are needed again
    assert main(["compare", "two.yaml", "--metrics", "mean_cosine", "--topic", "mathematics", "--topic", "all"]) == 2
