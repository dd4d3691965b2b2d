"""The HTML report (`teamgraph report`): its data, its escaping, the CLI's bad-input path, and a real
headless Chromium (Debian's `chromium`, driven by Playwright) opening it from file://.

The run behind the report is real (`pipeline.run` into a store, then `evaluate`), with fake backends
and a bag-of-words embedder: agents talk in words of their family under the topic `general` and of
their role under `medicine`, so the two topics' graphs differ, and every utterance of Dan carries a
`<script>` tag that must reach the page as text.
"""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from teamgraph.backends.base import GenerationResult
from teamgraph.cli import main
from teamgraph.conversations import write_conversations
from teamgraph.store import Store

from .conftest import CountingEncoder

XSS = "<script>alert(1)</script>"
AGENTS = {"Ada": ("f1", "math"), "Bob": ("f2", "math"), "Cleo": ("f1", "medical"), "Dan": ("f2", "medical"),
          "Emmy": ("f3", "math"), "Finn": ("f3", "medical")}
VOCAB = {"f1": "algebra lattice prime", "f2": "ward nurse fever", "f3": "orbit quark photon",
         "math": "theorem proof lemma", "medical": "dose patient symptom"}

CONFIG = """
name: report-test
output: {out}
backends:
  local: {{type: llamacpp}}
agents:
{agents}
topics: [general, medicine]
conversation: {{turns: 4}}
communities: {{n_seeds: 3, n_permutations: 19}}
evaluation: {{benchmarks: [mmlu_math], n_items: 6, max_tokens: 8, random_draws: 20}}
"""


class TopicTalk:
    """Replies in the words of the speaker's family (topic general) or role (medicine); Dan adds a script tag.

    Answers benchmark items with a letter picked from the prompt's hash (for `evaluate`).
    """

    max_batch = 8

    def describe(self):
        return {"type": "fake-topic-talk"}

    def close(self):
        pass

    def reply(self, req) -> str:
        text = req.prompt if req.prompt is not None else "\n".join(m["content"] for m in req.messages)
        if "Let's discuss" not in text:  # a benchmark item
            return f"{'ABCD'[len(text) % 4]}. Because."
        family, role = AGENTS[req.agent]
        words = VOCAB[role] if "medicine" in text else VOCAB[family]
        extra = f" {XSS}" if req.agent == "Dan" else ""
        return f"{words} {req.seed % 7}{extra}"

    def generate(self, requests):
        return [GenerationResult.from_text(self.reply(r)) for r in requests]


def _config_text(out: Path) -> str:
    agents = "\n".join(f"  - {{name: {n}, model: model-{f}, persona: \"{n} knows <b>{r}</b> & more\", "
                       f"labels: [\"family:{f}\", \"role:{r}\"]}}" for n, (f, r) in AGENTS.items())
    return textwrap.dedent(CONFIG).format(out=out, agents=agents)


