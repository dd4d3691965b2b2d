"""What an evaluation produced, and its summary table: shared by the runner (which builds it) and
the report (which writes it), so neither imports the other's module in a circle."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["EvaluationResult", "summary_table", "markdown_table"]


@dataclass
class EvaluationResult:
    """What an evaluation produced; ``scores`` is tidy: one row per (group, team, protocol)."""

    scores: pd.DataFrame
    answers: pd.DataFrame
    items: pd.DataFrame
    single: pd.DataFrame
    debates: pd.DataFrame
    weights: dict[str, list[dict[str, Any]]]  # per group: the weighted vote's two folds
    settings: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per (group, team or baseline), one column per protocol, formatted for reading."""
        return summary_table(self.scores)


def _fmt(value: float, std: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if std is not None and not math.isnan(std):
        return f"{value:.3f} ± {std:.3f}"
    return f"{value:.3f}"


def _label(kind: str, team: str, source: str) -> str:
    if kind == "curated":
        return f"curated {source}: {team}"
    if kind == "single":
        return f"best single: {team}"
    return team


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, team or baseline) in the scores' order; a column per protocol (strings).

    ``strict`` is the majority vote where a tie counts as wrong; ``weighted`` uses vote weights
    cross-fitted on the other half of the items; random teams show mean ± std over their draws.
    """
    protocols = [p for p in ("majority", "weighted", "debate", "oracle") if p in set(scores["protocol"])]
    out = []
    for (group, kind, team), rows in scores.groupby(["group", "kind", "team"], sort=False):
        by = {r.protocol: r for r in rows.itertuples(index=False)}
        first = rows.iloc[0]
        row: dict[str, Any] = {"group": group, "kind": kind, "team": _label(kind, team, first["source"]),
                               "size": int(first["size"])}
        main = by.get("majority") or by.get("single")
        row["n"] = int(main.n_items) if main is not None else int(first["n_items"])
        for p in protocols:
            r = by.get(p) or (by.get("single") if p == "majority" else None)
            row[p] = _fmt(r.accuracy, r.accuracy_std if kind == "random" else None) if r is not None else ""
            if p == "majority":
                row["strict"] = _fmt(r.strict_accuracy) if r is not None else ""
        out.append(row)
    frame = pd.DataFrame(out)
    order = ["group", "kind", "team", "size", "n"] + [c for p in protocols
                                                       for c in ([p, "strict"] if p == "majority" else [p])]
    frame = frame[order].astype(object)
    return frame.where(frame.notna(), "")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (every cell as text)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(map(cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
