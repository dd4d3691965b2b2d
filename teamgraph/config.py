"""Typed run settings and YAML loading. Every error names the field (and the file)."""
from __future__ import annotations

import dataclasses
import math
import re
import string
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError
from .limits import (DEFAULT_EMBEDDER, DEFAULT_METRIC, DEFAULT_N_PERMUTATIONS, DEFAULT_N_SEEDS, DEFAULT_RESOLUTION,
                     DEFAULT_SEED, DEFAULT_THRESHOLD, LIMITS, SEED_LIMIT)
from .models import get_model, is_zoo_name
from .roster import PROMPT_FORMATS, Agent, Roster

__all__ = [
    "DEFAULT_INSTRUCTION", "DEFAULT_TOPIC_LINE", "BACKEND_TYPES", "AGGREGATE_TOPIC", "SCORING_MODES",
    "file_slug", "BackendConfig", "PAIR_STRATEGIES", "PairsConfig", "ConversationConfig", "ScoringConfig", "GraphConfig", "CommunityConfig",
    "BenchmarkSettings", "EvaluationConfig", "RunSettings", "RunConfig", "is_secret_key", "config_from_dict",
    "load_config"
]

#: The shared instruction of SPEC section 2: asks the models to be critical, to avoid empty agreement.
DEFAULT_INSTRUCTION = (
    "This is a discussion between two experts. Be as critical as possible: question the other "
    "speaker's claims, point out mistakes and add new facts instead of agreeing."
)
DEFAULT_TOPIC_LINE = "Let's discuss {topic}."
BACKEND_TYPES = ("llamacpp", "openai", "vllm", "corpus")
#: The key of the all-topics aggregate graph and partition (``teams_all.json``): no topic may map to it.
AGGREGATE_TOPIC = "all"


def file_slug(text: str) -> str:
    """The file-name form of a topic (``teams_<slug>.json``, ``graph_<slug>.png``).

    The same rule as ``pipeline._slug`` and ``viz.slug``: two topics with one slug would overwrite
    each other's files, so the config loader refuses them.
    """
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text).lower())[:60] or "topic"


@dataclass(frozen=True)
class BackendConfig:
    """A named backend: ``type`` plus that type's settings (see docs/config.md)."""

    type: str
    settings: dict[str, Any] = field(default_factory=dict)


#: Which agent pairs converse: ``all`` (every pair, the paper's method) or ``knn`` (:func:`teamgraph.select_pairs`
#: on the agents' probe fingerprints, issue 13).
PAIR_STRATEGIES = ("all", "knn")


@dataclass(frozen=True)
class PairsConfig:
    """``conversation.pairs``: ``all`` (default), or ``{strategy: knn, k, explore, budget, probes}``.

    With ``knn`` each agent first answers ``probes`` single-turn topic-primed prompts per topic
    (:mod:`teamgraph.fingerprints`); its fingerprint is the mean embedding of its replies, and only the
    pairs :func:`teamgraph.select_pairs` picks from those converse. ``k``, ``explore`` and ``budget``
    are its arguments; the seed is ``conversation.seed``.
    """

    strategy: str = "all"
    k: int = 10
    explore: int = 2
    budget: float = 1.0
    probes: int = 4


@dataclass(frozen=True)
class ConversationConfig:
    """How each pairwise conversation runs (SPEC section 2).

    ``topic_line`` is filled in with Python's ``str.format``: ``{topic}`` is its only placeholder (at
    least once) and a literal brace is written doubled, ``{{`` or ``}}``; anything else is refused
    when the config loads.
    """

    turns: int = 6
    both_orders: bool = False
    repeats: int = 1
    seed: int = 0
    instruction: str = DEFAULT_INSTRUCTION
    topic_line: str = DEFAULT_TOPIC_LINE
    pairs: PairsConfig = field(default_factory=PairsConfig)


@dataclass(frozen=True)
class ScoringConfig:
    metric: str = DEFAULT_METRIC
    embedder: str = DEFAULT_EMBEDDER
    device: str | None = None
    batch_size: int = 32


