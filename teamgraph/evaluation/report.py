"""Evaluation report: a readable summary table, its Markdown, CSV files and a bar chart."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from teamgraph.evaluation.runner import EvaluationResult

_BAR_PROTOCOLS = ("majority", "weighted", "debate")
_COLORS = {"majority": "#4C72B0", "weighted": "#DD8452", "debate": "#55A868"}


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


def plot_accuracy(result: "EvaluationResult", path: str | Path) -> Path:
    """Bar chart, one panel per benchmark group: accuracy per team and baseline and protocol.

    Random teams carry error bars (std over draws); a black tick marks each team's oracle; the dashed
    line is chance for multiple-choice groups.
    """
    import matplotlib.pyplot as plt  # no matplotlib.use(): that would switch off inline figures in notebooks

    scores = result.scores
    groups = list(dict.fromkeys(scores["group"]))
    protocols = [p for p in _BAR_PROTOCOLS if p in set(scores["protocol"])]
    entries = {g: list(dict.fromkeys(scores.loc[scores["group"] == g, ["kind", "team", "source"]]
                                     .itertuples(index=False, name=None))) for g in groups}
    widest = max(len(v) for v in entries.values())
    fig, axes = plt.subplots(len(groups), 1, figsize=(max(6.0, 0.9 * widest * max(1, len(protocols)) / 1.5), 3.6 * len(groups)),
                             squeeze=False)
    width = 0.8 / max(1, len(protocols))
    for ax, group in zip(axes[:, 0], groups):
        g = scores[scores["group"] == group]
        for i, (kind, team, source) in enumerate(entries[group]):
            rows = g[(g["kind"] == kind) & (g["team"] == team)]
            by = {r.protocol: r for r in rows.itertuples(index=False)}
            for j, p in enumerate(protocols):
                r = by.get(p) or (by.get("single") if p == "majority" else None)
                if r is None:
                    continue
                err = r.accuracy_std if kind == "random" and not math.isnan(r.accuracy_std) else None
                ax.bar(i + (j - (len(protocols) - 1) / 2) * width, r.accuracy, width, color=_COLORS[p],
                       yerr=err, capsize=3, label=p if i == 0 or (kind == "single" and p == "majority") else None)
            if "oracle" in by:
                ax.plot([i - 0.4, i + 0.4], [by["oracle"].accuracy] * 2, color="black", lw=1.2,
                        label="oracle" if i == 0 else None)
        items = result.items[result.items["group"] == group]
        if len(items) and items["kind"].eq("multiple_choice").all():
            chance = float((1.0 / items["choices"].map(len)).mean())
            ax.axhline(chance, ls="--", color="grey", lw=1, label="chance")
        ax.set_xticks(range(len(entries[group])))
        ax.set_xticklabels([_label(k, t, s) for k, t, s in entries[group]], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        n = int(g.loc[g["protocol"] == "single", "n_items"].max()) if (g["protocol"] == "single").any() else len(items)
        ax.set_title(f"{group} ({n} items)", fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(result: "EvaluationResult", out_dir: str | Path) -> list[Path]:
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
