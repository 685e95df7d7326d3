"""One task's section of the page, its parts in reading order: results, the gradient
picture, tuning, the T sweep, HAR classes, published results, significance."""

from __future__ import annotations

from bench.report import facts
from bench.report.html import Heading, Section
from bench.report.task import gradients, scores, trials
from bench.report.task.trials import Importances
from bench.report.task.view import TaskView


def task_section(view: TaskView, importances: Importances | None,
                 storage_note: str) -> Section:
    """The section of one task: tables, the gradient picture, tuning, HAR extras."""
    section = Section(f"task-{view.key}", f"Task {view.task}{view.suffix}")
    blocks = section.blocks
    blocks += scores.summary(view)
    blocks += scores.leaderboard(view)
    blocks.append(Heading("Why, in gradients", f"{view.key}-gradients"))
    blocks += gradients.gradients(view)
    blocks += gradients.factors(view)
    blocks += gradients.traces(view)
    blocks += gradients.curves(view)
    blocks.append(Heading("Tuning (Optuna)", f"{view.key}-tuning"))
    blocks += trials.tuning(view, importances, storage_note)
    if view.board["seq_len"].dropna().nunique() > 1:
        blocks.append(Heading("Sequence-length sweep", f"{view.key}-sweep"))
        blocks += scores.sweep(view)
    info = facts.task_info(view.task)
    if info is not None and info.classes:
        blocks.append(Heading(f"{view.task}: classes", f"{view.key}-classes"))
        blocks += scores.classes(view)
    blocks += scores.literature(view)
    blocks.append(Heading("Significance", f"{view.key}-significance"))
    blocks += scores.significance(view)
    return section
