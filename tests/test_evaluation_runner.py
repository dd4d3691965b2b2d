"""Team evaluation: cached answers, offline team scores against a direct recount, debate, CLI, real model."""
from __future__ import annotations

import re
import textwrap
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from teamgraph.backends.base import GenerationResult
from teamgraph.cli import main
from teamgraph.config import config_from_dict, load_config
from teamgraph.errors import InputError
from teamgraph.evaluation import (
    ANSWER_COLUMNS,
    build_answer_request,
    collect_answers,
    debate_scores,
    evaluate,
    extract_reply,
    item_rng,
    load_benchmark,
    load_teams,
    random_team_scores,
    run_debates,
    topics_for_group,
)
from teamgraph.evaluation.runner import WEIGHT_FLOOR
from teamgraph.store import Store, stable_hash

LETTERS = "ABCD"


class FakeBackend:
    """Deterministic replies that depend on the prompt; counts every request. Tests logic, not a model.

    A first answer is a letter picked by hashing (agent, prompt); in a debate round the agent copies
    the most common answer among the others (ties: the alphabetically first), "no answer" ignored.
    """

    def __init__(self, max_batch: int | None = 3, store: Store | None = None):
        self.max_batch = max_batch
        self.requests = []
        self.batches = []
        self.store = store
        self.stored_at_call = []

    def describe(self):
        return {"type": "fake"}

    def close(self):
        pass

    @staticmethod
    def first_answer(agent: str, text: str) -> str:
        return LETTERS[int(stable_hash([agent, text])[:6], 16) % 4]

    @staticmethod
    def peers_in(text: str) -> dict[str, str]:
        line = re.search(r"(?:Other experts answered|other team members): (.*?)\.(?:\n| Using)", text).group(1)
        return dict(part.split(": ") for part in line.split("; "))

    def reply(self, req) -> str:
        text = req.prompt if req.prompt is not None else "\n".join(m["content"] for m in req.messages)
        if "Other experts answered" in text or "other team members" in text:
            votes = Counter(a for a in self.peers_in(text).values() if a != "no answer")
            if votes:
                top = max(votes.values())
                return " " + sorted(a for a, c in votes.items() if c == top)[0]
        if "ABSTAIN" in req.agent:
            return " I am not sure."
        return f" {self.first_answer(req.agent, text)}. Because."

    def generate(self, requests):
        self.batches.append(len(requests))
        if self.store is not None:
            self.stored_at_call.append(self.store.counts()["answers"])
        self.requests.extend(requests)
        return [GenerationResult.from_text(self.reply(r)) for r in requests]


AGENTS = [("Ada", "math"), ("Euler", "math"), ("Noether", "math"), ("Galen", "medical"), ("Florence", "medical"),
          ("Koch", "medical")]


def make_config(tmp_path, agents=AGENTS, **evaluation):
    data = {
        "name": "eval-test",
        "output": str(tmp_path / "run"),
        "backends": {"local": {"type": "llamacpp"}},
        "agents": [{"name": n, "persona": f"{n} is an expert.", "labels": [label]} for n, label in agents],
        "topics": ["mathematics", "medicine"],
        "evaluation": {"benchmarks": ["mmlu_math", "medqa"], "n_items": 12, "seed": 0, "max_tokens": 8,
                       "random_draws": 50, **evaluation},
    }
    return config_from_dict(data)


TEAMS = {"mathematics": [["Ada", "Euler", "Noether"], ["Florence", "Galen", "Koch"]],
         "medicine": [["Ada", "Galen"], ["Euler", "Florence", "Koch", "Noether"]],
         "all": [["Ada", "Euler", "Galen", "Koch"], ["Florence", "Noether"]]}


@pytest.fixture(scope="module")
def math_items():
    return load_benchmark("mmlu_math", n_items=8, seed=3)


# -- answers ------------------------------------------------------------------------------------

