"""The ``teamgraph`` command line. Errors a user can fix print one line and exit with code 2.

Each subcommand lives in ``teamgraph/commands/<name>.py`` and exposes ``register(subparsers)``;
the parser picks them all up, so adding a command never edits this file.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
from typing import Iterator, Sequence

from . import commands
from ._version import __version__
from .errors import TeamgraphError

__all__ = ["Terminated", "build_parser", "one_line", "main"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops as after Ctrl-C: the store's lease is released and
    the run record says ``cancelled``, not ``started``."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the command runs (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TeamgraphError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="teamgraph", description="Find teams of language models from the geometry of their dialogues.")
    parser.add_argument("--version", action="version", version=f"teamgraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def one_line(message: str) -> str:
    """``message`` on one line: a name or a server's reply quoted in it may hold line breaks."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="teamgraph: %(levelname)s: %(message)s")
    try:
        with _sigterm_stops():
            args = build_parser().parse_args(argv)
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not as an "Exception ignored" at exit
            return code
    except TeamgraphError as exc:
        print(f"teamgraph: error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 2
    except Terminated:
        print("teamgraph: terminated; run the same command again to resume from the store", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("teamgraph: interrupted; run the same command again to resume from the store", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (`teamgraph runs --json | head`): not our error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
