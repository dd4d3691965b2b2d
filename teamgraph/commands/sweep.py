"""``teamgraph sweep`` and ``teamgraph compare``: how robust are the teams, and which metric carries signal.

Both read stored conversations (no model calls unless ``--run``) and print a table; ``--csv`` keeps it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path

from ..limits import (DEFAULT_EMBEDDER, DEFAULT_METRIC, DEFAULT_N_PERMUTATIONS, DEFAULT_N_SEEDS, DEFAULT_SEED,
                      check, help_text)

__all__ = ["SHOWN", "register", "sweep_command", "compare_command"]

SHOWN = ["n_teams", "n_isolates", "modularity", "stability", "p_value", "ari", "nmi", "label_p_value"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=None,
                   help=help_text("n_seeds", "Louvain seeds per consensus", f"config's, else {DEFAULT_N_SEEDS}"))
    p.add_argument("--seed", type=int, default=None,
                   help=help_text("seed", "first Louvain seed and permutation seed", f"config's, else {DEFAULT_SEED}"))
    p.add_argument("--permutations", type=int, default=DEFAULT_N_PERMUTATIONS,
                   help=help_text("n_permutations_or_skip", "significance permutations, 0 to skip", DEFAULT_N_PERMUTATIONS))
    p.add_argument("--topic", action="append", default=None,
                   help="topic to analyse, repeatable; 'all' = all topics averaged; with a config and "
                        "without 'all', only the named topics' conversations are loaded")
    p.add_argument("--store", default=None, help="SQLite store (default: the config's; caches embeddings)")
    p.add_argument("--device", default=None, help="embedder device: cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--csv", type=Path, default=None, help="also write the full table as CSV")
    p.add_argument("--run", action="store_true", help="generate planned conversations missing from the store")
    p.add_argument("--wait", action="store_true",
                   help="with --run: wait until the store's writer (a run on the same store) has finished")


def register(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser("sweep", help="communities, modularity, stability and significance over resolutions x thresholds")
    sw.add_argument("config", nargs="?", type=Path, help="run config (YAML) whose stored conversations to use")
    sw.add_argument("--conversations", type=Path, default=None, help="or: a conversations JSONL file")
    sw.add_argument("--metric", default=None, help=f"relationship metric (default: config's, else {DEFAULT_METRIC})")
    sw.add_argument("--resolutions", type=_floats, default=[0.5, 1.0, 1.5, 2.0],
                    help="comma-separated Louvain resolutions (default: 0.5,1,1.5,2)")
    sw.add_argument("--thresholds", type=_names, default=["none", "mean", "quantile:0.75", "top_k:2"],
                    help="comma-separated threshold rules (default: none,mean,quantile:0.75,top_k:2)")
    sw.add_argument("--embedder", default=None, help=f"embedder name or path (default: config's, else {DEFAULT_EMBEDDER})")
    sw.add_argument("--repeats", type=int, default=None,
                    help="with a config: use the first N conversations per pair (default: the config's repeats)")
    _common(sw)
    sw.set_defaults(func=sweep_command)

    cmp = sub.add_parser("compare", help="metrics x conversations per pair x topic: label agreement and significance")
    cmp.add_argument("config", type=Path, help="run config (YAML) with labelled agents")
    cmp.add_argument("--metrics", type=_names, default=None, help="comma-separated metrics (default: all)")
    cmp.add_argument("--repeats", type=int, nargs="+", default=None,
                     help="conversations per pair to compare, e.g. 1 3 (default: 1 and the config's repeats)")
    cmp.add_argument("--threshold", default=None, help="threshold rule (default: config's)")
    cmp.add_argument("--resolution", type=float, default=None, help=help_text("resolution", "Louvain resolution", "config's"))
    _common(cmp)
    cmp.set_defaults(func=compare_command)


def _inputs(args: argparse.Namespace, config, repeats: int | None = None):
    """Conversations (+ repeat index), agents, store and embedder for either input form."""
    from ..embedding import Embedder
    from ..errors import InputError
    from ..lease import hold_store
    from ..store import Store
    from ..sweep import config_conversations

    if config is not None:
        wanted = [t for t in (args.topic or []) if t != "all"]
        if wanted and "all" not in args.topic:  # load (or generate) only the topics asked for
            unknown = sorted(set(wanted) - set(config.topics))
            if unknown:
                raise InputError(f"topic '{unknown[0]}' not in {config.source} (topics: {', '.join(config.topics)})")
            config = dataclasses.replace(config, topics=tuple(t for t in config.topics if t in wanted))
        if repeats is not None and repeats != config.conversation.repeats:  # load only the repeats compared
            config = dataclasses.replace(config, conversation=dataclasses.replace(config.conversation, repeats=repeats))
        store_path = args.store or config.store or Path(config.output) / "store.sqlite"
        # generating (--run) writes conversations: one writer per store; reading needs no lease
        with hold_store(store_path, wait=args.wait) if args.run else contextlib.nullcontext():
            convs, repeat_of = config_conversations(config, args.store, run_missing=args.run, progress=True)
        store = Store(store_path)
        embedder = Embedder(getattr(args, "embedder", None) or config.scoring.embedder,
                            device=args.device or config.scoring.device, batch_size=config.scoring.batch_size, store=store)
        return convs, repeat_of, config.agents, embedder, store
    from ..conversations import read_conversations

    convs = read_conversations(args.conversations)
    store = Store(args.store) if args.store else None
    embedder = Embedder(args.embedder or DEFAULT_EMBEDDER, device=args.device, store=store)
    return convs, None, None, embedder, store


def _check(args: argparse.Namespace) -> None:
    check("n_permutations_or_skip", args.permutations, "--permutations")
    if args.seeds is not None:
        check("n_seeds", args.seeds, "--seeds")
    if args.seed is not None:
        check("seed", args.seed, "--seed")
    flag = "--resolutions" if hasattr(args, "resolutions") else "--resolution"
    given = getattr(args, "resolutions", None) or [getattr(args, "resolution", None)]
    for r in given:
        if r is not None:
            check("resolution", r, flag)


def _write(frame, args: argparse.Namespace) -> None:
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.csv, index=False)
        print(f"-> {args.csv}")


def sweep_command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import InputError
    from ..graph import Threshold
    from ..scoring import relationship_values
    from ..sweep import format_table, sweep

    _check(args)
    if (args.config is None) == (args.conversations is None):
        raise InputError("sweep needs a run config or --conversations FILE (one of them)")
    for rule in args.thresholds:
        Threshold.parse(rule)  # fail before any embedding
    config = load_config(args.config) if args.config else None
    metric = args.metric or (config.scoring.metric if config else DEFAULT_METRIC)
    if args.repeats is not None and (args.repeats < 1 or config is None):
        raise InputError("--repeats needs a run config and a value >= 1")
    convs, _, agents, embedder, store = _inputs(args, config, repeats=args.repeats)
    try:
        values = relationship_values(convs, metric=metric, embedder=embedder, progress=True)
        c = config.communities if config else None
        table = sweep(values, resolutions=args.resolutions, thresholds=args.thresholds, topics=args.topic or ["all"],
                      agents=agents, n_seeds=args.seeds or (c.n_seeds if c else DEFAULT_N_SEEDS),
                      seed=args.seed if args.seed is not None else (c.seed if c else DEFAULT_SEED),
                      n_permutations=args.permutations)
    finally:
        if store is not None:
            store.close()
    print(f"{len(convs)} conversations, metric {metric}; p = permutation p-value of modularity "
          f"({args.permutations} permutations), ari/nmi = agreement with agent labels")
    print(format_table(table, ["topic", "threshold", "resolution", *SHOWN, "communities"]))
    _write(table, args)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..graph import Threshold
    from ..sweep import compare_metrics, format_table

    _check(args)
    config = load_config(args.config)
    if args.threshold:
        Threshold.parse(args.threshold)  # fail before any embedding
    repeats = sorted(set(args.repeats or [1, config.conversation.repeats]))
    convs, repeat_of, agents, embedder, store = _inputs(args, config, repeats=max(repeats))
    c = config.communities
    try:
        table = compare_metrics(
            convs, metrics=args.metrics, topics=args.topic, repeats=repeats, repeat_of=repeat_of, agents=agents,
            threshold=args.threshold or config.graph.threshold, resolution=c.resolution if args.resolution is None else args.resolution,
            n_seeds=args.seeds or c.n_seeds, seed=args.seed if args.seed is not None else c.seed,
            n_permutations=args.permutations, embedder=embedder)
    finally:
        store.close()
    print(f"{config.name}: {len(convs)} conversations; threshold {args.threshold or config.graph.threshold}; "
          f"p = modularity permutation p-value, ari/nmi vs agent labels with label_p_value, "
          "label_gap = same-label minus mixed-label mean value")
    print(format_table(table, ["metric", "repeats", "topic", *SHOWN, "label_gap", "label_gap_p_value", "communities"]))
    _write(table, args)
    return 0