def test_collect_answers_batches_per_backend_stores_each_chunk_and_reuses_the_store(tmp_path, math_items):
    cfg = make_config(tmp_path)
    agents = list(cfg.agents)[:3]
    with Store(tmp_path / "s.sqlite") as store:
        fake = FakeBackend(max_batch=5, store=store)
        first = collect_answers(agents, math_items, {"local": fake}, store, seed=1, progress=False)
        assert list(first.columns) == ANSWER_COLUMNS
        assert len(first) == 3 * 8 and len(fake.requests) == 24
        assert max(fake.batches) <= 5 and sum(fake.batches) == 24
        assert fake.stored_at_call == [0, 5, 10, 15, 20]  # each chunk is in the store before the next call
        assert (first["round"] == 0).all() and (first["status"] == "ok").all()
        # the extracted answer is the letter the fake picked from the exact prompt it was sent
        expected = {(r.agent, r.prompt): FakeBackend.first_answer(r.agent, r.prompt) for r in fake.requests}
        assert sorted(first["answer"]) == sorted(expected.values())
        again = collect_answers(agents, math_items, {"local": fake}, store, seed=1, progress=False)
        assert len(fake.requests) == 24  # no new model call
        pd.testing.assert_frame_equal(first, again)
        assert store.counts()["answers"] == 24
        # what determines the output is in the key: another seed or max_tokens is a new call
        collect_answers(agents[:1], math_items, {"local": fake}, store, seed=2, progress=False)
        collect_answers(agents[:1], math_items, {"local": fake}, store, seed=1, max_tokens=9, progress=False)
        assert len(fake.requests) == 24 + 8 + 8


def test_backend_without_max_batch_gets_one_batch_and_abstentions_are_kept(tmp_path, math_items):
    cfg = make_config(tmp_path, agents=[("Ada", "math"), ("ABSTAINER", "math")])
    fake = FakeBackend(max_batch=None)
    with Store() as store:
        frame = collect_answers(list(cfg.agents), math_items, {"local": fake}, store, progress=False)
    assert fake.batches == [16]
    abstainer = frame[frame["agent"] == "ABSTAINER"]
    assert abstainer["answer"].isna().all() and (abstainer["status"] == "unparsed").all()
    assert (abstainer["raw"] == "I am not sure.").all()  # the raw reply is kept


def test_prompt_formats(tmp_path, math_items):
    cfg = config_from_dict({
        "backends": {"local": {"type": "llamacpp"}},
        "agents": [{"name": "Ada", "persona": "Ada is a mathematician."},
                   {"name": "Bot", "format": "chat", "persona": "You are a careful tutor."}],
    })
    item = math_items.iloc[0].to_dict()
    base = build_answer_request(cfg.agents.get("Ada"), item, max_tokens=8)
    assert base.prompt.startswith("Ada is a mathematician.\n") and base.prompt.endswith("\nAnswer:")
    assert "\nA. " in base.prompt and "\nD. " in base.prompt and base.max_tokens == 8
    assert "\n\n" in base.stop
    chat = build_answer_request(cfg.agents.get("Bot"), item)
    assert chat.prompt is None and chat.messages[0] == {"role": "system", "content": "You are a careful tutor."}
    assert 'as "Answer: X"' in chat.messages[-1]["content"]
    revised = build_answer_request(cfg.agents.get("Ada"), item, round=1, peers={"Bob": "C", "Eve": None},
                                   previous="B")
    assert "Other experts answered: Bob: C; Eve: no answer." in revised.prompt
    assert "Your previous answer: B." in revised.prompt and revised.seed != base.seed


def test_extract_reply_reads_the_continuation_of_answer():
    mc = {"kind": "multiple_choice", "choices": ["1", "2", "3", "4"]}
    assert extract_reply(" B. Because 2 is prime", mc) == "B"
    assert extract_reply("\n<b>D.</b> The mean", mc) == "D"
    assert extract_reply("The answer to this question is A. 18", mc) == "A"
    assert extract_reply("X.\nQ: If a rectangle has sides A and B", mc) is None  # only the first line counts
    assert extract_reply("", mc) is None and extract_reply(None, mc) is None
    assert extract_reply("He's now 1,032 years old.", {"kind": "number"}) == "1032"
    assert extract_reply("$\\frac{1}{2}$", {"kind": "math"}) == "\\frac{1}{2}"
    assert extract_reply("3.", {"kind": "math"}) == "3"
    assert extract_reply("I think it is big", {"kind": "math"}) is None
    assert extract_reply("Let me think.\nAnswer: C", mc, "chat") == "C"


# -- offline team scores ------------------------------------------------------------------------

