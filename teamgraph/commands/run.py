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
    plan.add_argument("--pairs", action="store_true",
                      help="with conversation.pairs knn: ask the probes not yet stored (model calls, kept in the "
                           "store for the run), select the pairs and print them")
    plan.add_argument("--store", default=None, help="SQLite store (default: the config's, else <output>/store.sqlite)")
    plan.add_argument("--quiet", action="store_true", help="no progress bars")
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
    knn = config.conversation.pairs
    pairs = _selected_pairs(config, args) if knn.strategy == "knn" and args.pairs else None
    est = estimate(config, pairs=pairs)
    saved = est["all_conversations"] - est["conversations"]
    print(f"{est['agents']} agents, {est['topics']} topics -> {est['conversations']} conversations, "
          f"{est['utterances']} utterances" + (f" ({saved} of {est['all_conversations']} conversations saved, "
                                              f"{saved / est['all_conversations']:.0%})" if pairs else ""))
    if knn.strategy == "knn" and pairs is None:
        n = len(config.agents)
        print(f"pairs: knn (k={knn.k}, explore={knn.explore}, budget={knn.budget:g}): about {n * (knn.k + knn.explore) // 2}"
              f"-{n * (knn.k + knn.explore)} pairs per topic of {n * (n - 1) // 2}, after {n * knn.probes} probe replies "
              f"per topic; the counts below are for every pair; --pairs selects them (probe calls)")
    print(f"at most {est['max_generated_tokens']} generated tokens, about {est['approx_prompt_tokens']} prompt tokens")
    for model, row in est["per_model"].items():
        print(f"  {model}: {row['utterances']} utterances, at most {row['max_generated_tokens']} tokens, "
              f"about {row['seconds'] / 60:.1f} min at {row['tokens_per_second']:.0f} tok/s")
    print(f"about {est['estimated_seconds'] / 60:.1f} min in all at the zoo's measured speeds (llama.cpp, 2 CPU cores; "
          f"{est['assumed_tokens_per_second']:.0f} tok/s for other models; servers and GPUs differ); "
          "stored turns are not paid again")
    for topic, chosen in (pairs or {}).items():
        for a, b in chosen:
            print(f"[{topic}] {a} -- {b}")
    return 0


def _selected_pairs(config, args: argparse.Namespace) -> dict[str, list[tuple[str, str]]] | None:
    """Topic -> pairs of ``conversation.pairs: knn``, probing as the store's writer (what a run would do first)."""
    import contextlib

    from ..embedding import Embedder
    from ..lease import hold_store
    from ..pipeline import conversation_pairs, open_backends, preflight, store_path_of
    from ..store import Store

    path = store_path_of(config, None, args.store)
    with hold_store(path), Store(path) as store, contextlib.ExitStack() as models:
        backends = open_backends(config)
        for backend in backends.values():
            models.callback(backend.close)
        preflight(config, backends)
        embedder = Embedder(config.scoring.embedder, device=config.scoring.device,
                            batch_size=config.scoring.batch_size, store=store)
        return conversation_pairs(config, backends, store, embedder, progress=not args.quiet)