@dataclass(frozen=True)
class GraphConfig:
    threshold: str = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class CommunityConfig:
    resolution: float = DEFAULT_RESOLUTION
    n_seeds: int = DEFAULT_N_SEEDS
    seed: int = DEFAULT_SEED
    n_permutations: int = DEFAULT_N_PERMUTATIONS  # significance test (docs/signal.md); 0 skips it
    # per-seed clustering (communities.BACKENDS: sknetwork, sknetwork-leiden, python-louvain, networkx);
    # None: sknetwork where installed, else python-louvain, else networkx
    backend: str | None = None


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
        return {_name(k): _coerce(v, inner, f"{where}.{_name(k)}", src) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"expected a number, got {_show(value)}", src)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(where, f"expected a finite number, got {_show(value)}", src)
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected an integer, got {_show(value)}", src)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {_show(value)}", src)
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(where, f"expected a string, got {_show(value)}", src)
        if isinstance(value, int) and value.bit_length() > 64:
            raise ConfigError(where, f"expected a string, got {_show(value)}", src)
        return str(value)
    return value


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message: one line, at most ``limit`` characters, never raising
    (an int of more than 4300 digits has no repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (a value nested too deep, or holding a huge int)
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _name(key: Any) -> str:
    """A mapping key as text (keys are usually strings; YAML allows numbers, dates, null ...)."""
    if isinstance(key, str):
        return key
    if isinstance(key, int) and key.bit_length() > 64:
        return _show(key)
    try:
        return str(key)
    except Exception:  # noqa: BLE001
        return _show(key, 40)


def _build(cls: type, data: Any, where: str, src: str | None) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown and missing fields by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(where or cls.__name__, f"expected a mapping, got {type(data).__name__}", src)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = sorted((k for k in data if k not in fields), key=_name)
    if unknown:
        raise ConfigError(f"{prefix}{_name(unknown[0])}", f"unknown field (allowed: {', '.join(fields)})", src)
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


def _check_limit(name: str, value: Any, where: str, src: str | None) -> None:
    """ConfigError naming ``where`` unless ``value`` is within :data:`teamgraph.limits.LIMITS` ``[name]``."""
    limit = LIMITS[name]
    if not limit.ok(value):
        raise ConfigError(where, f"{limit.text()} (got {_show(value)})", src)


def _validate_agent(agent: Agent, i: int, backends: Mapping[str, BackendConfig], src: str | None) -> None:
    w = f"agents[{i}]"
    _check_range(bool(agent.name.strip()), f"{w}.name", "must not be empty", src)
    _check_range(agent.backend in backends, f"{w}.backend",
                 f"unknown backend {_show(agent.backend)} (defined: {', '.join(backends) or 'none'})", src)
    _check_range(agent.format in PROMPT_FORMATS, f"{w}.format",
                 f"must be one of {', '.join(PROMPT_FORMATS)}, got {_show(agent.format)}", src)
    s = agent.sampling
    for name in ("max_tokens", "temperature", "top_p"):
        _check_limit(name, getattr(s, name), f"{w}.sampling.{name}", src)
    _refuse_secrets(s.extra, f"{w}.sampling.extra", src)
    _check_json_data(s.extra, f"{w}.sampling.extra", src)


# -- secrets ------------------------------------------------------------------------------------

#: Key words of settings that hold credentials (matched on the key in lower case, ``-`` read as ``_``).
_SECRET_WORDS = ("password", "passwd", "secret", "authorization", "api_key", "apikey", "credential", "cookie",
                 "bearer", "private_key", "access_key")
_SECRET_KEYS = frozenset({"key", "token", "auth", "pass", "pwd", "sig", "signature"})
_SECRET_ENDINGS = ("_token", "_key", "_auth", "_pass", "_pwd")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_HINT = ("looks like a credential; secrets do not belong in the config (it is hashed into cache keys, "
                "stored and shared): put the key in an environment variable and name that variable in the "
                "backend's api_key_env")


def is_secret_key(key: Any) -> bool:
    """Whether a setting called ``key`` holds a credential (api_key, Authorization, access_token,
    password, client_secret, ...). ``max_tokens`` and ``stop_token_ids`` do not."""
    k = re.sub(r"[^a-z0-9]+", "_", _name(key).lower()).strip("_")
    return k in _SECRET_KEYS or k.endswith(_SECRET_ENDINGS) or any(w in k for w in _SECRET_WORDS)


def _refuse_secrets(value: Any, where: str, src: str | None, depth: int = 0) -> None:
    """ConfigError naming the first key under ``value`` (nested mappings and lists too) that holds a credential."""
    if depth > 20:
        return
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if is_secret_key(key):
                raise ConfigError(f"{where}.{_name(key)}", _SECRET_HINT, src)
            _refuse_secrets(inner, f"{where}.{_name(key)}", src, depth + 1)
    elif isinstance(value, (list, tuple)):
        for j, inner in enumerate(value):
            _refuse_secrets(inner, f"{where}[{j}]", src, depth + 1)


def _check_json_data(value: Any, where: str, src: str | None, depth: int = 0) -> None:
    """``value`` is JSON data: it goes into request bodies and is hashed into cache keys as JSON."""
    if depth > 32:
        raise ConfigError(where, "nested too deeply", src)
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        _check_range(value.bit_length() <= 64, where, f"integer out of range ({_show(value)})", src)
    elif isinstance(value, float):
        _check_range(math.isfinite(value), where, f"expected a finite number, got {_show(value)}", src)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            _check_range(isinstance(key, str), f"{where}.{_name(key)}",
                         f"keys must be strings (got {type(key).__name__} {_show(key)}; quote it)", src)
            _check_json_data(inner, f"{where}.{key}", src, depth + 1)
    elif isinstance(value, (list, tuple)):
        for j, inner in enumerate(value):
            _check_json_data(inner, f"{where}[{j}]", src, depth + 1)
    else:
        raise ConfigError(where, f"expected JSON data (null, true/false, a number, a string, a list or a mapping), "
                          f"got {type(value).__name__} {_show(value)}; quote it", src)


def _validate_backend_settings(name: str, kind: str, settings: Mapping[str, Any], src: str | None) -> None:
    """What can be checked of a backend's settings without importing it: no keys in the file."""
    w = f"backends.{name}"
    for key, value in settings.items():
        if key == "api_key_env":
            if value is not None and not (isinstance(value, str) and _ENV_NAME.fullmatch(value)):
                # never echo the value: a user who pasted the key itself here would see it printed
                raise ConfigError(f"{w}.api_key_env", "must be the NAME of an environment variable holding the "
                                  "key (letters, digits and _), not the key itself", src)
        elif is_secret_key(key):
            raise ConfigError(f"{w}.{_name(key)}", _SECRET_HINT, src)
        else:
            _refuse_secrets(value, f"{w}.{_name(key)}", src)
    if kind == "openai" and "base_url" in settings:
        urls = settings["base_url"]  # one URL, or a list of replicas serving the same models
        if isinstance(urls, (list, tuple)):
            if not urls:
                raise ConfigError(f"{w}.base_url", "expected a URL or a non-empty list of replica URLs", src)
            named = [(f"{w}.base_url[{i}]", u) for i, u in enumerate(urls)]
        else:
            named = [(f"{w}.base_url", urls)]
        for where, url in named:
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]", url):
                raise ConfigError(where, "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1", src)
            if "?" in url or "#" in url:  # never echo it: the query is where keys get pasted
                raise ConfigError(where, "must not have a query string or fragment (the client appends "
                                  "/completions after it, which breaks every request); an API key belongs in an "
                                  "environment variable named by api_key_env", src)
        stripped = [u.rstrip("/") for _, u in named]
        if len(set(stripped)) < len(stripped):
            raise ConfigError(f"{w}.base_url", "lists the same replica twice", src)