def recount_majority(answers: pd.DataFrame, gold: pd.Series, team, seed):
    """Direct recount of the documented rule: most votes wins; a tie is the floor(u*n)-th sorted tied answer."""
    table = {(r.item_id, r.agent): r.answer for r in answers.itertuples()}
    correct = strict = 0
    for item_id, g in gold.items():
        votes = Counter(table.get((item_id, a)) for a in team)
        votes.pop(None, None)
        if not votes:
            continue
        top = max(votes.values())
        tied = sorted(a for a, c in votes.items() if c == top)
        pick = tied[int(item_rng(seed, item_id).random() * len(tied))]
        correct += pick == g
        strict += len(tied) == 1 and tied[0] == g
    return correct / len(gold), strict / len(gold)


def recount_weighted(answers, gold, team, seed, weights):
    """Weighted vote recount; ``weights`` are the fitted weights (0 = no better than chance)."""
    table = {(r.item_id, r.agent): r.answer for r in answers.itertuples()}
    correct = 0
    for item_id, g in gold.items():
        support, plain = Counter(), Counter()
        for a in team:
            if table.get((item_id, a)) is not None:
                support[table[(item_id, a)]] += weights[a]
                plain[table[(item_id, a)]] += 1
        if not support:
            continue
        top = max(support.values())
        tied = sorted(a for a, s in support.items() if s >= top - 1e-9)
        if top == 0:  # nobody beats chance: the zero-weight agents' plurality decides
            best = max(plain[a] for a in tied)
            tied = sorted(a for a in tied if plain[a] == best)
        elif len(tied) > 1:  # chance-level agents break ties among the tied answers
            extra = {a: sum(1 for m in team if table.get((item_id, m)) == a and weights[m] == 0) for a in tied}
            tied = sorted(a for a in tied if extra[a] == max(extra.values()))
        correct += tied[int(item_rng(seed, item_id).random() * len(tied))] == g
    return correct


def _scores(result, group, kind, team, protocol):
    s = result.scores
    row = s[(s["group"] == group) & (s["kind"] == kind) & (s["team"] == team) & (s["protocol"] == protocol)]
    assert len(row) == 1, (group, kind, team, protocol)
    return row.iloc[0]


def test_team_scores_computed_offline_equal_a_direct_recount(tmp_path):
    cfg = make_config(tmp_path)
    fake = FakeBackend()
    result = evaluate(cfg, TEAMS, backends={"local": fake}, store=tmp_path / "s.sqlite", progress=False)
    assert len(fake.requests) == 6 * 24  # 6 agents x (12 + 12) items, each answered once
    for group in ("mmlu_math", "medqa"):
        items = result.items[result.items["group"] == group]
        gold = items.set_index("item_id")["answer"]
        answers = result.answers[result.answers["group"] == group]
        assert answers["item_id"].nunique() == 12 and len(answers) == 72
        community = {r.team for r in result.scores.itertuples() if r.group == group and r.kind == "community"}
        expected = (["Ada+Euler+Noether", "Florence+Galen+Koch", "Ada+Euler+Galen+Koch", "Florence+Noether"]
                    if group == "mmlu_math" else ["Ada+Galen", "Euler+Florence+Koch+Noether",
                                                  "Ada+Euler+Galen+Koch", "Florence+Noether"])
        assert community == set(expected)  # the matching topic's teams plus those of "all"
        from teamgraph.evaluation.voting import fit_vote_weights, split_items

        halves = split_items(gold.index, 0.5, 0)
        folds = [(fit_vote_weights(answers, gold[halves[k]], AGENTS_ALL, n_choices=4 if group == "mmlu_math" else 5),
                  halves[1 - k]) for k in (0, 1)]
        assert [f["scores_items"] for f in result.weights[group]] == [6, 6]
        for kind, team in [("community", t) for t in expected] + [("curated", "Ada+Euler+Noether"),
                                                                  ("curated", "Florence+Galen+Koch"),
                                                                  ("roster", "all agents")]:
            members = sorted(AGENTS_ALL) if team == "all agents" else team.split("+")
            acc, strict = recount_majority(answers, gold, members, seed=0)
            row = _scores(result, group, kind, team, "majority")
            assert row["accuracy"] == pytest.approx(acc) and row["strict_accuracy"] == pytest.approx(strict)
            assert row["n_items"] == 12
            oracle = np.mean([any(a == g for a in answers[(answers.item_id == i) & answers.agent.isin(members)].answer)
                              for i, g in gold.items()])
            assert _scores(result, group, kind, team, "oracle")["accuracy"] == pytest.approx(oracle)
            weighted = _scores(result, group, kind, team, "weighted")
            assert weighted["n_items"] == 12  # every item, scored with weights fitted on the other half
            hits = sum(recount_weighted(answers, gold[held], members, 0, w) for w, held in folds)
            assert weighted["accuracy"] == pytest.approx(hits / 12)
        # best single agent, and random teams of each size that a community or curated team has
        per_agent = {a: np.mean([(answers[(answers.item_id == i) & (answers.agent == a)].answer == g).any()
                                 for i, g in gold.items()]) for a in AGENTS_ALL}
        single = result.scores[(result.scores.group == group) & (result.scores.kind == "single")].iloc[0]
        assert single["accuracy"] == pytest.approx(max(per_agent.values()))
        assert per_agent[single["team"]] == max(per_agent.values())
        for size in (2, 3, 4):
            row = _scores(result, group, "random", f"random size {size}", "majority")
            mean, std, draws = random_team_scores(answers, gold, AGENTS_ALL, size, n_draws=50, seed=0)
            assert row["accuracy"] == pytest.approx(mean) and row["accuracy_std"] == pytest.approx(std)
            assert row["n_draws"] == 50
    assert not (result.scores["protocol"] == "debate").any()  # debate is off by default


