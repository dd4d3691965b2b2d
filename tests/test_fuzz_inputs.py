"""Property-based tests of the two readers of user files: the run config (YAML) and the conversations
file (JSONL). Whatever they are given, they either succeed or raise the project's own errors
(``TeamgraphError``: one line for the CLI, exit code 2), never anything else.

The runs are reproducible (``derandomize=True``, no example database) and of fixed size
(``MAX_EXAMPLES`` each); every test prints how many inputs it tried (``pytest -rP`` shows it).
"""
from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")  # the `test` extra installs it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from teamgraph.config import (  # noqa: E402
    SEED_LIMIT, BenchmarkSettings, CommunityConfig, ConversationConfig, EvaluationConfig, GraphConfig, RunSettings,
    ScoringConfig, config_from_dict, file_slug, is_secret_key, load_config,
)
from teamgraph.conversations import read_conversations, write_conversations  # noqa: E402
from teamgraph.errors import TeamgraphError  # noqa: E402
from teamgraph.roster import Agent, Sampling  # noqa: E402

MAX_EXAMPLES = 300
FUZZ = settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def run_property(check: Callable[..., None], *strategies: st.SearchStrategy) -> int:
    """Run ``check`` on MAX_EXAMPLES generated inputs; return how many it was called with."""
    tried = [0]

    @FUZZ
    @given(st.tuples(*strategies))
    def prop(args: tuple) -> None:
        tried[0] += 1
        check(*args)

    prop()
    return tried[0]


def report(name: str, tried: int) -> None:
    print(f"{name}: {tried} generated inputs tried, none raised anything but TeamgraphError")
    assert tried >= MAX_EXAMPLES // 2  # hypothesis ran the property for real


# -- generated configs ------------------------------------------------------------------------------

FIELDS = sorted({f.name for cls in (RunSettings, ConversationConfig, ScoringConfig, GraphConfig, CommunityConfig,
                                     EvaluationConfig, BenchmarkSettings, Agent, Sampling) for f in dataclasses.fields(cls)}
                | {"agents", "backends", "defaults", "type", "base_url", "api_key_env", "headers", "Authorization"})
WORDS = ["all", "All", "math", "Math", "a b", "a_b", "", " ", "{topic}", "{friend}", "{{topic}}", "{", "}",
         "mean", "quantile:0.5", "quantile:2", "top_k:0", "top_k:3", "none", "chat", "transcript", "json",
         "llamacpp", "openai", "vllm", "local", "s", "gemma-3-270m", "smollm2-135m-instruct", "/m.gguf",
         "mmlu_math", "gsm8k", "arc_eazy", "generation", "likelihood", "cloze", "auto", "cumulative_cosine",
         "http://u:pw@h/v1?api_key=k", "127.0.0.1:8000", "sk-abc", "KEY_ENV", "2024-13-01", "x\ny", "\ud7ff"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, 1, -1, 2**32 - 1, 2**32, -2**63]), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(WORDS),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(-2, 2), st.none(), st.booleans())
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=10)


#: One field in about NOISE is anything at all (or an unknown key); one in about NOISE/4 is a bad value of
#: the right type. Every field of a config must pass for it to load, so the odds are low per field.
NOISE = 200


