"""select_pairs (issue 13, part 3): neighbours, exploration, budget, coverage, determinism, input errors.

Expected pairs come from hand-worked geometry, scikit-learn's exact NearestNeighbors, or planted clusters,
never from the code under test."""
from __future__ import annotations

import math
import sys
import time

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

import teamgraph
import teamgraph.pairs as pairs_module
from teamgraph import find_communities
from teamgraph.errors import InputError, MissingDependencyError
from teamgraph.pairs import select_pairs


def _names(n: int) -> list[str]:
    return [f"agent{i:03d}" for i in range(n)]


def _random_fingerprints(n: int, dim: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(zip(_names(n), rng.normal(size=(n, dim))))


def _sklearn_knn_pairs(fingerprints: dict[str, np.ndarray], k: int) -> set[tuple[str, str]]:
    """Each agent's k nearest others by cosine distance, from scikit-learn's brute-force search."""
    names = sorted(fingerprints)
    x = np.array([fingerprints[n] for n in names])
    _, idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    found = set()
    for i, row in enumerate(idx):
        others = [j for j in row if j != i][:k]
        assert len(others) == k
        found |= {(names[min(i, j)], names[max(i, j)]) for j in others}
    return found


def _covered(selected: list[tuple[str, str]]) -> set[str]:
    return {a for a, _ in selected} | {b for _, b in selected}


# --- a hand-worked example ---------------------------------------------------------------------------
# Five agents on the unit circle at these angles (degrees). Cosine order is angle-difference order:
#   a-b 20, b-c 30, a-c 50, c-d 55, b-d 85, d-e 95, a-d 105, c-e 150, a-e 160, b-e 180.
ANGLES = {"a": 0, "b": 20, "c": 50, "d": 105, "e": 200}
CIRCLE = {n: [math.cos(math.radians(t)), math.sin(math.radians(t))] for n, t in ANGLES.items()}


def test_hand_worked_nearest_neighbour_pairs():
    # k=1: a->b, b->a, c->b (30 < 50), d->c (55 < 85), e->d (95 < 150)
    assert select_pairs(CIRCLE, k=1, explore=0) == [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")]
    # k=2: a->b,c  b->a,c  c->b,a (50 < 55)  d->c,b (85 < 95)  e->d,c (150 < 160)
    assert select_pairs(CIRCLE, k=2, explore=0) == [
        ("a", "b"), ("a", "c"), ("b", "c"), ("b", "d"), ("c", "d"), ("c", "e"), ("d", "e")]
    # k=4 on 5 agents: every pair; larger k means the same
    every = [(x, y) for x in "abcde" for y in "abcde" if x < y]
    assert select_pairs(CIRCLE, k=4, explore=0) == every == select_pairs(CIRCLE, k=50, explore=0)


def test_hand_worked_budget_keeps_best_ranked_pairs_and_every_agent():
    # k=2 priority: rank-1 pairs by similarity ab(20) bc(30) cd(55) de(95), then rank 2: ac(50) bd(85) ce(150).
    # budget 0.5 of 10 pairs: drop ce, bd.
    assert select_pairs(CIRCLE, k=2, explore=0, budget=0.5) == [
        ("a", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")]
    # budget 0.3: 3 pairs. Dropping from the end: ce, bd, ac; de is e's last pair (kept); cd goes.
    assert select_pairs(CIRCLE, k=2, explore=0, budget=0.3) == [("a", "b"), ("b", "c"), ("d", "e")]
    # budget 0.1 allows one pair, but covering five agents needs three: nothing more can go.
    assert select_pairs(CIRCLE, k=2, explore=0, budget=0.1) == [("a", "b"), ("b", "c"), ("d", "e")]


def test_exploration_on_a_tiny_roster_runs_out_of_partners():
    # 5 agents, 4 partners each at most: asking for more gives every pair, no error
    every = [(x, y) for x in "abcde" for y in "abcde" if x < y]
    assert select_pairs(CIRCLE, k=1, explore=10) == every


# --- exact search against scikit-learn ---------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 4, 9])
def test_exact_neighbours_match_sklearn(k):
    fingerprints = _random_fingerprints(150, seed=k)
    selected = select_pairs(fingerprints, k=k, explore=0)
    assert set(selected) == _sklearn_knn_pairs(fingerprints, k)
    assert selected == sorted(set(selected))
    assert all(a < b for a, b in selected)


def test_scale_does_not_change_cosine_neighbours():
    fingerprints = _random_fingerprints(40, seed=3)
    scaled = {n: v * (10.0 ** (i % 7 - 3)) for i, (n, v) in enumerate(fingerprints.items())}
    assert select_pairs(scaled, k=3, explore=2, seed=5) == select_pairs(fingerprints, k=3, explore=2, seed=5)


# --- NN-Descent --------------------------------------------------------------------------------------
@pytest.mark.slow  # numba compiles pynndescent's NN-Descent on first use in a process: 40-70 s on 2 loaded cores
def test_nn_descent_path_recall_against_exact(monkeypatch):
    pytest.importorskip("pynndescent")
    fingerprints = _random_fingerprints(300, dim=16, seed=11)
    k = 5
    exact = _sklearn_knn_pairs(fingerprints, k)
    monkeypatch.setattr(pairs_module, "EXACT_MAX_AGENTS", 100)
    approx = select_pairs(fingerprints, k=k, explore=0, seed=3)
    recall = len(set(approx) & exact) / len(exact)
    print(f"NN-Descent recall at N=300, k=5: {recall:.4f} ({len(approx)} pairs, exact {len(exact)})")
    assert recall >= 0.9
    assert _covered(approx) == set(fingerprints)
    # deterministic for a seed, with exploration and a budget too
    kwargs = dict(k=k, explore=2, budget=0.02, seed=7)
    first = select_pairs(fingerprints, **kwargs)
    assert first == select_pairs(fingerprints, **kwargs)
    assert len(first) <= math.floor(0.02 * 300 * 299 / 2) and _covered(first) == set(fingerprints)


def test_nn_descent_path_without_pynndescent_says_how_to_install(monkeypatch):
    monkeypatch.setattr(pairs_module, "EXACT_MAX_AGENTS", 3)
    monkeypatch.setitem(sys.modules, "pynndescent", None)  # import pynndescent now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install pynndescent"):
        select_pairs(_random_fingerprints(10), k=2)
    # k >= N - 1 needs no search: every pair, exactly
    assert len(select_pairs(_random_fingerprints(10), k=9, explore=0)) == 45


# --- exploration ------------------------------------------------------------------------------------
def test_exploration_adds_explore_new_pairs_per_agent_and_is_seeded():
    fingerprints = _random_fingerprints(40, seed=2)
    base = select_pairs(fingerprints, k=2, explore=0)
    more = select_pairs(fingerprints, k=2, explore=3, seed=4)
    assert set(base) <= set(more)
    assert len(more) - len(base) == 40 * 3
    assert len(set(more)) == len(more)
    assert more == select_pairs(fingerprints, k=2, explore=3, seed=4)
    other = select_pairs(fingerprints, k=2, explore=3, seed=5)
    assert other != more and set(base) <= set(other) and len(other) == len(more)


def test_exploration_pairs_are_spread_not_nearest():
    # the random partners of one seed are not all near: some cross the two far-apart clusters
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal([10, 0, 0], 0.5, size=(20, 3)), rng.normal([0, 10, 0], 0.5, size=(20, 3))])
    fingerprints = dict(zip(_names(40), x))
    cluster = {n: i // 20 for i, n in enumerate(_names(40))}
    base = select_pairs(fingerprints, k=3, explore=0)
    assert all(cluster[a] == cluster[b] for a, b in base)
    explored = set(select_pairs(fingerprints, k=3, explore=2, seed=1)) - set(base)
    crossing = sum(cluster[a] != cluster[b] for a, b in explored)
    # 400 of the 780 pairs cross, and none of the neighbour pairs: a little over half the random ones should
    assert len(explored) == 80 and 20 <= crossing <= 60


# --- budget ------------------------------------------------------------------------------------------
def test_budget_cap_is_respected_and_neighbours_go_first():
    fingerprints = _random_fingerprints(100, seed=6)
    names = sorted(fingerprints)
    x = np.array([fingerprints[n] for n in names])
    cap = math.floor(0.05 * 100 * 99 / 2)  # 247
    selected = select_pairs(fingerprints, k=5, explore=2, budget=0.05, seed=1)
    knn = _sklearn_knn_pairs(fingerprints, 5)
    assert len(knn) > cap  # so the cap binds before any exploration pair
    assert len(selected) == cap
    assert set(selected) <= knn
    assert _covered(selected) == set(fingerprints)
    # every agent keeps its nearest neighbour (rank 1 comes before rank 2 and later)
    _, idx = NearestNeighbors(n_neighbors=2, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    nearest = {(names[min(i, j)], names[max(i, j)]) for i, j in enumerate(idx[:, 1])}
    assert nearest <= set(selected)


def test_budget_keeps_every_agents_nearest_before_anyones_next():
    # neighbour pairs are kept by rank (each agent's 1st and 2nd before anyone's 3rd), not by similarity
    # alone: with room for exactly the 2-nearest-neighbour pairs, k=5 keeps those and nothing else
    fingerprints = _random_fingerprints(80, seed=12)
    two_nearest = _sklearn_knn_pairs(fingerprints, 2)
    budget = len(two_nearest) / (80 * 79 / 2)
    assert set(select_pairs(fingerprints, k=5, explore=2, budget=budget)) == two_nearest


def test_budget_between_neighbours_and_exploration_keeps_all_neighbours():
    fingerprints = _random_fingerprints(60, seed=8)
    knn = _sklearn_knn_pairs(fingerprints, 2)
    budget = (len(knn) + 30) / (60 * 59 / 2)
    selected = select_pairs(fingerprints, k=2, explore=2, budget=budget, seed=0)
    assert knn <= set(selected)
    assert len(selected) == len(knn) + 30


def test_tiny_budget_still_covers_every_agent():
    fingerprints = _random_fingerprints(100, seed=9)
    selected = select_pairs(fingerprints, k=4, explore=2, budget=1e-6)
    assert _covered(selected) == set(fingerprints)
    degree = {n: 0 for n in fingerprints}
    for a, b in selected:
        degree[a] += 1
        degree[b] += 1
    # nothing more could go: every pair kept is the only pair of one of its agents
    assert all(degree[a] == 1 or degree[b] == 1 for a, b in selected)
    assert 50 <= len(selected) <= 99


# --- inputs ------------------------------------------------------------------------------------------
def test_dataframe_input_equals_dict_input_in_any_order():
    fingerprints = _random_fingerprints(30, seed=4)
    frame = pd.DataFrame(np.array(list(fingerprints.values())), index=list(fingerprints))
    shuffled = dict(reversed(list(fingerprints.items())))
    expected = select_pairs(fingerprints, k=3, explore=1, budget=0.2, seed=2)
    assert select_pairs(frame, k=3, explore=1, budget=0.2, seed=2) == expected
    assert select_pairs(frame.iloc[::-1], k=3, explore=1, budget=0.2, seed=2) == expected
    assert select_pairs(shuffled, k=3, explore=1, budget=0.2, seed=2) == expected


def test_public_api_and_non_string_names():
    assert teamgraph.select_pairs is select_pairs
    assert "select_pairs" in teamgraph.__all__
    assert select_pairs({1: [1.0, 0.0], 2: [0.9, 0.1], 3: [0.0, 1.0]}, k=1, explore=0) == [("1", "2"), ("2", "3")]


GOOD = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}


@pytest.mark.parametrize("fingerprints, kwargs, named", [
    (GOOD, {"k": 0}, "k must be >= 1"),
    (GOOD, {"k": 2.5}, "k must be an integer"),
    (GOOD, {"k": True}, "k must be an integer"),
    (GOOD, {"explore": -1}, "explore must be >= 0"),
    (GOOD, {"explore": "2"}, "explore must be an integer"),
    (GOOD, {"budget": 0}, "budget must be in (0, 1]"),
    (GOOD, {"budget": 1.5}, "budget must be in (0, 1]"),
    (GOOD, {"budget": float("nan")}, "budget must be in (0, 1]"),
    (GOOD, {"budget": "0.1"}, "budget must be in (0, 1]"),
    (GOOD, {"seed": -1}, "seed must be in 0 .. 2**32-1"),
    (GOOD, {"seed": 1.0}, "seed must be an integer"),
    ({"a": [1.0, 0.0]}, {}, "fingerprints must have at least 2 agents, got 1"),
    ({}, {}, "at least 2 agents, got 0"),
    ([[1.0, 0.0], [0.0, 1.0]], {}, "fingerprints must map agent names to vectors"),
    ({"a": [1.0, 0.0], "b": [1.0, 0.0, 0.0]}, {}, "fingerprints['b'] has length 3 but fingerprints['a'] has 2"),
    ({"a": [1.0, float("nan")], "b": [1.0, 0.0]}, {}, "fingerprints['a'] has a value that is not finite"),
    ({"a": [1.0, 0.0], "b": [float("inf"), 0.0]}, {}, "fingerprints['b'] has a value that is not finite"),
    ({"a": [1.0, 0.0], "b": [0.0, 0.0]}, {}, "fingerprints['b'] is all zeros"),
    ({"a": [[1.0, 0.0]], "b": [[0.0, 1.0]]}, {}, "fingerprints['a'] must be a non-empty 1-D vector"),
    ({"a": [], "b": []}, {}, "fingerprints['a'] must be a non-empty 1-D vector"),
    ({"a": ["x", "y"], "b": [1.0, 0.0]}, {}, "fingerprints['a'] is not a vector of numbers"),
    ({1: [1.0, 0.0], "1": [0.0, 1.0]}, {}, "agent names 1 and '1' are the same as text"),
    (pd.DataFrame([[1.0, 0.0], [0.0, 1.0]], index=["a", "a"]), {}, "fingerprints: agent 'a' appears twice"),
])
def test_bad_inputs_raise_input_error_naming_the_parameter(fingerprints, kwargs, named):
    with pytest.raises(InputError) as error:
        select_pairs(fingerprints, **kwargs)
    assert named in str(error.value)


# --- a planted testbed -------------------------------------------------------------------------------
@pytest.mark.parametrize("explore, min_within", [(1, 0.7), (3, 0.5)])
def test_planted_clusters_are_recovered_from_selected_pairs_only(explore, min_within):
    rng = np.random.default_rng(2024)
    n_clusters, per_cluster, dim = 6, 10, 16
    centres = rng.normal(size=(n_clusters, dim))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    x = centres[truth] + rng.normal(scale=0.35, size=(len(truth), dim))
    names = _names(len(truth))
    fingerprints = dict(zip(names, x))
    label = dict(zip(names, truth.tolist()))

    started = time.perf_counter()
    selected = select_pairs(fingerprints, k=5, explore=explore, budget=0.2, seed=0)
    assert time.perf_counter() - started < 2.0
    cap = math.floor(0.2 * 60 * 59 / 2)  # 354 of 1,770 pairs
    # about 60 x 5 neighbour pairs less the mutual ones, plus 60 per draw: explore=3 reaches the cap
    assert len(selected) == cap if explore == 3 else len(selected) < cap
    assert _covered(selected) == set(names)
    within = sum(label[a] == label[b] for a, b in selected) / len(selected)
    assert within > min_within, within

    unit = {n: v / np.linalg.norm(v) for n, v in fingerprints.items()}
    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_weighted_edges_from((a, b, max(0.0, float(unit[a] @ unit[b]))) for a, b in selected)
    partition = find_communities(graph, n_seeds=5, seed=0)
    found = {agent: i for i, community in enumerate(partition.communities) for agent in community}
    ari = adjusted_rand_score([label[n] for n in names], [found[n] for n in names])
    assert ari >= 0.9, ari
