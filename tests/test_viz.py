"""Every figure function renders to a PNG of the expected pixel size (and an SVG), deterministically."""
import hashlib
import sqlite3
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import teamgraph as tg  # noqa: E402
from teamgraph import viz  # noqa: E402
from teamgraph.cli import main  # noqa: E402
from teamgraph.embedding import Embedder  # noqa: E402
from teamgraph.errors import InputError  # noqa: E402

from .conftest import CountingEncoder  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "example_conversations.jsonl"
DPI = 50


@pytest.fixture(scope="module")
def conversations():
    return tg.read_conversations(EXAMPLES)


@pytest.fixture(scope="module")
def embedder():
    return Embedder(CountingEncoder())


@pytest.fixture(scope="module")
def values(conversations, embedder):
    return tg.relationship_values(conversations, metric="cumulative_cosine", embedder=embedder)


@pytest.fixture(scope="module")
def partitions(values):
    return {t: tg.find_communities(g, n_seeds=3) for t, g in tg.build_graphs(values, threshold="mean").items()}


def render(fig_or_ax, path):
    """Save as PNG and SVG; check the PNG is a non-blank image of the figure's size; return its pixels."""
    fig = fig_or_ax if isinstance(fig_or_ax, matplotlib.figure.Figure) else fig_or_ax.figure
    width, height = fig.get_size_inches()
    files = viz.save_figure(fig, path, formats=("png", "svg"), dpi=DPI)
    assert [f.suffix for f in files] == [".png", ".svg"]
    png, svg = files
    pixels = mpimg.imread(png)
    assert pixels.shape[:2] == (round(height * DPI), round(width * DPI))
    assert pixels[..., :3].std() > 0.01, "blank image"
    assert svg.stat().st_size > 1000 and "<svg" in svg.read_text()[:2000]
    assert not plt.fignum_exists(fig.number)  # save_figure closes the figure
    return pixels


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- figures -------------------------------------------------------------------------------------

def test_plot_graph_png_and_svg(partitions, tmp_path):
    ax = viz.plot_graph(partitions["all"])
    assert ax.figure.get_size_inches().tolist() == [6, 5]
    assert "Q=" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("team 0")
    render(ax, tmp_path / "graph")


def test_plot_graph_widths_follow_weights_and_team_colours(partitions):
    part = partitions["all"]
    ax = viz.plot_graph(part)
    edges = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)][0]
    widths = edges.get_linewidths()
    weights = [w for _, _, w in sorted((min(u, v), max(u, v), d["weight"]) for u, v, d in part.graph.edges(data=True))]
    assert np.argmax(widths) == np.argmax(weights) and np.argmin(widths) == np.argmin(weights)
    assert max(widths) > min(widths)
    plt.close(ax.figure)


def test_plot_graph_accepts_a_bare_graph_and_rejects_missing_positions(partitions, tmp_path):
    graph = partitions["mathematics"].graph
    render(viz.plot_graph(graph), tmp_path / "bare")
    with pytest.raises(InputError, match="no position"):
        viz.plot_graph(graph, pos={"Ada": (0, 0)})
    plt.close("all")


def node_offsets(ax):
    nodes = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    return np.asarray(nodes[0].get_offsets())


def test_topic_grid_uses_one_layout_for_every_topic(partitions, tmp_path):
    per_topic = {t: partitions[t] for t in ("mathematics", "medicine")}
    fig = viz.plot_topic_grid(per_topic)
    assert fig.get_size_inches().tolist() == pytest.approx([8.4, 4.0])
    panels = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_title().splitlines()[0] for ax in panels] == ["mathematics", "medicine"]
    first = node_offsets(panels[0])
    assert len(first) == 5
    for ax in panels[1:]:
        np.testing.assert_allclose(node_offsets(ax), first)  # same agent, same place
    render(fig, tmp_path / "grid")


