"""Typed run settings and YAML loading. Every error names the field (and the file)."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError
from .models import get_model, is_zoo_name
from .roster import PROMPT_FORMATS, Agent, Roster, Sampling

#: The shared instruction of SPEC section 2: asks the models to be critical, to avoid empty agreement.
DEFAULT_INSTRUCTION = (
    "This is a discussion between two experts. Be as critical as possible: question the other "
    "speaker's claims, point out mistakes and add new facts instead of agreeing."
)
DEFAULT_TOPIC_LINE = "Let's discuss {topic}."
BACKEND_TYPES = ("llamacpp", "openai", "vllm")


@dataclass(frozen=True)
class BackendConfig:
    """A named backend: ``type`` plus that type's settings (see docs/config.md)."""

    type: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationConfig:
    """How each pairwise conversation runs (SPEC section 2)."""

    turns: int = 6
    both_orders: bool = False
    repeats: int = 1
    seed: int = 0
    instruction: str = DEFAULT_INSTRUCTION
    topic_line: str = DEFAULT_TOPIC_LINE


@dataclass(frozen=True)
class ScoringConfig:
    metric: str = "cumulative_cosine"
    embedder: str = "all-MiniLM-L6-v2"
    device: str | None = None
    batch_size: int = 32


@dataclass(frozen=True)
class GraphConfig:
    threshold: str = "mean"


@dataclass(frozen=True)
class CommunityConfig:
    resolution: float = 1.0
    n_seeds: int = 10
    seed: int = 0
    n_permutations: int = 200  # significance test (docs/signal.md); 0 skips it


@dataclass(frozen=True)
class BenchmarkSettings:
    """Settings of one benchmark that differ from the evaluation-wide ones (None: use those)."""

    n_items: int | None = None
    max_tokens: int | None = None
    scoring: str | None = None


@dataclass(frozen=True)
class EvaluationConfig:
    benchmarks: tuple[str, ...] = ("mmlu_math", "mmlu_medical")
    n_items: int = 50
    seed: int = 0
    max_tokens: int = 16
    random_draws: int = 200
    scoring: str = "generation"  # generation | likelihood | cloze | auto
    per_benchmark: dict[str, BenchmarkSettings] = field(default_factory=dict)  # e.g. {gsm8k: {max_tokens: 192}}

    def for_benchmark(self, benchmark: str) -> BenchmarkSettings:
        """The n_items, max_tokens and scoring of ``benchmark``: its ``per_benchmark`` entry over the defaults."""
        own = self.per_benchmark.get(benchmark, BenchmarkSettings())
        return BenchmarkSettings(n_items=self.n_items if own.n_items is None else own.n_items,
                                 max_tokens=self.max_tokens if own.max_tokens is None else own.max_tokens,
                                 scoring=self.scoring if own.scoring is None else own.scoring)

    def scoring_for(self, benchmark: str) -> str:
        return str(self.for_benchmark(benchmark).scoring)


SCORING_MODES = ("generation", "likelihood", "cloze", "auto")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The stage settings of a run, as written in YAML (agents and backends are built apart)."""

    topics: tuple[str, ...] = ("general",)
    name: str = "teamgraph-run"
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    communities: CommunityConfig = field(default_factory=CommunityConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: str = "out"
    store: str | None = None  # default: <output>/store.sqlite


@dataclass(frozen=True, kw_only=True)
class RunConfig(RunSettings):
    """Everything a ``teamgraph run`` needs. Relative paths are relative to the working folder."""

    agents: Roster
    backends: dict[str, BackendConfig]
    source: str | None = None


# -- loading ----------------------------------------------------------------------------------

def _coerce(value: Any, tp: Any, where: str, src: str | None) -> Any:
    """Check ``value`` against the annotation ``tp`` (the few shapes used above)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, src)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, src)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where, f"expected a list, got {type(value).__name__}", src)
        return tuple(_coerce(v, typing.get_args(tp)[0], f"{where}[{i}]", src) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"expected a mapping, got {type(value).__name__}", src)
        inner = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {str(k): _coerce(v, inner, f"{where}.{k}", src) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"expected a number, got {value!r}", src)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected an integer, got {value!r}", src)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {value!r}", src)
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(where, f"expected a string, got {value!r}", src)
        return str(value)
    return value


def _build(cls: type, data: Any, where: str, src: str | None) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown and missing fields by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(where or cls.__name__, f"expected a mapping, got {type(data).__name__}", src)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(fields)})", src)
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{prefix}{name}", src)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ConfigError(f"{prefix}{name}", "missing required field", src)
    return cls(**kwargs)


def _check_range(ok: bool, where: str, problem: str, src: str | None) -> None:
    if not ok:
        raise ConfigError(where, problem, src)


def _validate_agent(agent: Agent, i: int, backends: Mapping[str, BackendConfig], src: str | None) -> None:
    w = f"agents[{i}]"
    _check_range(bool(agent.name.strip()), f"{w}.name", "must not be empty", src)
    _check_range(agent.backend in backends, f"{w}.backend",
                 f"unknown backend '{agent.backend}' (defined: {', '.join(backends) or 'none'})", src)
    _check_range(agent.format in PROMPT_FORMATS, f"{w}.format",
                 f"must be one of {', '.join(PROMPT_FORMATS)}, got '{agent.format}'", src)
    s = agent.sampling
    _check_range(s.max_tokens >= 1, f"{w}.sampling.max_tokens", "must be >= 1", src)
    _check_range(s.temperature >= 0, f"{w}.sampling.temperature", "must be >= 0", src)
    _check_range(0 < s.top_p <= 1, f"{w}.sampling.top_p", "must be in (0, 1]", src)


