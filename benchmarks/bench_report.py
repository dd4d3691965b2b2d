"""Report benchmark (issue 14, point 4): file size and time to first paint of `teamgraph report` pages.

    python benchmarks/bench_report.py [--quick] [--agents N] [--edges M] [--store S --config C | --page HTML] [--json OUT]

- ``report.synthetic.*``: a synthetic run of 200 agents (``--quick``: 60) in 8 planted families, two
  topics of 10,000 measured pairs each (``--edges``: 20,000 in all; ``--quick``: 1,000), every pair
  with one conversation of 6 distinct utterances of 25-45 words, threshold ``none`` so every
  measured pair is an edge, plus the all-topics graph. Reported: the time to build the page in
  Python (layout, figures, HTML; communities not counted), the file size, and in headless Chromium
  (Debian's, driven by Playwright, from ``file://``): first contentful paint, the time until the
  first graph is drawn (``window.teamgraphReport.firstGraphMs``, from navigation start), a topic
  switch and an edge click (until the conversation shows), each the median of ``--repeats`` page
  loads; and a screenshot (``--shots``, default ``out/bench``).
- ``report.demo.*``: the same for the report of a real store: ``<out>/report.html`` when ``make run``
  made one (default ``out/demo``), else ``teamgraph report --store S --config C`` built here
  (default ``out/demo/store.sqlite`` and ``data/demo_zoo.yaml``), or the page ``--page``; SKIP when there
  is none of these.

No targets: the issue asks for the figures. Every line carries the 1-minute load average.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TOPICS = ("mathematics", "medicine")
N_FAMILIES = 8


def synthetic_run(n_agents: int, n_edges: int, seed: int = 0):
    """(partitions, conversations, values, agents) of a synthetic run; communities as `teamgraph run` finds them."""
    import numpy as np
    import pandas as pd

    from teamgraph.communities import find_communities
    from teamgraph.conversations import Conversation, Utterance
    from teamgraph.graph import build_graphs
    from teamgraph.validation import label_agreement, label_kinds

    rng = np.random.default_rng(seed)
    names = [f"agent{i:03d}" for i in range(n_agents)]
    family = rng.integers(0, N_FAMILIES, n_agents)
    role = rng.integers(0, 2, n_agents)
    agents = {n: {"model": f"model-{family[i]}", "persona": f"{n} is a {'mathematician' if role[i] else 'physician'}.",
                  "labels": [f"family:f{family[i]}", f"role:{'math' if role[i] else 'medical'}"]}
              for i, n in enumerate(names)}
    i_all, j_all = np.triu_indices(n_agents, k=1)
    per_topic = n_edges // len(TOPICS)
    if per_topic > len(i_all):
        raise SystemExit(f"{n_agents} agents have only {len(i_all)} pairs; ask for at most {len(i_all) * len(TOPICS)} edges")
    texts = iter(C.synthetic_utterances(n_edges * 6, seed=seed))
    rows, conversations = [], []
    for t, topic in enumerate(TOPICS):
        chosen = rng.choice(len(i_all), size=per_topic, replace=False)
        same = (family if t == 0 else role)[i_all[chosen]] == (family if t == 0 else role)[j_all[chosen]]
        weights = np.where(same, 3.2, 2.0) + rng.normal(0, 0.4, per_topic)
        for k, w, in zip(chosen, weights):
            a, b = names[i_all[k]], names[j_all[k]]
            conv = Conversation(a, b, topic, tuple(Utterance((a, b)[u % 2], next(texts)) for u in range(6)))
            conversations.append(conv)
            rows.append({"agent_a": a, "agent_b": b, "topic": topic, "weight": float(max(w, 0.01)),
                         "n_conversations": 1, "conversation_ids": [conv.id]})
    values = pd.DataFrame(rows)
    values.attrs.update(metric="cumulative_cosine", embedder="synthetic")
    graphs = build_graphs(values, threshold="none", agents=agents)
    labels = {n: a["labels"] for n, a in agents.items()}
    partitions = {}
    for topic, g in graphs.items():
        p = find_communities(g, n_seeds=10, seed=0)
        p = p.with_validation(label_agreement(p, seed=0))
        for kind in label_kinds(labels):
            p = p.with_validation(label_agreement(p, seed=0, kind=kind), kind)
        partitions[topic] = p
    return partitions, conversations, values, agents


def measure_page(browser, path: Path, repeats: int, shot: Path | None) -> dict:
    """Median first contentful paint, first graph drawn, topic switch and edge click of ``path`` in Chromium."""
    url = path.resolve().as_uri()
    fcp, graph, painted, unpack, switch, click, requests = [], [], [], [], [], [], set()
    for r in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda req: requests.add(req.url))
        page.goto(url, wait_until="load", timeout=300_000)
        page.wait_for_function("window.teamgraphReport && window.teamgraphReport.ready", timeout=300_000, polling=50)
        fcp.append(page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"))
        graph.append(page.evaluate("() => window.teamgraphReport.firstGraphMs"))
        page.wait_for_function("() => window.teamgraphReport.firstGraphPaintedMs && window.teamgraphReport.conversationsReady",
                               timeout=300_000, polling=50)
        painted.append(page.evaluate("() => window.teamgraphReport.firstGraphPaintedMs"))
        unpack.append(page.evaluate("() => window.teamgraphReport.conversationsMs"))
        topics = page.evaluate("() => JSON.parse(document.getElementById('teamgraph-data').textContent).topics")
        if len(topics) > 1:  # in the page: from the switch until the next frame after plotly is done
            switch.append(page.evaluate("""(topic) => new Promise(done => { const t0 = performance.now();
                window.teamgraphReport.showTopic(topic).then(() => requestAnimationFrame(() =>
                    requestAnimationFrame(() => done(performance.now() - t0)))); })""", topics[1]))
        x, y = page.evaluate("""() => { const gd = document.getElementById('graph'), fl = gd._fullLayout;
            const t = gd._fullData.find(t => t.meta === 'edges'), box = gd.getBoundingClientRect(), i = Math.floor(t.x.length / 2);
            return [box.left + fl._size.l + fl.xaxis.l2p(t.x[i]), box.top + fl._size.t + fl.yaxis.l2p(t.y[i])]; }""")
        page.mouse.move(x, y)
        t0 = time.perf_counter()
        page.mouse.click(x, y)  # a real click on an edge's midpoint: plotly finds the nearest of all midpoints
        page.wait_for_selector("#details ol.utterances", timeout=60_000)
        click.append((time.perf_counter() - t0) * 1000)
        if shot is not None and r == 0:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
        page.close()
    med = lambda xs: statistics.median(xs) if xs and None not in xs else None  # noqa: E731
    return {"fcp_ms": med(fcp), "first_graph_ms": med(graph), "graph_painted_ms": med(painted),
            "unpack_ms": med(unpack), "switch_ms": med(switch), "edge_click_ms": med(click),
            "runs": {"fcp_ms": fcp, "first_graph_ms": graph, "graph_painted_ms": painted, "unpack_ms": unpack,
                     "switch_ms": switch, "edge_click_ms": click},
            "requests_other_than_the_file": sorted(u for u in requests if u != url)}


def lines(prefix: str, what: str, size: int, page: dict, build_s: float | None, shot: Path | None, extra: dict,
          build_what: str = "build the page in Python (layout, figures, HTML)") -> list:
    detail = {**extra, **page, "bytes": size, "screenshot": str(shot) if shot else None}
    out = []
    if build_s is not None:
        out.append(C.result(f"{prefix}.build", f"{what}: {build_what}", build_s, "s", detail=detail))
    out += [
        C.result(f"{prefix}.size", f"{what}: file size", size / 1e6, "MB", detail=detail),
        C.result(f"{prefix}.first_paint", f"{what}: first contentful paint in headless Chromium", page["fcp_ms"], "ms",
                 detail=detail),
        C.result(f"{prefix}.first_graph", f"{what}: first graph drawn (plotly done)", page["first_graph_ms"], "ms",
                 detail=detail, note=f"screenshot {shot}" if shot else ""),
        C.result(f"{prefix}.graph_painted", f"{what}: first graph on screen (next frame)", page["graph_painted_ms"], "ms",
                 detail=detail),
        C.result(f"{prefix}.unpack", f"{what}: unpack the conversations (after the graph)", page["unpack_ms"], "ms",
                 detail=detail),
        C.result(f"{prefix}.switch", f"{what}: switch topic (until on screen)", page["switch_ms"], "ms", detail=detail),
        C.result(f"{prefix}.edge_click", f"{what}: click an edge to its conversation", page["edge_click_ms"], "ms",
                 detail=detail),
        C.result(f"{prefix}.requests", f"{what}: requests leaving the page", len(page["requests_other_than_the_file"]),
                 "", 0, "<=", detail=detail),
    ]
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=None, help="synthetic agents (default 200; --quick 60)")
    p.add_argument("--edges", type=int, default=None, help="synthetic edges over both topics (default 20000; --quick 1000)")
    p.add_argument("--repeats", type=int, default=None, help="page loads per figure (default 3; --quick 1)")
    p.add_argument("--out", default="out/demo", help="folder of a `make run` (its report.html, store.sqlite)")
    p.add_argument("--store", default=None, help="store to build the demo report from (default: <out>/store.sqlite)")
    p.add_argument("--config", default="data/demo_zoo.yaml", help="run config of that store")
    p.add_argument("--page", default=None, help="measure this report file instead of the demo's")
    p.add_argument("--shots", default="out/bench", help="folder for the screenshots")
    args = p.parse_args()
    n_agents = args.agents or (60 if args.quick else 200)
    n_edges = args.edges or (1000 if args.quick else 20000)
    repeats = args.repeats or (1 if args.quick else 3)
    shots = Path(args.shots)

    from teamgraph.errors import MissingDependencyError
    from teamgraph.report import build_report
    from teamgraph.report.browser import chromium, find_chromium

    try:
        find_chromium()
    except MissingDependencyError as exc:
        C.emit([C.result("report", "report benchmarks", None, "", status="SKIP", note=str(exc))], args.json)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        t0 = time.perf_counter()
        partitions, conversations, values, agents = synthetic_run(n_agents, n_edges)
        analyse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        page = build_report(partitions, conversations, values, agents=agents,
                            title=f"synthetic: {n_agents} agents, {n_edges} edges")
        path = page.write(Path(tmp) / "synthetic.html")
        build_s = time.perf_counter() - t0
        shot = shots / "report_synthetic.png"
        measured = measure_page(browser, path, repeats, shot)
        edges = {t: part.graph.number_of_edges() for t, part in partitions.items()}
        results += lines("report.synthetic", f"{n_agents} agents, {sum(edges[t] for t in TOPICS)} edges",
                         path.stat().st_size, measured, build_s, shot,
                         {"agents": n_agents, "edges_per_graph": edges, "conversations": len(conversations),
                          "communities_s": analyse_s, "repeats": repeats})

        demo = Path(args.out) / "report.html"
        store = Path(args.store) if args.store else Path(args.out) / "store.sqlite"
        if args.page:
            source, build_s = Path(args.page), None
            if not source.is_file():
                raise SystemExit(f"--page {source}: no such file")
        elif args.store is None and demo.is_file():
            source, build_s = demo, None
        elif store.is_file():
            source = Path(tmp) / "demo.html"
            cmd = [sys.executable, "-m", "teamgraph", "report", "--store", str(store), "--out", str(source)]
            if args.config and Path(args.config).is_file():
                cmd += ["--config", args.config]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT)
            build_s = time.perf_counter() - t0
            if done.returncode != 0:
                results.append(C.result("report.demo", "report of a real store", None, "", status="ERROR",
                                        note=done.stderr.strip()[-300:]))
                source = None
        else:
            source = None
            results.append(C.result("report.demo", "report of the demo run", None, "", status="SKIP",
                                    note=f"no {demo} and no {store}: run `make run` first (or give --store/--config)"))
        if source is not None:
            shot = shots / "report_demo.png"
            measured = measure_page(browser, source, repeats, shot)
            what = f"{'report' if args.page else 'demo report'} ({source if build_s is None else store})"
            results += lines("report.demo", what, source.stat().st_size, measured, build_s, shot, {"repeats": repeats},
                             build_what="the whole `teamgraph report` command")
    C.emit(results, args.json)


if __name__ == "__main__":
    main()
