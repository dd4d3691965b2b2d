"""``teamgraph evaluate``: score a run's teams on benchmark items against the baselines."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..limits import check, help_text

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="score the run's teams on benchmark items against random, curated, "
                                         "single-agent and oracle baselines")
    ev.add_argument("config", type=Path, help="run config (YAML); its evaluation section gives the defaults")
    ev.add_argument("--benchmarks", nargs="+", default=None, metavar="NAME",
                    help="benchmark groups (default: the config's; e.g. mmlu_math mmlu_medical gsm8k)")
    ev.add_argument("--n-items", type=int, default=None, help=help_text("n_items", "items sampled per benchmark group", "the config's"))
    ev.add_argument("--out", default=None, help="report folder (default: <config output>/evaluation)")
    ev.add_argument("--store", default=None, help="SQLite store (default: the run's store)")
    ev.add_argument("--teams-from", default=None, type=Path, metavar="DIR",
                    help="read teams_*.json from DIR instead of running (or resuming) the conversations")
    ev.add_argument("--protocols", nargs="+", default=None, metavar="P",
                    help="team protocols: majority weighted oracle debate (default: majority weighted oracle)")
    ev.add_argument("--debate-rounds", type=int, default=1, help=help_text("debate_rounds", "debate rounds after the first answers", 1))
    ev.add_argument("--random-draws", type=int, default=None, help=help_text("random_draws", "random teams drawn per size", "the config's"))
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.add_argument("--wait", action="store_true",
                    help="if another run writes to the store, wait for it to finish instead of exiting")
    ev.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import InputError
    from ..evaluation.runner import DEFAULT_PROTOCOLS, check_protocols, check_benchmarks, evaluate, load_teams
    from ..pipeline import store_path_of
    from ..lease import hold_store

    start = time.perf_counter()
    config = load_config(args.config)
    # check what can be checked before any model call
    benchmarks = check_benchmarks(args.benchmarks) if args.benchmarks is not None else None
    protocols = check_protocols(args.protocols) if args.protocols is not None else DEFAULT_PROTOCOLS
    if args.n_items is not None:
        check("n_items", args.n_items, "--n-items")
    check("debate_rounds", args.debate_rounds, "--debate-rounds")
    if args.random_draws is not None:
        check("random_draws", args.random_draws, "--random-draws")
    if args.teams_from is not None and not args.teams_from.exists():
        raise InputError(f"--teams-from {args.teams_from}: no such file or folder")
    out = Path(args.out) if args.out else Path(config.output) / "evaluation"
    store = store_path_of(config, config.output, args.store)
    with hold_store(store, wait=args.wait):  # one writer per store, across the run and the answers
        if args.teams_from is not None:
            teams = load_teams(args.teams_from)
        else:
            from ..pipeline import run

            run_result = run(config, out_dir=config.output, store_path=store, progress=not args.quiet, figures=False)
            teams = run_result.partitions
        result = evaluate(config, teams, benchmarks=benchmarks, n_items=args.n_items, store=store, protocols=protocols,
                          debate_rounds=args.debate_rounds, out_dir=out, random_draws=args.random_draws,
                          progress=not args.quiet)
    print(result.summary().to_string(index=False))
    print("strict: majority with ties counted wrong; weighted: weights fitted on the other half of the items; "
          "random: mean ± std over draws")
    print(f"wrote {len(result.files)} files to {out}/ (summary.md, scores.csv, accuracy.png, ...) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