def _validate_evaluation(ev: EvaluationConfig, src: str | None) -> None:
    from .evaluation.benchmarks import BENCHMARKS

    for i, name in enumerate(ev.benchmarks):
        _check_range(name in BENCHMARKS, f"evaluation.benchmarks[{i}]",
                     f"unknown benchmark {_show(name)} (choose from: {', '.join(BENCHMARKS)})", src)
    _check_range(len(set(ev.benchmarks)) == len(ev.benchmarks), "evaluation.benchmarks", "contains duplicates", src)
    _check_limit("seed", ev.seed, "evaluation.seed", src)
    _check_limit("random_draws", ev.random_draws, "evaluation.random_draws", src)
    unknown = sorted(set(ev.per_benchmark) - set(BENCHMARKS))
    _check_range(not unknown, f"evaluation.per_benchmark.{unknown[0] if unknown else ''}",
                 f"unknown benchmark (choose from: {', '.join(BENCHMARKS)})", src)
    for where, own in [("evaluation", ev)] + [(f"evaluation.per_benchmark.{k}", v) for k, v in ev.per_benchmark.items()]:
        for name in ("n_items", "max_tokens"):
            if getattr(own, name) is not None:
                _check_limit(name, getattr(own, name), f"{where}.{name}", src)
        _check_range(own.scoring is None or own.scoring in SCORING_MODES, f"{where}.scoring",
                     f"must be one of {', '.join(SCORING_MODES)}, got {_show(own.scoring)}", src)


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
            raise ConfigError(f"backends.{_name(name)}.type", "missing required field", source)
        if not isinstance(spec["type"], str) or spec["type"] not in BACKEND_TYPES:
            raise ConfigError(f"backends.{_name(name)}.type", f"unknown backend type {_show(spec['type'])} "
                              f"(choose from: {', '.join(BACKEND_TYPES)})", source)
        settings = {_name(k): v for k, v in spec.items() if k != "type"}
        _validate_backend_settings(_name(name), spec["type"], settings, source)
        backends[_name(name)] = BackendConfig(spec["type"], settings)

    defaults = data.pop("defaults", {}) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError("defaults", "expected a mapping of agent settings", source)
    if isinstance(defaults.get("sampling"), Mapping):
        _refuse_secrets(defaults["sampling"].get("extra"), "defaults.sampling.extra", source)
        _check_json_data(defaults["sampling"].get("extra"), "defaults.sampling.extra", source)
    raw_agents = data.pop("agents", None)
    if not isinstance(raw_agents, list):
        raise ConfigError("agents", "missing required field (a list of agents)" if raw_agents is None else "expected a list", source)
    agents = []
    for i, raw in enumerate(raw_agents):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"agents[{i}]", "expected a mapping", source)
        merged = {**defaults, **raw}
        if isinstance(merged.get("labels"), Mapping):  # {family: qwen2.5, role: math} -> kind:value labels
            merged["labels"] = [f"{_name(k)}:{_coerce(v, str, f'agents[{i}].labels.{_name(k)}', source)}"
                                for k, v in merged["labels"].items()]
        model = merged.get("model", Agent.model)
        if "format" not in merged and isinstance(model, str) and is_zoo_name(model):
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
    conversation = data.get("conversation")
    if isinstance(conversation, Mapping) and isinstance(conversation.get("pairs"), str):
        data = {**data, "conversation": {**conversation, "pairs": {"strategy": conversation["pairs"]}}}  # pairs: all
    partial = _build(RunSettings, data, "", source)
    conv = partial.conversation
    for name in ("turns", "repeats", "seed"):
        _check_limit(name, getattr(conv, name), f"conversation.{name}", source)
    _check_pairs(conv.pairs, (data.get("conversation") or {}).get("pairs"), source)
    _check_topic_line(conv.topic_line, source)
    _check_topics(partial.topics, source)
    c = partial.communities
    _check_limit("n_seeds", c.n_seeds, "communities.n_seeds", source)
    _check_limit("resolution", c.resolution, "communities.resolution", source)
    _check_limit("n_permutations_or_skip", c.n_permutations, "communities.n_permutations", source)
    # Louvain runs with seeds seed .. seed + n_seeds - 1, each a numpy RandomState seed (below 2**32)
    _check_range(0 <= c.seed <= SEED_LIMIT - c.n_seeds, "communities.seed",
                 f"must be in 0 .. 2**32-{c.n_seeds} (Louvain uses seeds seed .. seed+n_seeds-1, each below 2**32; "
                 f"got {_show(c.seed)})", source)
    if c.backend is not None:
        from .communities import BACKENDS, backend_available

        _check_range(c.backend in BACKENDS, "communities.backend",
                     f"unknown backend {_show(c.backend)} (choose from: {', '.join(BACKENDS)})", source)
        _check_range(backend_available(c.backend), "communities.backend",
                     f"{_show(c.backend)} is not installed (pip install "
                     f"{'scikit-network' if c.backend.startswith('sknetwork') else c.backend})", source)
    _check_limit("batch_size", partial.scoring.batch_size, "scoring.batch_size", source)
    _validate_evaluation(partial.evaluation, source)
    from .graph import Threshold
    from .metrics import METRICS
    from .errors import InputError

    try:
        Threshold.parse(partial.graph.threshold)
    except (InputError, ValueError) as exc:
        raise ConfigError("graph.threshold", str(exc).split(": ", 1)[-1], source) from None
    _check_range(partial.scoring.metric in METRICS, "scoring.metric",
                 f"unknown metric {_show(partial.scoring.metric)} (choose from: {', '.join(METRICS)})", source)
    values = {f.name: getattr(partial, f.name) for f in dataclasses.fields(partial)}
    return RunConfig(agents=roster, backends=backends, source=source, **values)


