"""CLI subcommands: each module has ``register(subparsers)`` and sets ``func`` on its parser."""

__all__: list[str] = []