@pytest.fixture
def fakes(monkeypatch):
    backend = TopicTalk()
    monkeypatch.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test:bag-of-words"))
    monkeypatch.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())
    monkeypatch.setattr("teamgraph.pipeline.open_backends", lambda config: {"local": backend})
    return backend


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A run and an evaluation in a store, and the report `teamgraph report --store --config` makes of them."""
    from teamgraph import pipeline
    from teamgraph.config import load_config
    from teamgraph.evaluation import evaluate

    mp = pytest.MonkeyPatch()
    backend = TopicTalk()
    mp.setattr("teamgraph.embedding._resolve_model_path", lambda name: (name, "test:bag-of-words"))
    mp.setattr("teamgraph.embedding._load_sentence_transformer", lambda *a: CountingEncoder())
    mp.setattr("teamgraph.pipeline.open_backends", lambda config: {"local": backend})
    try:
        root = tmp_path_factory.mktemp("report")
        config_path = root / "run.yaml"
        config_path.write_text(_config_text(root / "out"))
        config = load_config(config_path)
        result = pipeline.run(config, progress=False, figures=False)
        evaluate(config, result.partitions, store=root / "out" / "store.sqlite", backends={"local": backend},
                 out_dir=root / "out" / "evaluation", progress=False)
        html_path = root / "report.html"
        code = main(["report", "--store", str(root / "out" / "store.sqlite"), "--config", str(config_path),
                     "--out", str(html_path)])
        assert code == 0
    finally:
        mp.undo()
    return {"root": root, "html": html_path, "result": result, "config": config}


def page_data(html: str) -> dict:
    from teamgraph.report import read_page_data

    return read_page_data(html)


# -- the file ----------------------------------------------------------------------------------------

def test_the_report_is_one_self_contained_file_with_the_runs_data(built):
    html = built["html"].read_text(encoding="utf-8")
    result = built["result"]
    # no second file: nothing loaded by src/href, no URL in a style, plotly.js inline
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)\s*=", html, re.I)
    assert "Plotly" in html and "cdn.plot.ly/plotly" not in html
    doc = page_data(html)
    assert doc["topics"] == list(result.partitions) == ["general", "medicine", "all"]
    assert [a["name"] for a in doc["agents"]] == sorted(AGENTS)
    ada = next(a for a in doc["agents"] if a["name"] == "Ada")
    assert ada["model"] == "model-f1" and ada["labels"] == ["family:f1", "role:math"]
    assert ada["persona"] == "Ada knows <b>math</b> & more"  # as written: the page shows it as text
    for topic, partition in result.partitions.items():
        view = doc["views"][topic]
        assert [t["members"] for t in view["teams"]] == partition.teams
        assert view["summary"]["modularity"] == pytest.approx(partition.modularity, abs=1e-3)
        assert view["summary"]["verdict"].startswith(("evidence", "no evidence"))
        assert {a["kind"] for a in view["summary"]["agreements"]} == {"family", "role"}
        drawn = {(e[0], e[1]) for e in view["edges"]}
        assert drawn == {tuple(sorted(e)) for e in partition.graph.edges}
        for e in view["edges"]:  # every edge's conversations are in the page, utterance by utterance
            for cid in e[4]:
                conv = doc["conversations"][cid]
                assert {conv["agent_a"], conv["agent_b"]} == {e[0], e[1]}
    # the evaluation recorded in the store is found and shown
    assert doc["evaluation"]["columns"][:3] == ["group", "kind", "team"]
    assert any(row[1] == "community" for row in doc["evaluation"]["rows"])
    assert doc["evaluation"]["image"].startswith("data:image/png;base64,")


def test_data_is_escaped_for_the_script_element():
    from teamgraph.report import script_json

    data = {"t": "</script><script>alert(1)</script> <!-- & \u2028", "n": [1.5, None]}
    text = script_json(data)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == data


def test_identical_inputs_give_identical_pages(built):
    from teamgraph.report import build_report

    r = built["result"]
    one = build_report(r.partitions, r.conversations, r.values, agents=built["config"].agents, title="x")
    two = build_report(r.partitions, r.conversations, r.values, agents=built["config"].agents, title="x")
    assert one.html == two.html
    assert 'srcdoc="' in one._repr_html_() and "<script>alert" not in one._repr_html_()


def test_report_from_a_conversations_file(tmp_path, fakes, capsys, built):
    src = tmp_path / "convs.jsonl"
    write_conversations(built["result"].conversations, src)
    code = main(["report", "--conversations", str(src), "--out", str(tmp_path / "r.html"), "--permutations", "0"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert str(tmp_path / "r.html") in out
    doc = page_data((tmp_path / "r.html").read_text())
    assert doc["topics"] == ["general", "medicine", "all"] and doc["evaluation"] is None
    assert doc["views"]["general"]["summary"]["verdict"] == "significance not tested"


def test_report_from_a_store_alone_takes_the_agents_from_its_run_records(tmp_path, fakes, capsys, built):
    store = built["root"] / "out" / "store.sqlite"
    code = main(["report", "--store", str(store), "--out", str(tmp_path / "r.html"), "--permutations", "0",
                 "--title", "<i>mine</i>"])
    assert code == 0, capsys.readouterr().err
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<title>&lt;i&gt;mine&lt;/i&gt;</title>" in html
    doc = page_data(html)
    assert {a["name"]: a["model"] for a in doc["agents"]} == {n: f"model-{f}" for n, (f, _) in AGENTS.items()}
    assert doc["evaluation"] is not None  # found through the store's evaluate record
    assert len(doc["conversations"]) == 30


def test_run_writes_the_report_and_prints_its_path(tmp_path, fakes, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(_config_text(tmp_path / "out"))
    assert main(["run", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "out" / "report.html"
    assert f"open the report in a browser: {report} ({report.resolve().as_uri()})" in out
    doc = page_data(report.read_text(encoding="utf-8"))
    assert doc["topics"] == ["general", "medicine", "all"] and doc["title"] == "teamgraph: report-test"
    assert len(doc["conversations"]) == 30 and doc["evaluation"] is None


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "--out", "r.html"], "one of the arguments --store --conversations is required"),
        (["report", "--store", "S", "--conversations", "GOOD", "--out", "r.html"], "not allowed with argument"),
        (["report", "--store", "missing.sqlite", "--out", "r.html"], "missing.sqlite: no such store file"),
        (["report", "--store", "NOTASTORE", "--out", "r.html"], "NOTASTORE: not a"),
        (["report", "--store", "EMPTY.sqlite", "--out", "r.html"], "no complete conversations"),
        (["report", "--conversations", "missing.jsonl", "--out", "r.html"], "missing.jsonl: cannot read"),
        (["report", "--conversations", "BAD", "--out", "r.html"], "BAD:2: invalid JSON"),
        (["report", "--conversations", "GOOD", "--out", "."], "is a folder"),
        (["report", "--conversations", "GOOD", "--out", "r.html", "--evaluation", "nope.csv"], "nope.csv: no such"),
        (["report", "--conversations", "GOOD", "--out", "r.html", "--evaluation", "GOOD"], "GOOD: not"),
        (["report", "--conversations", "GOOD", "--out", "r.html", "--permutations", "-1"], "--permutations"),
        (["report", "--conversations", "GOOD", "--out", "r.html", "--threshold", "median"], "threshold: 'median'"),
        (["report", "--conversations", "GOOD", "--out", "r.html", "--config", "nope.yaml"], "nope.yaml"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, fakes, built, args, message):
    monkeypatch.chdir(tmp_path)
    write_conversations(built["result"].conversations[:6], tmp_path / "GOOD")
    (tmp_path / "BAD").write_text((tmp_path / "GOOD").read_text().splitlines()[0] + "\n{oops\n")
    (tmp_path / "NOTASTORE").write_text("this is not a database\n" * 50)
    Store(tmp_path / "EMPTY.sqlite").close()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("teamgraph: error:"), err
    assert message in err
    assert not (tmp_path / "r.html").exists()


# -- in a real browser ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from teamgraph.errors import MissingDependencyError
    from teamgraph.report.browser import chromium

    try:
        with chromium() as b:
            yield b
    except MissingDependencyError as exc:  # fail, never skip: the browser test is part of `make test`
        pytest.fail(f"the report's browser test needs Chromium and Playwright: {exc}")


def _drawn_midpoints(page) -> list[str]:
    """The transform of every edge midpoint marker drawn (in SVG) in the graph now."""
    return page.evaluate("""() => {
        const gd = document.getElementById('graph');
        const k = gd.data.findIndex(t => t.meta === 'edges');
        const layer = gd.querySelectorAll('.scatterlayer .trace')[k];
        return Array.from(layer.querySelectorAll('path.point')).map(p => p.getAttribute('transform'));
    }""")


def _click_point(page, trace_meta: str, index: int) -> None:
    """Click one drawn point, as a person would: not within Plotly's double-click window of the last click.

    Two clicks on the plot within ``doubleClickDelay`` (300 ms), wherever they land, are a double click
    to Plotly: it resets the axes and the second click may select nothing. Clicking an agent 0.05-0.1 s
    after an edge failed 2 times in 4 here (and in CI, on a faster machine); 0.45 s after, 5 in 5 passed."""
    page.wait_for_timeout(page.evaluate("() => document.getElementById('graph')._context.doubleClickDelay") + 50)
    box = page.evaluate("""([meta, i]) => {
        const gd = document.getElementById('graph');
        const k = gd.data.findIndex(t => t.meta === meta);
        const r = gd.querySelectorAll('.scatterlayer .trace')[k].querySelectorAll('path.point')[i].getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2];
    }""", [trace_meta, index])
    page.mouse.move(box[0], box[1])
    page.mouse.click(box[0], box[1])


def test_the_report_works_in_headless_chromium_from_file_url(built, browser, tmp_path):
    from PIL import Image

    result = built["result"]
    url = built["html"].resolve().as_uri()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests, dialogs, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
    page.goto(url)
    page.wait_for_function("window.teamgraphReport && window.teamgraphReport.ready", timeout=60_000)

    # every agent of the run is drawn, with its name
    labels = page.eval_on_selector_all(".scatterlayer .textpoint text", "els => els.map(e => e.textContent)")
    assert sorted(labels) == sorted(AGENTS)
    general = result.partitions["general"]
    nodes = page.evaluate("() => document.getElementById('graph').querySelectorAll('.scatterlayer .trace')"
                          "[document.getElementById('graph').data.findIndex(t => t.meta === 'agents')]"
                          ".querySelectorAll('path.point').length")
    assert nodes == len(AGENTS)
    assert len(_drawn_midpoints(page)) == general.graph.number_of_edges() > 0

    # clicking an edge shows that pair's utterances
    edges = sorted(tuple(sorted(e)) for e in general.graph.edges)
    index = len(edges) // 2
    a, b = edges[index]
    _click_point(page, "edges", index)
    page.wait_for_function("([a, b]) => document.querySelector('#details h2').textContent === a + ' – ' + b", arg=[a, b])
    page.wait_for_selector("#details ol.utterances")
    shown = page.eval_on_selector_all("#details ol.utterances .text", "els => els.map(e => e.textContent)")
    ids = general.graph.edges[a, b]["conversations"]
    convs = {c.id: c for c in result.conversations}
    assert shown == [u.text for cid in ids for u in convs[cid].utterances] and shown
    speakers = set(page.eval_on_selector_all("#details ol.utterances .speaker", "els => els.map(e => e.textContent)"))
    assert speakers == {a, b}

    # clicking an agent shows its model, labels and partners; a partner's conversation with a <script> shows as text
    _click_point(page, "agents", sorted(AGENTS).index("Dan"))
    page.wait_for_function("() => document.querySelector('#details h2').textContent === 'Dan'")
    panel = page.inner_text("#details")
    assert "model-f2" in panel and "family:f2, role:medical" in panel and "Dan knows <b>medical</b> & more" in panel
    page.click("#details ol li button.link")
    page.wait_for_selector("#details ol.utterances")
    texts = page.eval_on_selector_all("#details ol.utterances .text", "els => els.map(e => e.textContent)")
    assert any(t.endswith(XSS) for t in texts), texts
    assert page.evaluate("() => document.querySelectorAll('#details script, #details b').length") == 0
    assert XSS in page.inner_text("#details")

    # switching topic changes the graph (the same agents, other edges and teams)
    before = _drawn_midpoints(page)
    page.click("nav#topics button[data-topic='medicine']")
    page.wait_for_function("() => window.teamgraphReport.draws >= 2 && window.teamgraphReport.topic === 'medicine'")
    after = _drawn_midpoints(page)
    assert len(after) == result.partitions["medicine"].graph.number_of_edges()
    assert set(after) != set(before)
    assert page.inner_text("#teams-title") == "Teams in medicine"
    rows = page.eval_on_selector_all("#teams tbody tr td:nth-child(2)", "els => els.map(e => e.textContent)")
    assert rows == [", ".join(t) for t in result.partitions["medicine"].teams]
    assert page.is_visible("#evaluation-section") and page.locator("#evaluation tbody tr").count() > 0

    # a screenshot that is not blank: the graph area has drawn pixels in several colours
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    box = page.locator("#graph").bounding_box()
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    graph = image[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
    assert image.std() > 10 and graph.std() > 5
    assert (graph.std(axis=2) > 40).mean() > 0.0005  # coloured (team) pixels, not only grey edges
    print(f"screenshot: {shot}")

    state = page.evaluate("() => ({errors: window.teamgraphReport.errors, violations: window.teamgraphReport.violations})")
    assert state == {"errors": [], "violations": []} and errors == []
    assert dialogs == []  # no alert ran
    assert requests == [url]  # nothing left the page: the only request is the file itself
    page.close()