def test_topic_grid_lays_out_rows_and_rejects_bad_input(partitions, tmp_path):
    fig = viz.plot_topic_grid(partitions, ncols=2)  # 3 panels -> 2 x 2, one left blank
    assert fig.get_size_inches().tolist() == pytest.approx([8.4, 8.0])
    render(fig, tmp_path / "grid4")
    with pytest.raises(InputError):
        viz.plot_topic_grid({})
    with pytest.raises(InputError, match="not a Partition"):
        viz.plot_topic_grid({"x": partitions["all"].graph})


def test_team_colours_follow_members_across_topics():
    def part(groups):
        g = nx.Graph()
        for members in groups:
            g.add_nodes_from(members)
            g.add_edges_from((a, b, {"weight": 1.0}) for i, a in enumerate(members) for b in members[i + 1:])
        return tg.find_communities(g, n_seeds=1)

    ref = part([["a", "b", "c"], ["d", "e"]])
    swapped = part([["d", "e", "x"], ["a", "b"]])  # team 0 here is ref's team 1
    assert viz.aligned_team_colors(ref) == [0, 1]
    assert viz.aligned_team_colors(swapped, ref) == [1, 0]
    colors = viz.community_colors(swapped, reference=ref)
    assert colors["a"] == viz.community_colors(ref)["a"]


def test_value_heatmap_is_ordered_by_community(values, partitions, tmp_path):
    part = partitions["all"]
    ax = viz.plot_value_heatmap(values, part)
    order = [n for c in part.communities for n in c]
    assert [t.get_text() for t in ax.get_yticklabels()] == order
    matrix = ax.images[0].get_array()
    assert matrix.mask.diagonal().all()
    np.testing.assert_allclose(matrix.filled(0), matrix.filled(0).T)
    ab = values[(values["agent_a"] == "Ada") & (values["agent_b"] == "Euler")]["weight"].mean()
    assert matrix[order.index("Ada"), order.index("Euler")] == pytest.approx(ab)
    assert len(ax.patches) == len(part.teams)  # one outline per team
    render(ax, tmp_path / "heatmap")


def test_value_heatmap_of_a_graph_blanks_removed_edges(partitions, values, tmp_path):
    part = partitions["mathematics"]
    ax = viz.plot_value_heatmap(part.graph, part)
    matrix = ax.images[0].get_array()
    n = len(part.nodes)
    assert (~matrix.mask).sum() == 2 * part.graph.number_of_edges() < n * (n - 1)
    render(ax, tmp_path / "heatmap_graph")
    one = viz.plot_value_heatmap(values, topic="medicine")
    assert "medicine" in one.get_title()
    render(one, tmp_path / "heatmap_topic")
    with pytest.raises(InputError, match="topic 'cooking'"):
        viz.plot_value_heatmap(values, topic="cooking")
    with pytest.raises(InputError, match="lack column"):
        viz.plot_value_heatmap(pd.DataFrame({"a": [1]}))


def test_trajectory_projects_colours_and_numbers_turns(conversations, embedder, tmp_path):
    conv = conversations[0]
    ax = viz.plot_trajectory(conv, embedder)
    points = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert sorted(len(p.get_offsets()) for p in points) == [2, 2]  # two speakers, two turns each
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [conv.agent_a, conv.agent_b]
    assert ax.get_xlabel().startswith("PC1")
    render(ax, tmp_path / "trajectory")


def test_trajectory_from_given_embeddings_skips_empty_turns(tmp_path):
    conv = tg.Conversation("a", "b", "t", [tg.Utterance("a", "x"), tg.Utterance("b", "", "empty"),
                                           tg.Utterance("a", "y"), tg.Utterance("b", "z")])
    e = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    ax = viz.plot_trajectory(conv, embeddings=e)
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["1", "3", "4"]
    assert "turn(s) 2 empty" in ax.get_title()
    render(ax, tmp_path / "traj_given")
    with pytest.raises(InputError, match="4 utterances"):
        viz.plot_trajectory(conv, embeddings=e[:3])
    with pytest.raises(InputError, match="no non-empty"):
        viz.plot_trajectory(tg.Conversation("a", "b", "t", [tg.Utterance("a", "", "error")]), embeddings=np.zeros((1, 3)))


