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
        (with_(conversation={"turns": 1}), "conversation.turns", "must be >= 2"),
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
    "turns < 2": ("agents: [{name: a}, {name: b}]\nconversation: {turns: 1}\n", "conversation.turns: must be >= 2"),
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