def _check_pairs(pairs: PairsConfig, given: Any, src: str | None) -> None:
    """``conversation.pairs``: a known strategy, knn settings within their limits, none of them with ``all``."""
    where = "conversation.pairs"
    _check_range(pairs.strategy in PAIR_STRATEGIES, f"{where}.strategy",
                 f"must be one of {', '.join(PAIR_STRATEGIES)}, got {_show(pairs.strategy)}", src)
    if pairs.strategy == "all":
        extra = sorted(k for k in (given or {}) if k != "strategy") if isinstance(given, Mapping) else []
        _check_range(not extra, f"{where}.{extra[0] if extra else ''}",
                     "applies to strategy knn only (pairs: all converses every pair)", src)
        return
    for name in ("k", "explore", "budget", "probes"):
        _check_limit(name, getattr(pairs, name), f"{where}.{name}", src)


def _check_topic_line(line: str, src: str | None) -> None:
    """``{topic}`` (at least once) is the only placeholder; literal braces are doubled (``str.format``)."""
    where = "conversation.topic_line"
    hint = "write a literal brace doubled, '{{' or '}}'"
    try:
        parts = list(string.Formatter().parse(line))
    except ValueError as exc:  # a lone '{' or '}'
        raise ConfigError(where, f"{exc}; {hint}", src) from None
    n_topic = 0
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name != "topic" or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(where, f"unknown placeholder {_show(shown)}: {{topic}} is the only one; {hint}", src)
        n_topic += 1
    _check_range(n_topic >= 1, where, "must contain '{topic}'", src)