def test_evaluation_chart_from_a_simple_table(tmp_path):
    table = pd.DataFrame({
        "benchmark": ["mmlu_math"] * 3 + ["mmlu_medical"] * 3,
        "team": ["community 0", "random", "best single"] * 2,
        "accuracy": [0.4, 0.3, 0.35, 0.2, 0.25, 0.3],
        "std": [np.nan, 0.05, np.nan, np.nan, 0.04, np.nan],
    })
    ax = viz.plot_evaluation(table, chance=0.25)
    bars = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert [round(b.get_height(), 3) for b in bars] == [0.4, 0.3, 0.35, 0.2, 0.25, 0.3]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table["team"])
    assert {t.get_text() for t in ax.texts} == {"mmlu_math", "mmlu_medical"}
    errorbars = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(errorbars[0].get_segments()) == 2  # only the random rows have a spread
    render(ax, tmp_path / "evaluation")


def test_evaluation_chart_from_runner_style_scores(tmp_path):
    rows = []
    for group in ("mmlu_math", "gsm8k"):
        for kind, team, std in (("community", "Ada+Euler", np.nan), ("random", "random size 2", 0.1),
                                ("curated", "Galen+Koch", np.nan)):
            for protocol, acc in (("majority", 0.3), ("weighted", 0.2), ("oracle", 0.6)):
                rows.append({"group": group, "kind": kind, "team": team, "protocol": protocol,
                             "accuracy": acc, "accuracy_std": std, "source": "medical" if kind == "curated" else ""})
        rows.append({"group": group, "kind": "single", "team": "Ada", "protocol": "single", "accuracy": 0.5,
                     "accuracy_std": np.nan})
    scores = pd.DataFrame(rows)
    ax = viz.plot_evaluation(scores)  # default: each team's majority row, plus the single agent
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:4] == ["community: Ada+Euler", "random size 2", "curated medical: Galen+Koch", "single: Ada"]
    assert len(labels) == 8
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["community", "random", "curated", "single"]
    render(ax, tmp_path / "evaluation_runner")
    both = viz.plot_evaluation(scores, protocols=["majority", "oracle"])
    assert "community: Ada+Euler (oracle)" in [t.get_text() for t in both.get_xticklabels()]
    plt.close(both.figure)
    with pytest.raises(InputError, match="accuracy column"):
        viz.plot_evaluation(pd.DataFrame({"team": ["a"], "value": [1]}))
    with pytest.raises(InputError, match="non-empty"):
        viz.plot_evaluation(pd.DataFrame())
    with pytest.raises(InputError, match="no rows with protocol"):
        viz.plot_evaluation(scores, protocols=["debate"])
    plt.close("all")


def test_evaluation_chart_of_the_real_runner_table(tmp_path):
    runner = pytest.importorskip("teamgraph.evaluation.runner")
    agents = ["Ada", "Euler", "Galen", "Koch"]
    gold = pd.Series({f"q{i}": "ABCD"[i % 4] for i in range(8)})
    answers = pd.DataFrame([{"item_id": i, "agent": a, "answer": "ABCD"[(k + j) % 4]}
                            for k, i in enumerate(gold.index) for j, a in enumerate(agents)])
    teams = [runner.TeamSpec("community", ("Ada", "Euler"), "mathematics"),
             runner.TeamSpec("curated", ("Galen", "Koch"), "medical")]
    scores, _ = runner.score_group("mmlu_math", answers, gold, agents, teams, random_draws=5)
    ax = viz.plot_evaluation(scores)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any("Ada+Euler" in label for label in labels) and any("random" in label for label in labels)
    render(ax, tmp_path / "evaluation_real")


