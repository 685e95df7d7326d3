"""One task's tuning: how the best value improved over the trials, whether the search
settled inside its ranges, and which hyperparameters mattered (Optuna's importances)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.range_edge import EDGE_MIN_TRIALS, EDGE_SHARE
from bench.report import analysis as an
from bench.report import heatmaps, plots
from bench.report import leaderboard as lb
from bench.report.formatting import t_label, where
from bench.report.html import Note, Table
from bench.report.task.view import TaskView

Importances = Mapping[str, dict[str, float] | str]


def tuning(view: TaskView, importances: Importances | None, storage_note: str) -> list[Any]:
    """Best value so far against trials at the longest T, and the importances."""
    trials = view.runs[view.runs["role"] == "trial"]
    trials = lb.at_seq_len(trials, view.longest) if pd.notna(view.longest) else trials
    frame = an.best_so_far(trials)
    blocks: list[Any] = []
    budget = lb.expected_counts(view.results.config)["trials"]
    if frame["best"].notna().any():
        blocks.append(view.figure(
            "best-so-far", "Best value so far against trials", plots.best_so_far(frame),
            f"Per configuration{where(view.longest)} (panel: model; line style: clipping "
            f"remedy, marker: regularization remedy), "
            f"the lowest final validation loss among its tuning trials up to that trial "
            f"(complete trials only: pruned and diverged trials set no value, so a line "
            f"starts at its first complete trial). Grey band: the last third of the "
            f"trials. A line still falling in it means the budget ({budget or '?'} trials) "
            f"was too small to converge (the table below says so per configuration).",
            frame, list(trials["run_id"])))
    else:
        blocks.append(Note("No complete tuning trial yet: no best-so-far curve.", "warn"))
    blocks.append(search(view))
    blocks += _importance(view, importances, storage_note)
    return blocks


def search(view: TaskView) -> Table:
    """Per configuration (every T): whether the last third of its trials still improved the
    best (``analysis.last_third``) and whether the best lies at the edge of a log-scale
    range (``bench.range_edge``, as ``gradbench status`` says it)."""
    late = an.last_third(an.best_so_far(view.runs[view.runs["role"] == "trial"]))
    late = late.set_index("configuration")
    tuning = view.results.config.get("tuning") or {}
    rows = []
    for _, r in view.board.iterrows():
        c = r["configuration"]
        rows.append([t_label(r["seq_len"]), str(r["model"]), str(r["remedy"]),
                     str(r["complete"]),
                     str(late.loc[c, "last_third"]) if c in late.index else "no trial",
                     str(r.get("range_edge") or "-")])
    return Table(
        "Did the search settle, inside its ranges?",
        ["T", "model", "remedy", "complete trials", "last third of the trials",
         "best in its range"], rows, model_column=1, wrap=True, keys=3,
        caption=f"Sampler: {tuning.get('sampler', '?')}, {tuning.get('trials', '?')} trials "
                f"per configuration. last third: whether a trial among the last third "
                f"(by trial number, the last n // 3 of the n trials the budget counts: "
                f"complete, pruned, diverged; a pruned or diverged trial sets no value) "
                f"set a better validation value than all before it: 'improved' says more "
                f"trials may well find better parameters. best in its range: with at least "
                f"{EDGE_MIN_TRIALS} complete trials, whether the best trial's value of a "
                f"log-scale parameter lies in the outer {EDGE_SHARE:.0%} of its range at "
                f"either end (in log space): 'at the edge: widen the range' means the "
                f"optimum may lie outside it, so the configuration's result is partly the "
                f"range's; '-': no log-scale range tuned, or tuning not done.")


def _importance(view: TaskView, importances: Importances | None, storage_note: str) -> list[Any]:
    """The importance heat map of the configurations at the longest T (or why not)."""
    if importances is None:
        reason = storage_note or "the Optuna storage is not reachable"
        return [Note(f"Hyperparameter importance not shown: {reason}.", "warn")]
    # importances come from a storage, which has loaded Optuna by now; a report without one
    # (and ``import bench.report``) never does (see ``build.suite_importances``)
    from bench.tuning import IMPORTANCE_EVALUATOR, IMPORTANCE_MIN_TRIALS

    mine = {c: v for c, v in importances.items()
            if c in set(lb.at_seq_len(view.board, view.longest)["configuration"])}
    table, notes = an.importance_table(mine, view.board)
    blocks: list[Any] = []
    if len(table):
        blocks.append(view.figure(
            "importance", "Hyperparameter importance", heatmaps.importance_heatmap(table),
            f"Share of the difference between the best tuning trials and the rest that "
            f"each hyperparameter explains, per configuration{where(view.longest)}; rows "
            f"sum to 1. Evaluator: {IMPORTANCE_EVALUATOR}, Optuna 5's default (not "
            f"fANOVA), only where a configuration has at least {IMPORTANCE_MIN_TRIALS} "
            f"complete trials (its top 10% is then two trials: still rough); grey: the "
            f"hyperparameter is not tuned there.",
            table.rename_axis("configuration").reset_index(),
            configurations=list(mine)))
    if notes:
        reasons = "; ".join(f"{c}: {r}" for c, r in sorted(notes.items()))
        blocks.append(Note(f"No importance for {len(notes)} configuration(s) ({reasons}).",
                           "info"))
    return blocks
