"""``teamgraph study``: recovery of labels by the graph, and community teams against every baseline."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="run or resume a labelled roster, measure label recovery and team quality, "
                                         "write a markdown report")
    study.add_argument("config", type=Path, help="run config (YAML) whose agents carry family: and role: labels")
    study.add_argument("--report", type=Path, default=Path("docs/study.md"), help="markdown report (default: %(default)s)")
    study.add_argument("--quiet", action="store_true", help="no progress bars")
    study.add_argument("--wait", action="store_true",
                       help="if another run writes to the store, wait for it to finish instead of exiting")
    study.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..study import run_study, write_study_report

    config = load_config(args.config)
    result = run_study(config, progress=not args.quiet, wait=args.wait)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("recovery", "agents", "teams", "tests"):
        getattr(result, name).to_csv(out / f"study_{name}.csv", index=False)
    command_line = f"teamgraph study {shlex.quote(str(args.config))}"
    if args.report != Path("docs/study.md"):
        command_line += f" --report {shlex.quote(str(args.report))}"
    path = write_study_report(result, args.report, command_line)
    print(f"wrote {path} and {out}/study_*.csv")
    return 0
