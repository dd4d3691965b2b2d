"""Agents (a model behind a backend, plus a persona, sampling settings and labels) and rosters."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

from .errors import ConfigError

__all__ = ["PROMPT_FORMATS", "Sampling", "Agent", "legacy_key_dict", "Roster"]

PROMPT_FORMATS = ("chat", "transcript")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one agent. ``extra`` is passed through to the backend as is."""

    max_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    repeat_penalty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Agent:
    """One participant: ``model`` behind the backend named ``backend``, with an optional persona.

    ``labels`` (known specialisations such as ``math``) are used only for curated baselines and
    validation, never by the method itself.
    """

    name: str
    backend: str = "local"
    model: str = "gemma-3-270m"
    persona: str = ""
    format: str = "transcript"
    sampling: Sampling = field(default_factory=Sampling)
    labels: tuple[str, ...] = ()

    def public_dict(self) -> dict[str, Any]:
        """Everything about the agent that may be exported (agents never hold secrets)."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    def identity_dict(self) -> dict[str, Any]:
        """What about the agent determines its outputs: :meth:`public_dict` without ``labels``.

        Cache keys (conversation ids, answer keys) hash this, so editing a label, which is only used
        to measure, never makes a model call again.
        """
        d = asdict(self)
        del d["labels"]
        return d


def legacy_key_dict(agent: Agent) -> dict[str, Any]:
    """LEGACY: the agent dict that cache keys hashed before labels left them (labels included).

    Used only to find rows a store wrote under those keys and re-key them (``Store.rekey``); never
    for a new key. Frozen on purpose: it must keep giving the old hashes whatever ``public_dict`` becomes.
    """
    d = asdict(agent)
    d["labels"] = list(agent.labels)
    return d


class Roster(Sequence[Agent]):
    """The agents of a run, in the order given (the first of a pair opens the conversation)."""

    def __init__(self, agents: Sequence[Agent]):
        agents = list(agents)
        seen: set[str] = set()
        for i, agent in enumerate(agents):
            if agent.name in seen:
                raise ConfigError(f"agents[{i}].name", f"duplicate agent name '{agent.name}'")
            seen.add(agent.name)
        if len(agents) < 2:
            raise ConfigError("agents", f"a roster needs at least 2 agents, got {len(agents)}")
        self._agents = agents
        self._by_name = {a.name: a for a in agents}

    def __getitem__(self, i):  # type: ignore[override]
        return self._agents[i]

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents)

    def get(self, name: str) -> Agent:
        """The agent called ``name``; ConfigError naming the roster otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError("agent", f"unknown agent '{name}' (roster: {', '.join(self._by_name)})") from None

    @property
    def names(self) -> list[str]:
        return [a.name for a in self._agents]

    def labels(self) -> dict[str, tuple[str, ...]]:
        """Agent name -> its labels."""
        return {a.name: a.labels for a in self._agents}
