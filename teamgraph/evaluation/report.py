"""Evaluation report: a readable summary table, its Markdown, CSV files and a bar chart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from teamgraph.evaluation.result import EvaluationResult, markdown_table, summary_table


def chance_levels(items: pd.DataFrame) -> dict[str, float]:
    """Chance accuracy of each multiple-choice benchmark group of ``items`` (mean of 1 / choices)."""
    out = {}
    for group, rows in items.groupby("group", sort=False):
        if len(rows) and rows["kind"].eq("multiple_choice").all():
            out[str(group)] = float((1.0 / rows["choices"].map(len)).mean())
    return out


def plot_accuracy(result: EvaluationResult, path: str | Path, protocols: Sequence[str] | None = None) -> Path:
    """Save the evaluation chart of ``result`` (:func:`teamgraph.viz.plot_evaluation`) as ``path``.

    One block of bars per benchmark group: each team's and baseline's majority accuracy (or the
    rows of ``protocols``), random teams with the std over their draws as error bars, the best
    single agent, and a dashed chance line for multiple-choice groups.
    """
    from teamgraph.viz import plot_evaluation, save_figure  # matplotlib only when drawing

    path = Path(path)
    ax = plot_evaluation(result.scores, protocols=protocols, chance=chance_levels(result.items))
    fmt = path.suffix.lstrip(".").lower() or "png"
    return save_figure(ax.figure, path, formats=(fmt,))[0]


def write_report(result: EvaluationResult, out_dir: str | Path) -> list[Path]:
    """Write scores.csv (tidy), summary.csv and summary.md, answers.csv, single_agents.csv,
    debate.csv (when debated), evaluation.json (settings, vote weights, timings) and accuracy.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    summary = result.summary()

    def save_csv(frame: pd.DataFrame, name: str) -> None:
        frame.to_csv(out / name, index=False)
        files.append(out / name)

    save_csv(result.scores, "scores.csv")
    save_csv(summary, "summary.csv")
    md = out / "summary.md"
    md.write_text(f"# Team evaluation: {result.settings.get('run', '')}\n\n" + markdown_table(summary)
                  + "\nmajority: ties broken by a seeded draw; strict: a tie counts as wrong; weighted: vote weights "
                    "fitted on the other half of the items (2-fold cross-fitting; chance-level agents only break "
                    "ties); oracle: any member correct; random: mean ± std over "
                    f"{result.settings.get('random_draws')} draws.\n", encoding="utf-8")
    files.append(md)
    save_csv(result.answers, "answers.csv")
    save_csv(result.single, "single_agents.csv")
    if len(result.debates):
        save_csv(result.debates, "debate.csv")
    meta = out / "evaluation.json"
    meta.write_text(json.dumps({"settings": result.settings, "weights": result.weights,
                                "timings": {k: round(v, 3) for k, v in result.timings.items()}},
                               indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files.append(meta)
    files.append(plot_accuracy(result, out / "accuracy.png"))
    return files


__all__ = ["EvaluationResult", "chance_levels", "markdown_table", "plot_accuracy", "summary_table", "write_report"]