def _validate_evaluation(ev: EvaluationConfig, src: str | None) -> None:
    from .evaluation.benchmarks import BENCHMARKS

    unknown = sorted(set(ev.per_benchmark) - set(BENCHMARKS))
    _check_range(not unknown, f"evaluation.per_benchmark.{unknown[0] if unknown else ''}",
                 f"unknown benchmark (choose from: {', '.join(BENCHMARKS)})", src)
    for where, own in [("evaluation", ev)] + [(f"evaluation.per_benchmark.{k}", v) for k, v in ev.per_benchmark.items()]:
        _check_range(own.n_items is None or own.n_items >= 1, f"{where}.n_items", f"must be >= 1 (got {own.n_items})", src)
        _check_range(own.max_tokens is None or own.max_tokens >= 1, f"{where}.max_tokens",
                     f"must be >= 1 (got {own.max_tokens})", src)
        _check_range(own.scoring is None or own.scoring in SCORING_MODES, f"{where}.scoring",
                     f"must be one of {', '.join(SCORING_MODES)}, got '{own.scoring}'", src)


def config_from_dict(data: Any, source: str | None = None) -> RunConfig:
    """Validate a parsed YAML/JSON mapping into a RunConfig (errors name the field)."""
    if not isinstance(data, Mapping):
        raise ConfigError("(top level)", "expected a mapping of settings", source)
    data = dict(data)
    raw_backends = data.pop("backends", {"local": {"type": "llamacpp"}})
    if not isinstance(raw_backends, Mapping) or not raw_backends:
        raise ConfigError("backends", "expected a non-empty mapping of name -> settings", source)
    backends = {}
    for name, spec in raw_backends.items():
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ConfigError(f"backends.{name}.type", "missing required field", source)
        if spec["type"] not in BACKEND_TYPES:
            raise ConfigError(f"backends.{name}.type", f"unknown backend type '{spec['type']}' (choose from: {', '.join(BACKEND_TYPES)})", source)
        settings = {k: v for k, v in spec.items() if k != "type"}
        backends[str(name)] = BackendConfig(spec["type"], settings)

    defaults = data.pop("defaults", {}) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError("defaults", "expected a mapping of agent settings", source)
    raw_agents = data.pop("agents", None)
    if not isinstance(raw_agents, list):
        raise ConfigError("agents", "missing required field (a list of agents)" if raw_agents is None else "expected a list", source)
    agents = []
    for i, raw in enumerate(raw_agents):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"agents[{i}]", "expected a mapping", source)
        merged = {**defaults, **raw}
        if isinstance(merged.get("labels"), Mapping):  # {family: qwen2.5, role: math} -> kind:value labels
            merged["labels"] = [f"{k}:{v}" for k, v in merged["labels"].items()]
        model = str(merged.get("model", Agent.model))
        if "format" not in merged and is_zoo_name(model):
            merged["format"] = get_model(model).format  # chat where the GGUF has a template
        if isinstance(defaults.get("sampling"), Mapping) and isinstance(raw.get("sampling"), Mapping):
            merged["sampling"] = {**defaults["sampling"], **raw["sampling"]}
        agent = _build(Agent, merged, f"agents[{i}]", source)
        _validate_agent(agent, i, backends, source)
        agents.append(agent)
    try:
        roster = Roster(agents)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.problem, source) from None

    return _build_run(data, roster, backends, source)


def _build_run(data: dict, roster: Roster, backends: dict, source: str | None) -> RunConfig:
    partial = _build(RunSettings, data, "", source)
    conv = partial.conversation
    _check_range(conv.turns >= 2, "conversation.turns", f"must be >= 2 (got {conv.turns})", source)
    _check_range(conv.repeats >= 1, "conversation.repeats", f"must be >= 1 (got {conv.repeats})", source)
    _check_range("{topic}" in conv.topic_line, "conversation.topic_line", "must contain '{topic}'", source)
    _check_range(len(partial.topics) >= 1, "topics", "must list at least one topic", source)
    _check_range(len(set(partial.topics)) == len(partial.topics), "topics", "contains duplicates", source)
    _check_range(partial.communities.n_seeds >= 1, "communities.n_seeds", "must be >= 1", source)
    _check_range(partial.communities.resolution > 0, "communities.resolution", "must be > 0", source)
    _check_range(partial.communities.n_permutations >= 0, "communities.n_permutations", "must be >= 0", source)
    _validate_evaluation(partial.evaluation, source)
    from .graph import Threshold
    from .metrics import METRICS
    from .errors import InputError

    try:
        Threshold.parse(partial.graph.threshold)
    except InputError as exc:
        raise ConfigError("graph.threshold", str(exc).split(": ", 1)[1], source) from None
    _check_range(partial.scoring.metric in METRICS, "scoring.metric",
                 f"unknown metric '{partial.scoring.metric}' (choose from: {', '.join(METRICS)})", source)
    values = {f.name: getattr(partial, f.name) for f in dataclasses.fields(partial)}
    return RunConfig(agents=roster, backends=backends, source=source, **values)


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from a YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path} ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError("(yaml)", f"invalid YAML{at}: {getattr(exc, 'problem', exc)}", str(path)) from None
    return config_from_dict(data, source=str(path))
