"""Limits and defaults are declared once (teamgraph.limits): the config loader, the public functions
and the command line all follow a change made there."""
import networkx as nx
import pytest

import teamgraph as tg
from teamgraph import limits
from teamgraph.cli import build_parser, main
from teamgraph.config import CommunityConfig, ScoringConfig, config_from_dict
from teamgraph.errors import ConfigError, InputError
from teamgraph.limits import LIMITS, Limit

CONFIG = {"agents": [{"name": "a"}, {"name": "b"}], "communities": {"n_seeds": 3}}


def subcommand_help(name: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return " ".join(sub.choices[name].format_help().split())


def test_a_limit_changed_in_one_place_changes_the_config_error_the_api_error_and_the_cli_help(monkeypatch, capsys):
    graph = nx.Graph([("a", "b", {"weight": 1.0}), ("c", "d", {"weight": 1.0})])
    # as shipped: 3 seeds are fine everywhere, and the help states the rule
    assert config_from_dict(CONFIG).communities.n_seeds == 3
    assert tg.find_communities(graph, n_seeds=3).settings.n_seeds == 3
    assert "must be in 1 .. 10000; default 10" in subcommand_help("teams")

    monkeypatch.setitem(LIMITS, "n_seeds", Limit(5, 50))
    with pytest.raises(ConfigError) as err:
        config_from_dict(CONFIG)
    assert err.value.field == "communities.n_seeds" and "must be in 5 .. 50 (got 3)" in str(err.value)
    with pytest.raises(InputError, match=r"^n_seeds must be in 5 \.\. 50, got 3$"):
        tg.find_communities(graph, n_seeds=3)
    assert "must be in 5 .. 50; default 10" in subcommand_help("teams")
    assert main(["teams", "--conversations", "none.jsonl", "--json", "t.json", "--seeds", "3"]) == 2
    assert capsys.readouterr().err.strip() == "teamgraph: error: --seeds must be in 5 .. 50, got 3"


@pytest.mark.parametrize("name, good, bad", [
    ("resolution", 0.01, 0), ("top_p", 1.0, 0.0), ("temperature", 0, -0.1), ("seed", 2**32 - 1, 2**32),
    ("n_permutations_or_skip", 0, -1), ("n_permutations", 1, 0), ("turns", 2, 1),
])
def test_limits_hold_at_their_ends(name, good, bad):
    assert LIMITS[name].ok(good) and not LIMITS[name].ok(bad)
    with pytest.raises(InputError, match=rf"^{name} must be"):
        limits.check(name, bad)


def test_nan_and_text_never_pass_a_limit():
    assert not LIMITS["resolution"].ok(float("nan"))
    assert not LIMITS["n_seeds"].ok("ten")


def test_the_config_defaults_are_the_declared_ones():
    assert CommunityConfig().resolution == limits.DEFAULT_RESOLUTION
    assert CommunityConfig().n_seeds == limits.DEFAULT_N_SEEDS
    assert CommunityConfig().n_permutations == limits.DEFAULT_N_PERMUTATIONS
    assert ScoringConfig().embedder == limits.DEFAULT_EMBEDDER
    assert ScoringConfig().metric == limits.DEFAULT_METRIC


def test_docs_list_every_limit_with_its_rule():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text(encoding="utf-8")
    for name, limit in LIMITS.items():
        assert f"| `{name}` | {limit.text()} |" in text, name
