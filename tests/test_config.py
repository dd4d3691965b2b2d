import socket
import subprocess
import sys
import textwrap

import pytest
import yaml

from teamgraph.cli import main
from teamgraph.config import config_from_dict, load_config
from teamgraph.errors import ConfigError

BASE = {
    "backends": {"local": {"type": "llamacpp"}},
    "agents": [{"name": "a", "labels": ["math"]}, {"name": "b"}],
    "topics": ["mathematics"],
}


def with_(**changes):
    data = {k: (v.copy() if isinstance(v, dict) else list(v)) for k, v in BASE.items()}
    data.update(changes)
    return data


def test_valid_config_defaults_and_merging():
    cfg = config_from_dict(with_(defaults={"sampling": {"temperature": 0.5, "max_tokens": 20}},
                                 agents=[{"name": "a", "sampling": {"max_tokens": 10}}, {"name": "b"}]))
    assert cfg.agents.get("a").sampling.max_tokens == 10 and cfg.agents.get("a").sampling.temperature == 0.5
    assert cfg.agents.get("b").sampling.max_tokens == 20
    assert cfg.conversation.turns == 6 and cfg.graph.threshold == "mean" and cfg.communities.n_seeds == 10


@pytest.mark.parametrize(
    "data, field, problem",
    [
        (with_(backends={"local": {"type": "ollama"}}), "backends.local.type", "unknown backend type 'ollama'"),
        (with_(agents=[{"name": "a"}, {"name": "a"}]), "agents[1].name", "duplicate agent name 'a'"),
        (with_(agents=[{"name": "a"}, {"persona": "x"}]), "agents[1].name", "missing required field"),
        ({k: v for k, v in BASE.items() if k != "agents"}, "agents", "missing required field"),
        (with_(conversation={"turns": 1}), "conversation.turns", "must be in 2 .. 1000 (got 1)"),
        (with_(conversation={"turns": "six"}), "conversation.turns", "expected an integer"),
        (with_(agents=[{"name": "a", "backend": "remote"}, {"name": "b"}]), "agents[0].backend", "unknown backend 'remote'"),
        (with_(agents=[{"name": "a", "format": "json"}, {"name": "b"}]), "agents[0].format", "must be one of chat, transcript"),
        (with_(agents=[{"name": "a", "sampling": {"temprature": 1}}, {"name": "b"}]), "agents[0].sampling.temprature", "unknown field"),
        (with_(graph={"threshold": "median"}), "graph.threshold", "median"),
        (with_(scoring={"metric": "euclid"}), "scoring.metric", "unknown metric 'euclid'"),
        (with_(topics=[]), "topics", "at least one topic"),
        (with_(colour="red"), "colour", "unknown field"),
    ],
)
def test_bad_configs_name_the_field(data, field, problem):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, source="cfg.yaml")
    assert err.value.field == field
    assert problem in str(err.value) and str(err.value).startswith("cfg.yaml: ")


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("agents:\n  - name: a\n   - name: b\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: \(yaml\): invalid YAML at line 3"):
        load_config(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLI_CASES = {
    "unknown backend": ("backends: {local: {type: ollama}}\nagents: [{name: a}, {name: b}]\n", "unknown backend type 'ollama'"),
    "duplicate agents": ("agents: [{name: a}, {name: a}]\n", "agents[1].name: duplicate agent name 'a'"),
    "missing field": ("topics: [general]\n", "agents: missing required field"),
    "turns < 2": ("agents: [{name: a}, {name: b}]\nconversation: {turns: 1}\n", "conversation.turns: must be in 2 .. 1000"),
    "bad backend setting": ("backends: {local: {type: llamacpp, threads: 4}}\nagents: [{name: a}, {name: b}]\n",
                            "backends.local.threads: unknown setting"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys, case):
    text, message = CLI_CASES[case]
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and str(path) in err


def test_cli_unreachable_url_exits_2_naming_agent_and_url(tmp_path):
    port = free_port()
    path = tmp_path / "remote.yaml"
    path.write_text(textwrap.dedent(f"""
        backends:
          server: {{type: openai, base_url: "http://127.0.0.1:{port}/v1", max_retries: 1, timeout: 5}}
        defaults: {{backend: server, model: some-model, format: chat}}
        agents: [{{name: ada}}, {{name: bob}}]
    """))
    proc = subprocess.run([sys.executable, "-m", "teamgraph", "run", str(path), "--out", str(tmp_path / "o"), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("teamgraph: error:")]
    assert len(errors) == 1 and proc.stderr.splitlines()[-1] == errors[0]  # retries are logged, then one error line
    assert "agent ada" in errors[0] and f"http://127.0.0.1:{port}/v1" in errors[0]


def test_plan_prints_counts(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text("agents: [{name: a}, {name: b}, {name: c}, {name: d}]\ntopics: [x, y]\nconversation: {turns: 4, both_orders: true}\n")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 agents, 2 topics -> 24 conversations, 96 utterances" in out


def test_example_configs_in_data_are_valid(monkeypatch):
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data"
    local = load_config(data / "demo_local.yaml")
    assert len(local.agents) >= 6 and {a.labels[0] for a in local.agents} >= {"math", "medical"}
    assert all(a.persona for a in local.agents)
    remote = load_config(data / "openai_servers.yaml")
    assert {b.type for b in remote.backends.values()} == {"openai"}
    keyed = [b.settings for b in remote.backends.values() if "api_key_env" in b.settings]
    assert keyed and all(s["api_key_env"].isupper() for s in keyed)  # a variable name, not a key


def test_labels_as_a_mapping_become_kind_value_labels_and_zoo_models_bring_their_format():
    cfg = config_from_dict(with_(agents=[
        {"name": "a", "model": "smollm2-135m-instruct", "labels": {"family": "smollm2", "role": "math"}},
        {"name": "b", "model": "gemma-3-270m"},
        {"name": "c", "model": "qwen2.5-coder-0.5b-instruct", "format": "transcript"},
        {"name": "d", "model": "/models/other.gguf"},
    ]))
    assert cfg.agents.get("a").labels == ("family:smollm2", "role:math")
    assert [cfg.agents.get(n).format for n in "abcd"] == ["chat", "transcript", "transcript", "transcript"]


def test_the_make_run_demo_graphs_three_model_families_with_both_label_kinds():
    from pathlib import Path

    from teamgraph.models import get_model
    from teamgraph.validation import label_kinds

    demo = load_config(Path(__file__).resolve().parents[1] / "data" / "demo_zoo.yaml")
    families = {get_model(a.model).family for a in demo.agents}
    assert families >= {"smollm2", "qwen2.5", "gemma3"}
    assert label_kinds(demo.agents.labels()) == ["family", "role"]
    for a in demo.agents:
        assert a.format == get_model(a.model).format
        assert f"family:{get_model(a.model).family}" in a.labels  # the family label says the truth
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "teamgraph run data/demo_zoo.yaml" in makefile


def test_plan_times_each_zoo_model_at_its_own_speed(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text("agents: [{name: a, model: smollm2-135m-instruct}, {name: b, model: qwen2.5-coder-0.5b-instruct}]\n"
                    "defaults: {sampling: {max_tokens: 22}}\ntopics: [x]\nconversation: {turns: 2}\n")
    from teamgraph.pipeline import estimate

    est = estimate(load_config(path))
    smol, qwen = est["per_model"]["smollm2-135m-instruct"], est["per_model"]["qwen2.5-coder-0.5b-instruct"]
    assert smol["utterances"] == qwen["utterances"] == 1
    # 22 tokens at each model's recorded speed, plus the same prompt share: the slower model costs more.
    assert qwen["seconds"] - smol["seconds"] == pytest.approx(22 / 22.0 - 22 / 80.0 + 22 / 1000.0, abs=0.1)
    assert main(["plan", str(path)]) == 0
    assert "qwen2.5-coder-0.5b-instruct: 1 utterances" in capsys.readouterr().out


@pytest.mark.parametrize("evaluation, field, problem", [
    ({"scoring": "sometimes"}, "evaluation.scoring", "must be one of generation, likelihood, cloze, auto"),
    ({"per_benchmark": {"arc_eazy": {"scoring": "cloze"}}}, "evaluation.per_benchmark.arc_eazy", "unknown benchmark"),
    ({"per_benchmark": {"arc_easy": {"scoring": "guess"}}}, "evaluation.per_benchmark.arc_easy.scoring",
     "must be one of generation"),
    ({"per_benchmark": {"gsm8k": {"n_items": 0}}}, "evaluation.per_benchmark.gsm8k.n_items", "must be >= 1"),
    ({"per_benchmark": {"gsm8k": {"max_tokens": "many"}}}, "evaluation.per_benchmark.gsm8k.max_tokens",
     "expected an integer"),
    ({"per_benchmark": {"gsm8k": {"temperature": 0.2}}}, "evaluation.per_benchmark.gsm8k.temperature", "unknown field"),
    ({"per_benchmark": ["gsm8k"]}, "evaluation.per_benchmark", "expected a mapping"),
])
def test_bad_evaluation_settings_name_the_field(evaluation, field, problem, tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_(evaluation=evaluation))
    assert err.value.field == field and problem in str(err.value)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"agents": [{"name": "a"}, {"name": "b"}], "evaluation": evaluation}))
    assert main(["plan", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_study_refuses_agents_without_family_and_role_labels(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("agents: [{name: a, labels: {family: x, role: m}}, {name: b, labels: {role: d, size: s}}]\n"
                    "evaluation: {benchmarks: [arc_easy]}\n")
    assert main(["study", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "missing on b" in err and err.count("\n") == 1


# -- issue 12: every bad input is one line naming the field (or file and line), before any model loads --------


def cli_error(tmp_path, capsys, text: str | bytes, command: str = "plan") -> str:
    """Run ``teamgraph <command>`` on a config with ``text``: exit code 2 and exactly one stderr line."""
    path = tmp_path / "cfg.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    args = [command, str(path)] + (["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else [])
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("teamgraph: error: ") and "Traceback" not in err, err
    assert str(path) in err
    return err


def test_a_config_that_is_not_utf8_is_one_line_naming_file_and_line(tmp_path, capsys):
    text = "agents: [{name: a}, {name: b}]\ntopics: [caf\xe9]\n".encode("latin-1")
    err = cli_error(tmp_path, capsys, text, command="run")
    assert "not UTF-8 text: byte 0xe9 at line 2, column 13" in err
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "cfg.yaml")
    assert info.value.field == "(file)"


def test_a_utf8_config_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"\xef\xbb\xbfagents: [{name: a}, {name: b}]\ntopics: [caf\xc3\xa9]\n")
    assert load_config(path).topics == ("caf\u00e9",)


@pytest.mark.parametrize("text, message", [
    ("agents: [{name: a}, {name: b}]\nname: x\x00y\n", "invalid YAML at line 2: character U+0000 is not allowed"),
    ("agents: [{name: a}, {name: b}]\nname: 2024-13-01\n", "invalid YAML: cannot read a value"),
    ("agents: [{name: a}, {name: b}]\nname: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML"),
    ("agents: [{name: a}, {name: b}]\nconversation: {seed: " + "9" * 5000 + "}\n", "invalid YAML: cannot read a value"),
    ("agents: [{name: a}, {name: b}]\n? [x]\n: 1\n", "invalid YAML at line 2: found unhashable key"),
])
def test_yaml_the_parser_refuses_is_one_line(tmp_path, capsys, text, message):
    assert message in cli_error(tmp_path, capsys, text)


@pytest.mark.parametrize("line, problem", [
    ("Let's discuss {topic} with {friend}.", "unknown placeholder '{friend}': {topic} is the only one"),
    ("Let's discuss {topic!r}.", "unknown placeholder '{topic!r}'"),
    ("Let's discuss {topic:>10}.", "unknown placeholder '{topic:>10}'"),
    ("Let's discuss {}.", "unknown placeholder '{}'"),
    ("Let's discuss {0}.", "unknown placeholder '{0}'"),
    ("Let's discuss {topic.upper}.", "unknown placeholder '{topic.upper}'"),
    ("Let's discuss {topic} {", "write a literal brace doubled"),
    ("Let's discuss {topic} }", "write a literal brace doubled"),
    ("Let's discuss {{topic}}.", "must contain '{topic}'"),  # a doubled brace is literal text
])
def test_topic_line_placeholders_are_checked_at_load(line, problem, tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(conversation={"topic_line": line}))
    assert info.value.field == "conversation.topic_line" and problem in str(info.value)
    err = cli_error(tmp_path, capsys, yaml.safe_dump({"agents": [{"name": "a"}, {"name": "b"}],
                                                      "conversation": {"topic_line": line}}))
    assert "conversation.topic_line" in err


def test_topic_line_literal_braces_are_written_doubled():
    from teamgraph.dialogue import build_request, plan_conversations

    cfg = config_from_dict(with_(conversation={"topic_line": "Topic {{in braces}}: {topic}, again {topic}."}))
    spec = plan_conversations(cfg.agents, cfg.topics, cfg.conversation)[0]
    request = build_request(spec, [], cfg.conversation)
    assert "Topic {in braces}: mathematics, again mathematics." in request.prompt


@pytest.mark.parametrize("section, value, problem", [
    ("conversation", -1, "must be in 0 .. 2**32-1 (got -1)"),
    ("conversation", 2**32, "must be in 0 .. 2**32-1 (got 4294967296)"),
    ("evaluation", -5, "must be in 0 .. 2**32-1 (got -5)"),
    ("evaluation", 10**30, "must be in 0 .. 2**32-1 (got an integer of 100 bits)"),
    ("communities", -1, "must be in 0 .. 2**32-10 (Louvain uses seeds seed .. seed+n_seeds-1"),
    ("communities", 2**32 - 9, "must be in 0 .. 2**32-10"),  # seed + 9 would be 2**32
])
def test_seeds_out_of_numpy_range_are_refused_at_load(section, value, problem, tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(**{section: {"seed": value}}))
    assert info.value.field == f"{section}.seed" and problem in str(info.value)
    err = cli_error(tmp_path, capsys, yaml.safe_dump({"agents": [{"name": "a"}, {"name": "b"}], section: {"seed": value}}),
                    command="run")
    assert f"{section}.seed" in err


def test_the_largest_seeds_numpy_takes_are_accepted():
    import numpy as np

    cfg = config_from_dict(with_(conversation={"seed": 2**32 - 1}, evaluation={"seed": 2**32 - 1},
                                 communities={"seed": 2**32 - 10, "n_seeds": 10}))
    c = cfg.communities
    np.random.RandomState(c.seed + c.n_seeds - 1)  # the last Louvain seed


@pytest.mark.parametrize("topics, field, problem", [
    (["mathematics", "all"], "topics[1]", "'all' is reserved: 'all' names the all-topics aggregate"),
    (["All"], "topics[0]", "'All' is reserved"),
    (["Medicine", "medicine"], "topics[1]", "'medicine' and 'Medicine' share the file name teams_medicine.json"),
    (["side effects", "side_effects"], "topics[1]", "share the file name teams_side_effects.json"),
    (["x" * 60 + " one", "x" * 60 + " two"], "topics[1]", "share the file name"),
    (["maths", "  "], "topics[1]", "must not be empty"),
    (["maths", "maths"], "topics", "contains duplicates"),
])
def test_topics_that_would_share_output_files_are_refused(topics, field, problem, tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(topics=topics))
    assert info.value.field == field and problem in str(info.value)
    err = cli_error(tmp_path, capsys, yaml.safe_dump({"agents": [{"name": "a"}, {"name": "b"}], "topics": topics}),
                    command="run")
    assert field in err


def test_the_config_slug_is_the_one_output_files_are_named_with():
    from teamgraph import pipeline, viz
    from teamgraph.config import file_slug

    for topic in ["Medicine", "side effects", "a/b", "Ünïcode", "x" * 80, "", "all", "q?", "tab\there"]:
        assert file_slug(topic) == pipeline._slug(topic) == viz.slug(topic)


SECRET = "sk-live-4f9a-should-never-print"


@pytest.mark.parametrize("where, data, field", [
    ("agent", with_(agents=[{"name": "a", "sampling": {"extra": {"api_key": SECRET}}}, {"name": "b"}]),
     "agents[0].sampling.extra.api_key"),
    ("agent", with_(agents=[{"name": "a"}, {"name": "b", "sampling": {"extra": {"headers": {"Authorization": SECRET}}}}]),
     "agents[1].sampling.extra.headers.Authorization"),
    ("agent", with_(agents=[{"name": "a", "sampling": {"extra": {"x-api-key": SECRET}}}, {"name": "b"}]),
     "agents[0].sampling.extra.x-api-key"),
    ("agent", with_(agents=[{"name": "a", "sampling": {"extra": {"opts": [{"access_token": SECRET}]}}}, {"name": "b"}]),
     "agents[0].sampling.extra.opts[0].access_token"),
    ("defaults", with_(defaults={"sampling": {"extra": {"password": SECRET}}}), "defaults.sampling.extra.password"),
    ("backend", with_(backends={"local": {"type": "llamacpp"}, "s": {"type": "openai", "base_url": "http://h/v1",
                                                                     "api_key": SECRET}}), "backends.s.api_key"),
    ("backend", with_(backends={"local": {"type": "llamacpp"}, "s": {"type": "openai", "base_url": "http://h/v1",
                                                                     "api_key_env": SECRET}}), "backends.s.api_key_env"),
    ("backend", with_(backends={"local": {"type": "llamacpp"},
                                "s": {"type": "openai", "base_url": f"http://h/v1?api_key={SECRET}"}}), "backends.s.base_url"),
])
def test_secrets_in_the_config_are_refused_without_being_shown(where, data, field, tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="cfg.yaml")
    assert info.value.field == field and SECRET not in str(info.value)
    assert "environment variable" in str(info.value)
    err = cli_error(tmp_path, capsys, yaml.safe_dump(data))
    assert field in err and SECRET not in err


def test_sampling_extra_without_secrets_passes_through():
    extra = {"top_k": 40, "min_p": 0.05, "stop_token_ids": [1, 2], "skip_special_tokens": True, "max_tokens_hint": 3}
    cfg = config_from_dict(with_(agents=[{"name": "a", "sampling": {"extra": extra}}, {"name": "b"}]))
    assert cfg.agents.get("a").sampling.extra == extra


@pytest.mark.parametrize("data, field, problem", [
    (with_(agents=[{"name": "a", "sampling": {"temperature": float("nan")}}, {"name": "b"}]),
     "agents[0].sampling.temperature", "expected a finite number, got nan"),
    (with_(communities={"resolution": float("inf")}), "communities.resolution", "expected a finite number"),
    (with_(agents=[{"name": "a", "sampling": {"top_p": 10**400}}, {"name": "b"}]),
     "agents[0].sampling.top_p", "expected a finite number, got an integer of 1329 bits"),
    (with_(name=10**5000), "name", "expected a string, got an integer of"),
    (with_(scoring={"batch_size": 0}), "scoring.batch_size", "must be >= 1 (got 0)"),
    (with_(evaluation={"benchmarks": ["mmlu_math", "mmlu_maths"]}), "evaluation.benchmarks[1]",
     "unknown benchmark 'mmlu_maths'"),
    (with_(evaluation={"random_draws": 0}), "evaluation.random_draws", "must be >= 1"),
    (with_(backends={"local": {"type": "llamacpp"}, "s": {"type": "openai", "base_url": "127.0.0.1:8000/v1"}}),
     "backends.s.base_url", "expected an http:// or https:// URL"),
    (with_(colour={"x": 1}, **{"7": 1}), "7", "unknown field"),
])
def test_more_bad_values_are_found_at_load(data, field, problem):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.field == field and problem in str(info.value)


@pytest.mark.parametrize("extra, field, problem", [
    ({"logit_bias": {1: 5}}, "agents[0].sampling.extra.logit_bias.1", "keys must be strings (got int 1; quote it)"),
    ({"when": __import__("datetime").date(2024, 1, 2)}, "agents[0].sampling.extra.when", "expected JSON data"),
    ({"min_p": float("nan")}, "agents[0].sampling.extra.min_p", "expected a finite number"),
    ({"n": 2**70}, "agents[0].sampling.extra.n", "integer out of range"),
])
def test_sampling_extra_must_be_json_data(extra, field, problem, tmp_path, capsys):
    """extra goes into request bodies and cache keys as JSON: a YAML date or an int key failed at the first plan."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(agents=[{"name": "a", "sampling": {"extra": extra}}, {"name": "b"}]))
    assert info.value.field == field and problem in str(info.value)
    err = cli_error(tmp_path, capsys, yaml.safe_dump({"agents": [{"name": "a", "sampling": {"extra": extra}}, {"name": "b"}]}))
    assert field in err


def test_a_bad_byte_after_a_byte_order_mark_is_located_right(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"\xef\xbb\xbfagents: [{name: a}, {name: b}]\ntopics: [caf\xe9]\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text: byte 0xe9 at line 2, column 13"):
        load_config(path)
