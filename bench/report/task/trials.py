"""One task's tuning: how the best value improved over the trials, and which
hyperparameters mattered (Optuna's importances)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.report import analysis as an
from bench.report import leaderboard as lb
from bench.report import plots
from bench.report.formatting import where
from bench.report.html import Note
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
            f"starts at its first complete trial). A line still falling at the last trial "
            f"means the budget ({budget or '?'} trials) was too small to converge.",
            frame, list(trials["run_id"])))
    else:
        blocks.append(Note("No complete tuning trial yet: no best-so-far curve.", "warn"))
    blocks += _importance(view, importances, storage_note)
    return blocks


def _importance(view: TaskView, importances: Importances | None, storage_note: str) -> list[Any]:
    """The importance heat map of the configurations at the longest T (or why not)."""
    if importances is None:
        reason = storage_note or "the Optuna storage is not reachable"
        return [Note(f"Hyperparameter importance not shown: {reason}.", "warn")]
    # importances come from a storage, which has loaded Optuna by now; a report without one
    # (and ``import bench.report``) never does (see ``build.suite_importances``)
    from bench.tuning import IMPORTANCE_EVALUATOR

    mine = {c: v for c, v in importances.items()
            if c in set(lb.at_seq_len(view.board, view.longest)["configuration"])}
    table, notes = an.importance_table(mine, view.board)
    blocks: list[Any] = []
    if len(table):
        blocks.append(view.figure(
            "importance", "Hyperparameter importance", plots.importance_heatmap(table),
            f"Share of the difference between the best tuning trials and the rest that "
            f"each hyperparameter explains, per configuration{where(view.longest)}; rows "
            f"sum to 1. Evaluator: {IMPORTANCE_EVALUATOR}, Optuna 5's default (not "
            f"fANOVA). With few trials per configuration these are rough; grey: the "
            f"hyperparameter is not tuned there.",
            table.rename_axis("configuration").reset_index(),
            configurations=list(mine)))
    if notes:
        reasons = "; ".join(f"{c}: {r}" for c, r in sorted(notes.items()))
        blocks.append(Note(f"No importance for {len(notes)} configuration(s) ({reasons}).",
                           "info"))
    return blocks