AGENTS_ALL = [a for a, _ in AGENTS]


def test_a_second_evaluate_makes_no_model_call_and_writes_the_report(tmp_path):
    cfg = make_config(tmp_path)
    fake = FakeBackend()
    first = evaluate(cfg, TEAMS, backends={"local": fake}, store=tmp_path / "s.sqlite", progress=False,
                     out_dir=tmp_path / "eval", protocols=("majority", "weighted", "oracle", "debate"))
    n_calls = len(fake.requests)
    counts = Store(tmp_path / "s.sqlite").counts()["answers"]
    second = evaluate(cfg, TEAMS, backends={"local": fake}, store=tmp_path / "s.sqlite", progress=False,
                      out_dir=tmp_path / "eval2", protocols=("majority", "weighted", "oracle", "debate"))
    assert len(fake.requests) == n_calls and Store(tmp_path / "s.sqlite").counts()["answers"] == counts
    pd.testing.assert_frame_equal(first.scores, second.scores)
    names = {p.name for p in first.files}
    assert {"scores.csv", "summary.csv", "summary.md", "answers.csv", "debate.csv", "accuracy.png",
            "evaluation.json", "single_agents.csv"} <= names
    assert (tmp_path / "eval" / "accuracy.png").stat().st_size > 5000
    md = (tmp_path / "eval" / "summary.md").read_text()
    assert "| group | kind | team |" in md and "Ada+Euler+Noether" in md and "±" in md
    csv = pd.read_csv(tmp_path / "eval" / "scores.csv")
    assert set(csv["kind"]) == {"community", "random", "curated", "single", "roster"}
    assert (tmp_path / "eval" / "scores.csv").read_bytes() == (tmp_path / "eval2" / "scores.csv").read_bytes()


def test_weighted_vote_learns_on_one_half_and_gives_chance_agents_no_say(tmp_path):
    cfg = make_config(tmp_path, benchmarks=["mmlu_math"], n_items=20)
    result = evaluate(cfg, TEAMS, backends={"local": FakeBackend()}, store=":memory:", progress=False)
    folds = result.weights["mmlu_math"]
    assert [f["scores_items"] for f in folds] == [10, 10]
    for fold in folds:
        assert set(fold["weights"]) == set(AGENTS_ALL) and all(v > 0 for v in fold["weights"].values())


def test_weighted_vote_of_chance_level_agents_is_the_majority_vote():
    """Agents fitted at weight 0 keep the floor weight: they vote as a plurality, ties as majority does."""
    from teamgraph.evaluation.runner import _GroupScorer

    rng = np.random.default_rng(7)
    agents = ["a", "b", "c", "d"]
    items = [f"i{k}" for k in range(200)]
    answers = pd.DataFrame([(i, a, rng.choice(["A", "B", "C", None])) for i in items for a in agents],
                           columns=["item_id", "agent", "answer"])
    gold = pd.Series(rng.choice(list("ABC"), size=len(items)), index=items)
    floor = {a: WEIGHT_FLOOR for a in agents}
    score = _GroupScorer(answers, gold, [(floor, items)], seed=3)
    for team in (["a", "b"], ["a", "b", "c"], agents):
        majority, weighted = score(team, "majority"), score(team, "weighted")
        assert majority["n_ties"] > 0
        assert weighted["accuracy"] == majority["accuracy"] and weighted["n_ties"] == majority["n_ties"]
    # one agent above chance outvotes any number of chance-level ones (on the items it answers)
    answered = sorted(answers.loc[(answers.agent == "a") & answers.answer.notna(), "item_id"])
    score = _GroupScorer(answers, gold[answered], [({**floor, "a": 0.5}, answered)], seed=3)
    assert score(agents, "weighted")["accuracy"] == score(["a"], "majority")["accuracy"]


