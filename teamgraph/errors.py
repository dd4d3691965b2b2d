"""Errors a user can act on. The CLI prints ``str(error)`` as one line and exits with code 2."""
from __future__ import annotations


class TeamgraphError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, unreachable endpoint)."""


class InputError(TeamgraphError):
    """Bad data given to teamgraph (a malformed conversations file, an unknown topic, ...)."""


class ConfigError(TeamgraphError):
    """A bad setting. The message names the field (and the file when there is one)."""

    def __init__(self, field: str, problem: str, source: str | None = None):
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")


class BackendError(TeamgraphError):
    """A model backend failed in a way retrying will not fix (unreachable URL, unknown model)."""


class RequestFailed(BackendError):
    """One request failed where others may not (a prompt longer than the context, a refused request):
    that item is recorded as failed and the run goes on."""


class MissingDependencyError(TeamgraphError):
    """An optional package is not installed; the message says how to install it."""