# -- files ---------------------------------------------------------------------------------------

def test_identical_figures_give_identical_bytes(partitions, conversations, embedder, tmp_path):
    for run in ("a", "b"):
        viz.save_figure(viz.plot_topic_grid(partitions), tmp_path / run / "grid", formats=("png", "svg"))
        viz.save_figure(viz.plot_trajectory(conversations[3], embedder), tmp_path / run / "traj", formats=("png", "svg"))
    for name in ("grid.png", "grid.svg", "traj.png", "traj.svg"):
        assert sha(tmp_path / "a" / name) == sha(tmp_path / "b" / name), name


def test_save_figure_names(tmp_path):
    fig, _ = plt.subplots()
    files = viz.save_figure(fig, tmp_path / "fig.png", formats=("png", "svg"))
    assert [f.name for f in files] == ["fig.png", "fig.svg"]
    fig, _ = plt.subplots()
    assert [f.name for f in viz.save_figure(fig, tmp_path / "graph_v1.5")] == ["graph_v1.5.png"]


def test_write_figures_writes_every_figure(partitions, values, conversations, embedder, tmp_path):
    table = pd.DataFrame({"team": ["a", "b"], "accuracy": [0.2, 0.4]})
    files = viz.write_figures(tmp_path, partitions, values, conversations, embedder, evaluation=table,
                              formats=("png",), n_trajectories=2, dpi=40)
    names = [f.name for f in files]
    assert names == [
        "graph_mathematics.png", "graph_medicine.png", "graph_all.png", "topics.png",
        "heatmap_mathematics.png", "heatmap_medicine.png", "heatmap_all.png",
        "trajectory_ada_euler_mathematics.png", "trajectory_ada_euler_medicine.png", "evaluation.png",
    ]
    assert all(f.stat().st_size > 1000 for f in files)


# -- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def fake_embedder(monkeypatch):
    """The CLI builds Embedder(name): make every name load the bag-of-words test encoder."""
    monkeypatch.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test:bag-of-words"))
    monkeypatch.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())