def test_bad_inputs_raise_before_any_model_call(tmp_path):
    cfg = make_config(tmp_path)
    fake = FakeBackend()
    cases = [
        (dict(benchmarks=["mmlu_cooking"]), "unknown benchmark"),
        (dict(n_items=0), "n_items must be >= 1"),
        (dict(n_items=10**6), "only"),
        (dict(protocols=["plurality"]), "unknown protocol"),
        (dict(teams={"all": [["Ada", "Zeno"]]}), "not in the roster: Zeno"),
    ]
    for kwargs, message in cases:
        teams = kwargs.pop("teams", TEAMS)
        with pytest.raises(InputError, match=message):
            evaluate(cfg, teams, backends={"local": fake}, store=":memory:", progress=False, **kwargs)
    assert fake.requests == []


def test_topics_for_group_and_load_teams(tmp_path):
    assert topics_for_group("gsm8k", ["general", "mathematics", "medicine", "all"]) == ["mathematics", "all"]
    assert topics_for_group("medqa", ["general", "Medical ethics", "all"]) == ["Medical ethics", "all"]
    assert topics_for_group("mmlu_math", ["cooking"]) == ["cooking"]
    (tmp_path / "teams_mathematics.json").write_text(
        '{"topic": "mathematics", "teams": [{"members": ["Ada", "Euler"]}], "isolates": ["Koch"]}')
    assert load_teams(tmp_path) == {"mathematics": [["Ada", "Euler"]]}
    with pytest.raises(InputError, match="no such file or folder"):
        load_teams(tmp_path / "nothing_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no teams_"):
        load_teams(tmp_path / "empty")


# -- debate -------------------------------------------------------------------------------------

def test_debate_members_see_the_others_answers_and_the_team_answer_is_the_last_majority(tmp_path, math_items):
    cfg = make_config(tmp_path)
    team = [cfg.agents.get(n) for n in ("Ada", "Euler", "Galen")]
    fake = FakeBackend(max_batch=4)
    gold = math_items.set_index("item_id")["answer"]
    with Store(tmp_path / "s.sqlite") as store:
        first = collect_answers(team, math_items, {"local": fake}, store, progress=False)
        n_first = len(fake.requests)
        deb = run_debates({"T": team}, math_items, {"local": fake}, store, rounds=2, progress=False)
        assert len(fake.requests) == n_first + 2 * 3 * 8  # round 0 is the cached independent answer
        assert sorted(deb["round"].unique()) == [0, 1, 2] and len(deb) == 3 * 3 * 8
        round0 = deb[deb["round"] == 0].drop(columns="team").reset_index(drop=True)
        pd.testing.assert_frame_equal(round0, first)
        # round r: each member copies the others' most common round r-1 answer (the fake's rule)
        for r in (1, 2):
            prev = {(x.item_id, x.agent): x.answer for x in deb[deb["round"] == r - 1].itertuples()}
            for x in deb[deb["round"] == r].itertuples():
                others = Counter(prev[(x.item_id, m.name)] for m in team if m.name != x.agent)
                top = max(others.values())
                assert x.answer == sorted(a for a, c in others.items() if c == top)[0]
        revised = [r for r in fake.requests[n_first:] if "Other experts answered" in r.prompt]
        assert len(revised) == 48 and all("Your previous answer:" in r.prompt for r in revised)
        assert store.counts()["answers"] == 3 * 8 * 3
        rounds = {row[0] for row in store._db.execute("SELECT DISTINCT round FROM answers")}
        assert rounds == {0, 1, 2}
        # the team's answer is the majority of the last round
        last = deb[deb["round"] == 2]
        acc, strict = recount_majority(last, gold, ["Ada", "Euler", "Galen"], seed=0)
        got = debate_scores(deb, gold, "T", seed=0)
        assert got["accuracy"] == pytest.approx(acc) and got["strict_accuracy"] == pytest.approx(strict)
        # cached: debating again costs nothing
        n = len(fake.requests)
        again = run_debates({"T": team}, math_items, {"local": fake}, store, rounds=2, progress=False)
        assert len(fake.requests) == n
        pd.testing.assert_frame_equal(again, deb)
    with pytest.raises(InputError, match="at least 2 members"):
        run_debates({"solo": team[:1]}, math_items, {"local": fake}, Store(), progress=False)


