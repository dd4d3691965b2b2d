"""Likelihood scoring on the real packaged models: hand computation from logits, agreement with generation."""
import numpy as np
import pytest

from teamgraph.backends.base import GenerationRequest, ScoreRequest
from teamgraph.evaluation import load_benchmark
from teamgraph.evaluation.answers import collect_answers
from teamgraph.evaluation.likelihood import best_option, likelihood_prompt
from teamgraph.models import model_path
from teamgraph.roster import Agent, Roster
from teamgraph.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend():
    from teamgraph.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(n_threads=2, n_ctx=1024)
    yield b
    b.close()


@pytest.fixture(scope="module")
def arc_items():
    return load_benchmark("arc_easy", n_items=6, seed=11).to_dict("records")


@pytest.mark.parametrize("model", ["gemma-3-270m", "smollm2-135m-instruct"])
def test_option_logprobs_equal_a_hand_computation_from_the_full_logits(model, backend):
    from llama_cpp import Llama

    prompt = "Question: What is 2 + 3?\nA. 4\nB. 5\nC. 6\nAnswer:"
    [mine] = backend.option_logprobs([ScoreRequest("t", model, prompt, ("A", "B", "C"))])
    # By hand: every position's logits (logits_all=True), the last row, log-softmax in numpy.
    llm = Llama(model_path=str(model_path(model)), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        llm.eval(tokens)
        last = np.array(llm.scores[len(tokens) - 1], dtype=np.float64)
        log_p = last - (last.max() + np.log(np.exp(last - last.max()).sum()))
        by_hand = {opt: float(log_p[llm.tokenize(f" {opt}".encode(), add_bos=False, special=False)[0]])
                   for opt in "ABC"}
    finally:
        llm.close()
    assert set(mine) == {"A", "B", "C"}
    for opt in "ABC":
        assert mine[opt] == pytest.approx(by_hand[opt], abs=2e-3), (opt, mine, by_hand)
    assert all(v < 0 for v in mine.values()) and sum(np.exp(list(mine.values()))) <= 1.0 + 1e-6


def test_likelihood_picks_the_letter_that_greedy_generation_gives_where_it_gives_a_letter(backend, arc_items):
    # Qwen answers these items with a letter first; SmolLM2 (0 of 6) and Gemma (1 of 6) start with prose,
    # leaving nothing to compare. Where greedy decoding's first token is a letter, it is the argmax over
    # the whole vocabulary, hence over the letters: likelihood scoring must pick it.
    model = "qwen2.5-coder-0.5b-instruct"
    agent = Agent("Ada", model=model, persona="You are Ada, a scientist.", format="chat")
    both = 0
    for item in arc_items:
        prompt = likelihood_prompt(agent, item)
        letters = tuple("ABCDE"[: len(item["choices"])])
        [lp] = backend.option_logprobs([ScoreRequest("Ada", model, prompt, letters)])
        [gen] = backend.generate([GenerationRequest(agent="Ada", model=model, prompt=prompt, max_tokens=1,
                                                    temperature=0.0, seed=0)])
        if gen.text.strip() in letters:
            both += 1
            assert best_option(lp) == gen.text.strip(), (item["item_id"], lp, gen.text)
    assert both >= 3  # the comparison ran on most items, not on none


def test_collect_answers_auto_records_the_mode_and_reuses_the_store(backend, arc_items, tmp_path):
    import pandas as pd

    agents = Roster([Agent("Ada", model="smollm2-135m-instruct", format="chat"),
                     Agent("Bob", model="gemma-3-270m", format="transcript")])
    items = pd.DataFrame(arc_items[:3])
    with Store(tmp_path / "s.sqlite") as store:
        first = collect_answers(list(agents), items, {"local": backend}, store, scoring="auto", progress=False)
        n = store.counts()["answers"]
        again = collect_answers(list(agents), items, {"local": backend}, store, scoring="auto", progress=False)
        assert store.counts()["answers"] == n == 6
    assert set(first["mode"]) == {"likelihood"} and first["answer"].notna().all()
    assert first.sort_values(["agent", "item_id"])["answer"].tolist() == again.sort_values(["agent", "item_id"])["answer"].tolist()


def test_cloze_option_logprobs_equal_a_hand_computation_from_every_position(backend, arc_items):
    """Each option's log-likelihood after the prompt, against all positions' logits (logits_all=True) by hand."""
    from llama_cpp import Llama

    model = "smollm2-135m-instruct"
    item = arc_items[0]
    prompt = f"Question: {item['question']}\nAnswer:"
    mine = backend.continuation_logprobs("t", model, prompt, item["choices"])
    ref = Llama(model_path=str(model_path(model)), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    try:
        p_tokens = ref.tokenize(prompt.encode(), add_bos=True, special=False)
        for (total, n), choice in zip(mine, item["choices"]):
            c_tokens = ref.tokenize(f" {choice.strip()}".encode(), add_bos=False, special=False)
            ref.reset()
            ref.eval(p_tokens + c_tokens)
            scores = np.array(ref.scores[: len(p_tokens) + len(c_tokens)], dtype=np.float64)
            by_hand = 0.0
            for i, tok in enumerate(c_tokens):
                row = scores[len(p_tokens) - 1 + i]
                by_hand += row[tok] - (row.max() + np.log(np.exp(row - row.max()).sum()))
            assert n == len(c_tokens) and total == pytest.approx(by_hand, abs=5e-3), (choice, total, by_hand)
    finally:
        ref.close()
    # The prompt's KV cache is left alone: scoring again gives the same numbers.
    again = backend.continuation_logprobs("t", model, prompt, item["choices"])
    assert [n for _, n in again] == [n for _, n in mine]
    assert [t for t, _ in again] == pytest.approx([t for t, _ in mine])