def _check_topics(topics: tuple[str, ...], src: str | None) -> None:
    """Topics are non-empty, unique, and map to distinct file names, none of them the aggregate's ``all``."""
    _check_range(len(topics) >= 1, "topics", "must list at least one topic", src)
    _check_range(len(set(topics)) == len(topics), "topics", "contains duplicates", src)
    slugs: dict[str, str] = {}
    for i, topic in enumerate(topics):
        _check_range(bool(topic.strip()), f"topics[{i}]", "must not be empty", src)
        slug = file_slug(topic)
        _check_range(slug != AGGREGATE_TOPIC, f"topics[{i}]",
                     f"{_show(topic)} is reserved: '{AGGREGATE_TOPIC}' names the all-topics aggregate (teams_all.json); "
                     "rename the topic", src)
        _check_range(slug not in slugs, f"topics[{i}]",
                     f"{_show(topic)} and {_show(slugs.get(slug))} share the file name teams_{slug}.json "
                     "(names are lower-cased, other characters than letters, digits, - and _ become _, "
                     "cut at 60); rename one", src)
        slugs[slug] = topic


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from a YAML file (UTF-8). Every problem is one ConfigError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path} ({exc.strerror or exc})") from None
    src = str(path)
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError("(file)", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column}; "
                          "save the config as UTF-8", src) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("(yaml)", f"invalid YAML{_yaml_where(exc, text)}: {_yaml_problem(exc)}", src) from None
    except RecursionError:
        raise ConfigError("(yaml)", "invalid YAML: nested too deeply", src) from None
    except Exception as exc:  # noqa: BLE001  (PyYAML raises ValueError for e.g. the date 2024-13-01)
        raise ConfigError("(yaml)", f"invalid YAML: cannot read a value ({_show(str(exc), 120)[1:-1]})", src) from None
    return config_from_dict(data, source=src)


def _yaml_where(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f" at line {mark.line + 1}"
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML does not allow
    if isinstance(position, int):
        return f" at line {text.count(chr(10), 0, position) + 1}"
    return ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem as one line (its str() spans several, with a copy of the offending line)."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        code = char if isinstance(char, int) else ord(char) if isinstance(char, str) and len(char) == 1 else None
        return f"character U+{code:04X} is not allowed" if code is not None else "a character is not allowed"
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    return " ".join(str(problem).split())