def test_chat_members_debate_with_messages(tmp_path, math_items):
    cfg = config_from_dict({"backends": {"local": {"type": "llamacpp"}},
                            "agents": [{"name": "A", "format": "chat"}, {"name": "B", "format": "chat"}]})
    fake = FakeBackend()
    deb = run_debates({"AB": list(cfg.agents)}, math_items.head(3), {"local": fake}, Store(), rounds=1,
                      progress=False)
    later = [r for r in fake.requests if len(r.messages) == 4]
    assert len(later) == 6 and later[0].messages[2]["role"] == "assistant"
    assert "other team members" in later[0].messages[3]["content"]
    assert deb[deb["round"] == 1]["answer"].notna().all()


def test_evaluate_debates_community_and_curated_teams_only(tmp_path):
    cfg = make_config(tmp_path, benchmarks=["mmlu_math"], n_items=6)
    fake = FakeBackend()
    result = evaluate(cfg, {"all": [["Ada", "Euler"], ["Galen", "Koch"]]}, backends={"local": fake},
                      store=":memory:", protocols=("majority", "debate"), debate_rounds=1, progress=False)
    debated = result.scores[result.scores["protocol"] == "debate"]
    assert set(zip(debated["kind"], debated["team"])) == {
        ("community", "Ada+Euler"), ("community", "Galen+Koch"),
        ("curated", "Ada+Euler+Noether"), ("curated", "Florence+Galen+Koch")}
    # 6 agents x 6 items first, then (2 + 2 + 3 + 3) members x 6 items in one debate round
    assert len(fake.requests) == 36 + 10 * 6
    summary = result.summary()
    assert list(summary.columns[:7]) == ["group", "kind", "team", "size", "n", "majority", "strict"]
    assert "debate" in summary.columns


# -- CLI ----------------------------------------------------------------------------------------

TINY = """
name: tiny-eval
output: {out}
backends:
  local: {{type: llamacpp, n_ctx: 1024}}
defaults:
  backend: local
  model: gemma-3-270m
  format: transcript
  sampling: {{max_tokens: 12, temperature: 0.8, top_p: 0.95, repeat_penalty: 1.3}}
agents:
  - {{name: Ada, persona: "Ada is a mathematician.", labels: [math]}}
  - {{name: Euler, persona: "Euler is a mathematician.", labels: [math]}}
  - {{name: Galen, persona: "Galen is a physician.", labels: [medical]}}
topics: [mathematics]
conversation: {{turns: 2, seed: 0}}
scoring: {{metric: echo_discounted_cosine, device: cpu}}
communities: {{n_seeds: 3}}
evaluation: {{benchmarks: [mmlu_math], n_items: 2, seed: 0, max_tokens: 6, random_draws: 20}}
"""


def write_tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY.format(out=tmp_path / "run")))
    return path


