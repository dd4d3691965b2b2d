"""``teamgraph runs``: the run records of a store (what ran, when, how it ended, at which version)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list the run records of a store: id, kind, status, start, duration, "
                                       "config, teamgraph version, revision (read only; no lease needed)")
    runs.add_argument("store", type=Path, help="SQLite store (e.g. out/demo/store.sqlite)")
    runs.add_argument("--json", action="store_true", help="print every record in full as a JSON list")
    runs.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from ..records import read_run_records, runs_table

    records = read_run_records(args.store)
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False, default=str))
    elif not records:
        print(f"{args.store}: no run records")
    else:
        print(runs_table(records))
    return 0