def test_plot_command_from_conversations(fake_embedder, tmp_path, capsys):
    table = tmp_path / "scores.csv"
    pd.DataFrame({"benchmark": ["m", "m"], "team": ["a", "random"], "accuracy": [0.3, 0.2],
                  "std": [None, 0.1]}).to_csv(table, index=False)
    code = main(["plot", "--conversations", str(EXAMPLES), "--out", str(tmp_path / "figs"),
                 "--trajectories", "1", "--evaluation", str(table), "--dpi", "40"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[all] teams:" in out and "wrote 18 files" in out
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    for stem in ("graph_all", "graph_mathematics", "graph_medicine", "topics", "heatmap_all",
                 "trajectory_ada_euler_mathematics", "evaluation"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    assert mpimg.imread(tmp_path / "figs" / "graph_all.png").shape[:2] == (200, 240)  # 6 x 5 in at 40 dpi


def store_conversations(store, conversations, ids=None):
    for i, c in enumerate(conversations):
        conv_id = ids[i] if ids else c.id
        store.add_conversation(conv_id, c.agent_a, c.agent_b, c.topic, len(c.utterances), {})
        store.add_utterances({"conversation_id": conv_id, "turn": t, "speaker": u.speaker, "text": u.text}
                             for t, u in enumerate(c.utterances))


def test_plot_command_from_a_store(fake_embedder, tmp_path, conversations, capsys):
    db = tmp_path / "store.sqlite"
    with tg.Store(db) as store:
        store_conversations(store, conversations)
    code = main(["plot", "--store", str(db), "--out", str(tmp_path / "figs"), "--topic", "mathematics",
                 "--formats", "png", "--metric", "cross_speaker_cosine", "--threshold", "top_k:1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "10 conversations, cross_speaker_cosine, threshold top_k:1" in out and "[mathematics]" in out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "graph_mathematics.png", "heatmap_mathematics.png", "trajectory_ada_euler_mathematics.png",
        "trajectory_ada_florence_mathematics.png", "trajectory_ada_galen_mathematics.png"]
    # the store now caches the embeddings, so plotting again embeds nothing new
    n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert n == len({u.text for c in conversations if c.topic == "mathematics" for u in c.utterances})


def test_plot_command_with_config_draws_only_that_runs_conversations(fake_embedder, tmp_path, conversations, capsys):
    pytest.importorskip("llama_cpp")  # conversation ids hash the backend: the config's backend must open
    from teamgraph.config import load_config
    from teamgraph.pipeline import open_backends, plan

    config = tmp_path / "cfg.yaml"
    config.write_text(
        "backends: {local: {type: llamacpp}}\n"
        "agents: [{name: Ada, labels: [math]}, {name: Euler, labels: [math]}, {name: Galen, labels: [medical]}]\n"
        "topics: [mathematics]\nconversation: {turns: 4}\n"
        "scoring: {metric: mean_cosine}\ngraph: {threshold: none}\ncommunities: {n_seeds: 2}\n")
    cfg = load_config(config)
    backends = open_backends(cfg)
    specs = plan(cfg, backends)
    by_pair = {(c.agent_a, c.agent_b, c.topic): c for c in conversations}
    planned = [by_pair[(s.opener.name, s.partner.name, s.topic)] for s in specs]
    db = tmp_path / "store.sqlite"
    with tg.Store(db) as store:
        store_conversations(store, conversations)  # another run's conversations share the store
        store_conversations(store, planned, ids=[s.id for s in specs])
    code = main(["plot", "--store", str(db), "--config", str(config), "--out", str(tmp_path / "figs"),
                 "--formats", "svg", "--trajectories", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "3 conversations, mean_cosine, threshold none" in out, out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "graph_all.svg", "graph_mathematics.svg", "heatmap_all.svg", "heatmap_mathematics.svg"]
    empty = tmp_path / "empty.sqlite"
    with tg.Store(empty) as store:
        store_conversations(store, conversations)
    assert main(["plot", "--store", str(empty), "--config", str(config), "--out", str(tmp_path / "x")]) == 2
    assert f"no complete conversations of {config}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--conversations", "missing.jsonl"], "missing.jsonl: cannot read"),
        (["--store", "missing.sqlite"], "missing.sqlite: no such store file"),
        (["--store", "EMPTY"], "no complete conversations"),
        (["--store", "NOTDB"], "not a usable teamgraph store"),
        (["--conversations", "GOOD", "--topic", "cooking"], "--topic: 'cooking'"),
        (["--conversations", "GOOD", "--formats", "png,gif"], "--formats: 'png,gif'"),
        (["--conversations", "GOOD", "--metric", "nope"], "unknown metric 'nope'"),
        (["--conversations", "GOOD", "--threshold", "median"], "threshold: 'median'"),
        (["--conversations", "GOOD", "--evaluation", "none.csv"], "none.csv: cannot read"),
        (["--conversations", "GOOD", "--evaluation", "GOOD"], "needs a team and an accuracy column"),
        (["--conversations", "GOOD", "--trajectories", "-1"], "--trajectories must be >= 0"),
        (["--conversations", "GOOD", "--store", "x"], "not allowed with argument"),
        ([], "one of the arguments --store --conversations is required"),
    ],
)
def test_plot_bad_input_exits_2_with_one_line(fake_embedder, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    Path("GOOD").write_text(EXAMPLES.read_text())
    tg.Store("EMPTY").close()
    Path("NOTDB").write_text("not sqlite" * 200)
    code = main(["plot", "--out", "figs", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("teamgraph: error:"), err
    assert message in err
    assert not Path("figs").exists()