@pytest.mark.parametrize("args, message", [
    (["--benchmarks", "mmlu_cooking"], "unknown benchmark(s) mmlu_cooking"),
    (["--n-items", "0"], "--n-items must be >= 1"),
    (["--protocols", "plurality"], "unknown protocol(s) plurality"),
    (["--debate-rounds", "-1"], "--debate-rounds must be >= 0, got -1"),
    (["--teams-from", "nowhere"], "--teams-from nowhere: no such file or folder"),
    (["--n-items", "many"], "invalid int value"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code = main(["evaluate", str(write_tiny(tmp_path)), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_missing_config_exits_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_with_teams_from_prints_the_table(tmp_path, monkeypatch, capsys):
    fake = FakeBackend()
    monkeypatch.setattr("teamgraph.pipeline.open_backends", lambda config: {"local": fake})
    teams_dir = tmp_path / "teams"
    teams_dir.mkdir()
    (teams_dir / "teams_all.json").write_text('{"topic": "all", "teams": [{"members": ["Ada", "Euler"]}]}')
    code = main(["evaluate", str(write_tiny(tmp_path)), "--teams-from", str(teams_dir), "--out",
                 str(tmp_path / "eval"), "--n-items", "5", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Ada+Euler" in out and "random size 2" in out and "best single" in out and "all agents" in out
    assert len(fake.requests) == 3 * 5
    assert (tmp_path / "eval" / "summary.md").exists() and (tmp_path / "eval" / "accuracy.png").exists()


# -- the real packaged model ----------------------------------------------------------------------

@pytest.mark.slow
def test_real_model_end_to_end_through_teamgraph_evaluate(tmp_path, monkeypatch, capsys):
    """3 agents on Gemma 3 270M: conversations, teams, answers and one debate round on real MMLU items."""
    config = write_tiny(tmp_path)
    argv = ["evaluate", str(config), "--out", str(tmp_path / "eval"), "--quiet",
            "--protocols", "majority", "weighted", "oracle", "debate"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "mmlu_math" in first and "best single" in first and "all agents" in first
    answers = pd.read_csv(tmp_path / "eval" / "answers.csv")
    assert len(answers) == 3 * 2 and set(answers["agent"]) == {"Ada", "Euler", "Galen"}
    assert answers["status"].isin(["ok", "unparsed", "empty", "error"]).all()
    assert (answers["status"] != "error").all()
    scores = pd.read_csv(tmp_path / "eval" / "scores.csv")
    assert scores["accuracy"].between(0, 1).all() and (scores["n_items"] > 0).all()
    assert (scores["protocol"] == "debate").any()  # the curated math team (Ada+Euler) at least
    # everything is in the store now: a second run must not call the model at all
    from teamgraph.backends.llamacpp import LlamaCppBackend

    def no_calls(self, requests):
        raise AssertionError("a model call on a fully cached evaluation")

    monkeypatch.setattr(LlamaCppBackend, "generate", no_calls)
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert second.split("wrote")[0] == first.split("wrote")[0]
    assert load_config(config).evaluation.n_items == 2


def test_the_report_draws_the_one_evaluation_chart(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from teamgraph import viz
    from teamgraph.evaluation import EvaluationResult, chance_levels, plot_accuracy

    scores = pd.DataFrame([
        {"group": "mmlu_math", "kind": "community", "team": "Ada+Euler", "source": "mathematics",
         "protocol": "majority", "accuracy": 0.5, "accuracy_std": np.nan},
        {"group": "mmlu_math", "kind": "single", "team": "Ada", "source": "best of 2", "protocol": "single",
         "accuracy": 0.4, "accuracy_std": np.nan},
        {"group": "gsm8k", "kind": "community", "team": "Ada+Euler", "source": "mathematics",
         "protocol": "majority", "accuracy": 0.2, "accuracy_std": np.nan},
    ])
    items = pd.DataFrame({"group": ["mmlu_math", "mmlu_math", "gsm8k"],
                          "kind": ["multiple_choice", "multiple_choice", "free_form"],
                          "choices": [list("ABCD"), list("ABCDE"), []]})
    assert chance_levels(items) == {"mmlu_math": pytest.approx((1 / 4 + 1 / 5) / 2)}
    drawn = []
    real = viz.plot_evaluation
    monkeypatch.setattr(viz, "plot_evaluation", lambda table, **kw: drawn.append(kw) or real(table, **kw))
    result = EvaluationResult(scores, pd.DataFrame(), items, pd.DataFrame(), pd.DataFrame(), {}, {})
    path = plot_accuracy(result, tmp_path / "accuracy.png")
    assert path == tmp_path / "accuracy.png" and path.stat().st_size > 5000
    assert drawn == [{"protocols": None, "chance": chance_levels(items)}]


def test_runner_and_report_import_one_way_each_alone():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import teamgraph.evaluation as ev

    folder = Path(ev.__file__).parent

    def imports(name):
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "teamgraph.evaluation.report" in imports("runner")
    assert not {"teamgraph.evaluation.runner", "teamgraph.evaluation.report"} & imports("result")
    assert "teamgraph.evaluation.runner" not in imports("report")
    for module in ("teamgraph.evaluation.report", "teamgraph.evaluation.result", "teamgraph.evaluation.runner"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)
    for name in ("EvaluationResult", "summary_table", "markdown_table", "plot_accuracy", "write_report", "evaluate"):
        assert name in ev.__all__ and hasattr(ev, name)
