"""``teamgraph run`` and ``teamgraph plan``: a roster config through the whole pipeline, or a dry run."""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run_command", "plan_command"]


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a roster config: conversations, graphs, teams JSON and figures")
    run.add_argument("config", type=Path, help="run config (YAML)")
    run.add_argument("--out", default=None, help="output folder (default: the config's output)")
    run.add_argument("--store", default=None, help="SQLite store (default: <out>/store.sqlite)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--wait", action="store_true",
                     help="if another run writes to the store, wait for it to finish instead of exiting")
    run.set_defaults(func=run_command)

    plan = sub.add_parser("plan", help="dry run: count conversations and estimate tokens and time")
    plan.add_argument("config", type=Path, help="run config (YAML)")
    plan.set_defaults(func=plan_command)


def run_command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..pipeline import run
    from ..significance import verdict

    config = load_config(args.config)
    result = run(config, out_dir=args.out, store_path=args.store, progress=not args.quiet, wait=args.wait)
    for topic, partition in result.partitions.items():
        teams = "; ".join(", ".join(t) for t in partition.teams) or "none"
        alone = f" | alone: {', '.join(partition.isolates)}" if partition.isolates else ""
        print(f"[{topic}] teams: {teams}{alone} (Q={partition.modularity:.3f}, stability={partition.stability:.2f})")
        if partition.significance is not None:
            print(f"[{topic}]   {verdict(partition.significance)}")
        agreements = list(partition.validation_by_kind.values()) or [partition.validation]
        for agreement in agreements:
            if agreement is not None:
                print(f"[{topic}]   {agreement.summary()}")
    out = Path(args.out or config.output)
    report = _write_report(config, result, out, args.store)
    print(f"wrote {len(result.files) + 1} files to {out}/ (teams_*.json, graph_*.png, conversations.jsonl, report.html)")
    print(f"open the report in a browser: {report} ({report.resolve().as_uri()})")
    return 0


def _write_report(config, result, out: Path, store: str | None) -> Path:
    """``<out>/report.html`` (``teamgraph report``) of this run, with the store's newest evaluation of it if any."""
    from ..pipeline import store_path_of
    from ..report import find_evaluation, read_scores, write_report

    store_path = store_path_of(config, out, store)
    scores_path = find_evaluation(store_path, config.name)
    return write_report(out / "report.html", result.partitions, result.conversations, result.values,
                        agents=config.agents, evaluation=read_scores(scores_path) if scores_path else None,
                        evaluation_source=scores_path, title=f"teamgraph: {config.name}", source=f"store {store_path}",
                        seed=config.communities.seed)


def plan_command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..pipeline import estimate

    config = load_config(args.config)
    est = estimate(config)
    print(f"{est['agents']} agents, {est['topics']} topics -> {est['conversations']} conversations, "
          f"{est['utterances']} utterances")
    print(f"at most {est['max_generated_tokens']} generated tokens, about {est['approx_prompt_tokens']} prompt tokens")
    for model, row in est["per_model"].items():
        print(f"  {model}: {row['utterances']} utterances, at most {row['max_generated_tokens']} tokens, "
              f"about {row['seconds'] / 60:.1f} min at {row['tokens_per_second']:.0f} tok/s")
    print(f"about {est['estimated_seconds'] / 60:.1f} min in all at the zoo's measured speeds (llama.cpp, 2 CPU cores; "
          f"{est['assumed_tokens_per_second']:.0f} tok/s for other models; servers and GPUs differ); "
          "stored turns are not paid again")
    return 0
