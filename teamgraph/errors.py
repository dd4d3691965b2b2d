"""Errors a user can act on. The CLI prints ``str(error)`` as one line and exits with code 2."""
from __future__ import annotations

__all__ = ["TeamgraphError", "InputError", "ConfigError", "BackendError", "RequestFailed", "MissingDependencyError"]


class TeamgraphError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, unreachable endpoint).

    Catch this to handle every teamgraph error at once; anything else escaping teamgraph is a bug.

    Parameters
    ----------
    message : str
        One line saying what is wrong and, where it can, how to fix it.


    Examples
    --------
    >>> from teamgraph import InputError, TeamgraphError, Threshold
    >>> try:
    ...     Threshold.parse("median")
    ... except TeamgraphError as error:
    ...     print(type(error).__name__, isinstance(error, InputError))
    InputError True
    """


class InputError(TeamgraphError):
    """Bad data given to teamgraph (a malformed conversations file, an unknown topic, ...).

    The message names the file and line, the column or row, or the argument at fault.

    Parameters
    ----------
    message : str
        One line naming what is wrong and where.


    Examples
    --------
    >>> from teamgraph import InputError, cumulative_cosine
    >>> try:
    ...     cumulative_cosine([1.0, 0.0])
    ... except InputError as error:
    ...     print(error)
    embeddings must be a 2-D array, got shape (2,)
    """


class ConfigError(TeamgraphError):
    """A bad setting. The message names the field (and the file when there is one).

    Parameters
    ----------
    field : str
        The dotted name of the setting, e.g. ``"communities.resolution"``.
    problem : str
        What is wrong with it.
    source : str, optional
        The file the setting came from; None when it was not read from a file.

    Attributes
    ----------
    field, problem, source
        As given, so callers can tell which setting failed without parsing the message.


    Examples
    --------
    >>> from teamgraph import ConfigError
    >>> error = ConfigError("communities.resolution", "must be > 0, got -1", source="run.yaml")
    >>> str(error)
    'run.yaml: communities.resolution: must be > 0, got -1'
    >>> error.field
    'communities.resolution'
    """

    def __init__(self, field: str, problem: str, source: str | None = None):
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")


class BackendError(TeamgraphError):
    """A model backend failed in a way retrying will not fix (unreachable URL, unknown model).

    Parameters
    ----------
    message : str
        One line naming the backend (and the URL or model) and the failure; never an API key.


    Examples
    --------
    >>> from teamgraph import BackendError, TeamgraphError
    >>> issubclass(BackendError, TeamgraphError)
    True
    >>> str(BackendError("http://localhost:8000/v1: connection refused"))
    'http://localhost:8000/v1: connection refused'
    """


class RequestFailed(BackendError):
    """One request failed where others may not (a prompt longer than the context, a refused request):
    that item is recorded as failed and the run goes on.

    Parameters
    ----------
    message : str
        One line saying why this request failed.

    Examples
    --------
    >>> issubclass(RequestFailed, BackendError)
    True
    """


class MissingDependencyError(TeamgraphError):
    """An optional package is not installed; the message says how to install it.

    Parameters
    ----------
    message : str
        One line naming the package and the ``pip install`` command that provides it.


    Examples
    --------
    >>> from teamgraph import MissingDependencyError
    >>> print(MissingDependencyError("the vllm backend needs vLLM: pip install 'teamgraph[vllm]'"))
    the vllm backend needs vLLM: pip install 'teamgraph[vllm]'
    """