def weighted(good: st.SearchStrategy, bad: st.SearchStrategy, odds: int) -> st.SearchStrategy:
    """``good`` ``odds`` times out of ``odds + 1``, else ``bad`` (drawn at a middle index: hypothesis favours
    the ends of a range)."""
    return st.integers(0, odds).flatmap(lambda i: bad if i == odds // 2 else good)


def maybe(plausible: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value (so that many configs get past the first checks), sometimes anything at all."""
    return weighted(plausible, anything, NOISE)


def section(required: dict[str, st.SearchStrategy] | None = None, **fields: st.SearchStrategy) -> st.SearchStrategy:
    """A mapping of ``required`` and some of ``fields``; now and then with an unknown key or a field left out."""
    extra = weighted(st.just({}), st.dictionaries(st.text(max_size=6) | st.sampled_from(FIELDS), anything,
                                                  min_size=1, max_size=1), NOISE)
    known = st.fixed_dictionaries(required or {}, optional=fields)
    if required:
        known = weighted(known, st.fixed_dictionaries({}, optional={**required, **fields}), NOISE)
    return maybe(st.builds(lambda known, more: {**more, **known}, known, extra))


def ints(lo: int, hi: int, bad_lo: int = -2, bad_hi: int | None = None) -> st.SearchStrategy:
    """Mostly in lo..hi, sometimes just outside (bad_lo .. bad_hi)."""
    return maybe(weighted(st.integers(lo, hi), st.integers(bad_lo, bad_hi if bad_hi is not None else hi + 2), NOISE // 4))


def pick(good: list, bad: list, hashable: bool = False) -> st.SearchStrategy:
    chosen = weighted(st.sampled_from(good), st.sampled_from(bad), NOISE // 4)
    return chosen if hashable else maybe(chosen)


seeds = maybe(weighted(st.integers(0, 1000), st.one_of(
    st.integers(-3, -1), st.sampled_from([SEED_LIMIT - 10, SEED_LIMIT - 9, SEED_LIMIT - 1, SEED_LIMIT]),
    st.integers(-2**70, 2**70)), NOISE // 4))
floats = lambda lo, hi: maybe(weighted(st.floats(lo, hi), st.floats(), NOISE // 4))  # noqa: E731
names = weighted(st.sampled_from(["a", "b", "c", "A", "d"]), st.text(max_size=4), 10)
extra_keys = pick(["top_k", "min_p", "max_tokens", "stop_token_ids", "grammar"],
                  ["api_key", "headers", "Authorization", "token", "x-api-key", ""], hashable=True) | st.text(max_size=6)
sampling = section(max_tokens=ints(1, 64), temperature=floats(0, 2), top_p=floats(0.01, 1),
                   repeat_penalty=maybe(st.none() | st.floats(0, 2)),
                   extra=maybe(st.dictionaries(extra_keys, anything, max_size=3)))
agent = section({"name": maybe(names)}, backend=pick(["local"], ["s", "nope"]),
                model=pick(["gemma-3-270m", "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "/m.gguf"], [""]),
                persona=maybe(st.text(max_size=10)), format=pick(["chat", "transcript"], ["json"]),
                labels=maybe(st.lists(st.text(max_size=5), max_size=3) | st.dictionaries(st.sampled_from(["family", "role"]),
                                                                                        st.text(max_size=4), max_size=2)),
                sampling=sampling)
backend = section({"type": pick(["llamacpp", "openai"], ["vllm", "ollama"])},
                  base_url=pick(["http://127.0.0.1:1/v1"], ["ftp://x", "http://u:pw@h/v1?api_key=k"]),
                  api_key_env=pick(["KEY_ENV", None], ["sk-123-abc"]), n_ctx=ints(1, 4096))
backends = maybe(st.one_of(st.just({"local": {"type": "llamacpp"}}), st.just({"local": {"type": "llamacpp"}}),
                           st.dictionaries(st.sampled_from(["local", "s"]) | st.text(max_size=4), backend, max_size=3)))
per_benchmark = maybe(st.dictionaries(pick(["gsm8k", "arc_easy"], ["arc_eazy"], hashable=True),
                                      section(n_items=ints(1, 5), max_tokens=ints(1, 5),
                                              scoring=pick(["cloze", "auto"], ["guess"])), max_size=2))
topic_lines = pick(["Let's discuss {topic}.", "{topic} {{x}} {topic}", "On {topic}:"],
                   ["{topic} {friend}", "{{topic}}", "{", "}", "{topic!r}", "{0}", "{}", "{topic.x}"])
config_like = section(
    {"agents": maybe(weighted(st.lists(agent, min_size=2, max_size=4, unique_by=lambda a: repr(a.get("name"))
                                       if isinstance(a, dict) else repr(a)),
                              st.lists(agent, max_size=4), 10))},
    backends=backends,
    defaults=section(backend=pick(["local"], ["s"]), sampling=sampling),
    topics=maybe(st.lists(pick(["math", "medicine", "Physics", "side effects"], ["all", "All", "Math", "", " "])
                          | st.text(max_size=8), min_size=1, max_size=2) | st.text(max_size=8)),
    name=maybe(st.text(max_size=8)), output=maybe(st.text(max_size=8)),
    conversation=section(turns=ints(2, 8), both_orders=maybe(st.booleans()), repeats=ints(1, 3), seed=seeds,
                         instruction=maybe(st.text(max_size=10)),
                         topic_line=weighted(topic_lines, st.text(max_size=12), 10)),
    scoring=section(metric=pick(["cumulative_cosine"], ["euclid"]), embedder=maybe(st.text(max_size=5)),
                    batch_size=ints(1, 64)),
    graph=section(threshold=pick(["mean", "none", "quantile:0.3", "top_k:2"],
                                 ["quantile:7", "top_k:-1", "median", "quantile:nan"])),
    communities=section(resolution=floats(0.1, 3), n_seeds=ints(1, 12), seed=seeds, n_permutations=ints(0, 5)),
    evaluation=section(benchmarks=maybe(st.lists(pick(["mmlu_math", "gsm8k"], ["mmlu_maths"]), max_size=3)),
                       n_items=ints(1, 5), seed=seeds, max_tokens=ints(1, 5), random_draws=ints(1, 5),
                       scoring=pick(["generation", "auto"], ["sometimes"]), per_benchmark=per_benchmark),
)


def check_valid_config(cfg: Any) -> None:
    """What a config that loads promises: nothing fails later for a reason the loader could have seen."""
    from teamgraph.dialogue import build_request, plan_conversations

    assert cfg.conversation.topic_line.format(topic="x")
    assert 0 <= cfg.conversation.seed < SEED_LIMIT and 0 <= cfg.evaluation.seed < SEED_LIMIT
    assert 0 <= cfg.communities.seed and cfg.communities.seed + cfg.communities.n_seeds <= SEED_LIMIT
    slugs = [file_slug(t) for t in cfg.topics]
    assert len(set(slugs)) == len(slugs) and "all" not in slugs and all(t.strip() for t in cfg.topics)
    for a in cfg.agents:
        assert not any(is_secret_key(k) for k in a.sampling.extra)
        assert math.isfinite(a.sampling.temperature) and math.isfinite(a.sampling.top_p)
    one = dataclasses.replace(cfg.conversation, repeats=1, both_orders=False)
    specs = plan_conversations(cfg.agents, cfg.topics[:1], one)
    build_request(specs[0], [], one)


def test_config_from_dict_raises_only_teamgraph_errors() -> None:
    outcome = {"loaded": 0, "refused": 0}

    def check(data: Any) -> None:
        try:
            cfg = config_from_dict(data, source="fuzz.yaml")
        except TeamgraphError as exc:
            outcome["refused"] += 1
            assert str(exc).startswith("fuzz.yaml: ")
            return
        outcome["loaded"] += 1
        check_valid_config(cfg)

    tried = run_property(check, weighted(config_like, anything, 4))
    print(f"config_from_dict: {outcome['loaded']} loaded, {outcome['refused']} refused with ConfigError")
    report("config_from_dict", tried)


@pytest.fixture(scope="module")
def scratch() -> Any:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def load_bytes(path: Path, data: bytes, outcome: dict[str, int] | None = None) -> None:
    path.write_bytes(data)
    try:
        cfg = load_config(path)
    except TeamgraphError as exc:
        assert str(path) in str(exc)
        if outcome is not None:
            outcome["refused"] += 1
        return
    if outcome is not None:
        outcome["loaded"] += 1
        check_valid_config(cfg)


def test_load_config_on_generated_yaml_raises_only_teamgraph_errors(scratch: Path) -> None:
    path = scratch / "generated.yaml"
    outcome = {"loaded": 0, "refused": 0}

    def check(data: Any, flips: list[tuple[int, int]]) -> None:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")
        load_bytes(path, text, outcome)
        if flips and text:  # the same file with a few bytes changed: broken YAML, broken UTF-8
            damaged = bytearray(text)
            for at, byte in flips:
                damaged[at % len(damaged)] = byte
            load_bytes(path, bytes(damaged))

    flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3)
    tried = run_property(check, config_like, flips)
    print(f"load_config: {outcome['loaded']} generated files loaded, {outcome['refused']} refused with ConfigError")
    report("load_config (generated YAML, then damaged)", tried)


def test_load_config_on_random_bytes_raises_only_teamgraph_errors(scratch: Path) -> None:
    path = scratch / "random.yaml"
    text_like = st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
    report("load_config (random bytes)",
           run_property(lambda data: load_bytes(path, data), st.binary(max_size=300) | text_like))


# -- generated conversations files ----------------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
                           | st.sampled_from(["\ud800", "a", "b", "ok", "error"]),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
def often(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    return weighted(good, bad, 12)


speakers = often(st.sampled_from(["a", "b"]), st.sampled_from(["c", "\ud800", ""]) | json_values)
utterance = often(st.fixed_dictionaries({"speaker": speakers, "text": often(st.text(max_size=10), json_values)},
                                        optional={"status": often(st.sampled_from(["ok", "empty", "error"]),
                                                                  st.sampled_from(["x", "\ud800"]) | json_values)}),
                  st.fixed_dictionaries({}, optional={"speaker": speakers, "text": json_values}) | json_values)
conversation_like = often(
    st.fixed_dictionaries(
        {"agent_a": often(st.just("a"), speakers), "agent_b": often(st.just("b"), speakers),
         "topic": often(st.text(min_size=1, max_size=6), st.sampled_from([" ", "\ud800"]) | json_values),
         "utterances": often(st.lists(utterance, max_size=4), json_values)},
        optional={"id": often(st.none() | st.text(max_size=6), json_values)}),
    st.fixed_dictionaries({}, optional={"agent_a": speakers, "agent_b": speakers, "topic": json_values,
                                        "utterances": json_values, "id": json_values}))
json_line = weighted(st.builds(lambda v, ascii_: json.dumps(v, ensure_ascii=ascii_), conversation_like, st.booleans()),
                     st.one_of(st.builds(json.dumps, json_values), st.text(max_size=30), st.just("")), 8)
jsonl_files = st.builds(lambda lines, sep: sep.join(lines).encode("utf-8", "surrogatepass"),
                        st.lists(json_line, max_size=5), st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))


def read_bytes(path: Path, data: bytes, outcome: dict[str, int]) -> None:
    path.write_bytes(data)
    try:
        convs = read_conversations(path)
    except TeamgraphError as exc:
        outcome["refused"] += 1
        assert str(path) in str(exc)
        return
    outcome["read"] += 1
    again = path.with_suffix(".out.jsonl")
    write_conversations(convs, again)  # what was read can be written and read back unchanged
    assert read_conversations(again) == convs


def test_read_conversations_on_random_bytes_raises_only_teamgraph_errors(scratch: Path) -> None:
    path = scratch / "random.jsonl"
    outcome = {"read": 0, "refused": 0}
    tried = run_property(lambda data: read_bytes(path, data, outcome), st.binary(max_size=300))
    report("read_conversations (random bytes)", tried)


def test_read_conversations_on_generated_json_lines_raises_only_teamgraph_errors(scratch: Path) -> None:
    path = scratch / "generated.jsonl"
    outcome = {"read": 0, "refused": 0}
    tried = run_property(lambda data: read_bytes(path, data, outcome), jsonl_files)
    print(f"read_conversations: {outcome['read']} files read, {outcome['refused']} refused with InputError")
    report("read_conversations (generated JSON lines)", tried)
