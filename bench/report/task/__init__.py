"""One task's section of the report: ``TaskView`` holds what its parts share, ``task_section``
puts them together (``scores``: results; ``gradients``: the gradient picture; ``trials``:
tuning)."""

from __future__ import annotations

from bench.report.task.section import task_section
from bench.report.task.trials import Importances
from bench.report.task.view import RunLinks, TaskView

__all__ = ["Importances", "RunLinks", "TaskView", "task_section"]
