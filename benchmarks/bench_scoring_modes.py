"""Likelihood vs generation scoring of multiple choice (issue 11): items per second on the same items.

    python benchmarks/bench_scoring_modes.py [--quick] [--model NAME] [--max-tokens N] [--json OUT]

One zoo model (default Qwen2.5-Coder-0.5B-Instruct, the slowest of the demo) answers the same ARC-Easy
items three ways through teamgraph's llama.cpp backend, on a fresh store each time:
  generation  the chat prompt of `teamgraph evaluate`, a reply of up to --max-tokens tokens, then extraction
  likelihood  one forward pass, the most probable option letter (last position's logits only)
  cloze       each option's text scored after the question (one batched decode per option)
Reported: items per second of each, accuracy and parsed answers on these items, and the speed-up of the
likelihood modes over generation.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    p.add_argument("--max-tokens", type=int, default=128, help="generation budget (these models reason first)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    import os

    from teamgraph.backends.llamacpp import LlamaCppBackend
    from teamgraph.evaluation import load_benchmark
    from teamgraph.evaluation.answers import collect_answers
    from teamgraph.models import get_model
    from teamgraph.roster import Agent
    from teamgraph.store import Store

    n = 6 if args.quick else 20
    items = load_benchmark("arc_easy", n_items=n, seed=3)
    gold = items.set_index("item_id")["answer"]
    agent = Agent("Ada", model=args.model, format=get_model(args.model).format,
                  persona="You are Ada, a careful scientist.")
    backend = LlamaCppBackend(n_threads=args.threads or os.cpu_count() or 2, n_ctx=2048)
    backend._load(args.model)
    speeds, results = {}, []
    try:
        for mode in ("generation", "likelihood", "cloze"):
            with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
                seconds, answers = C.timed(lambda: collect_answers([agent], items, {"local": backend}, store,
                                                                   max_tokens=args.max_tokens, scoring=mode,
                                                                   progress=False))
            a = answers.set_index("item_id")["answer"].reindex(gold.index)
            speeds[mode] = n / seconds
            results.append(C.result(f"scoring_modes.{mode}.items_s", f"{args.model}, {mode}, {n} ARC-Easy items",
                                    speeds[mode], "items/s",
                                    detail={"seconds": seconds, "accuracy": float((a == gold).mean()),
                                            "parsed": int(a.notna().sum())},
                                    note=f"accuracy {(a == gold).mean():.2f}, {int(a.notna().sum())}/{n} answers parsed"))
    finally:
        backend.close()
    for mode in ("likelihood", "cloze"):
        results.append(C.result(f"scoring_modes.{mode}_vs_generation", f"{mode} / generation items per second",
                                speeds[mode] / speeds["generation"], "x"))
    C.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
