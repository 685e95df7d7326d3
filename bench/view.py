"""Terminal output of ``gradbench run`` and ``status``: rich progress bars and tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class SuiteProgress:
    """Bars: the suite (jobs), and per worker its configuration (jobs) and trial (steps)."""

    def __init__(self, console: Console, total: int, done: Mapping[str, int],
                 per_configuration: int, workers: int) -> None:
        self.done = dict(done)
        self.per_configuration = per_configuration
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.suite = self.progress.add_task("suite", total=total, completed=sum(done.values()))
        self.configs = [self.progress.add_task(f"  w{i} configuration", total=per_configuration,
                                               visible=False) for i in range(workers)]
        self.trials = [self.progress.add_task(f"  w{i} trial", total=1, visible=False)
                       for i in range(workers)]
        self.current: dict[int, str] = {}

    def __enter__(self) -> SuiteProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(payload)

    def _on_start(self, p: dict[str, Any]) -> None:
        w, name = p["worker"], p["configuration"]
        self.current[w] = name
        self.progress.update(self.configs[w], description=f"  w{w} {name}", visible=True,
                             completed=self.done.get(name, 0))
        self.progress.update(self.trials[w], description=f"  w{w}   {p['role']}", visible=True,
                             total=p["steps"], completed=0)

    def _on_step(self, p: dict[str, Any]) -> None:
        self.progress.update(self.trials[p["worker"]], completed=p["step"])

    def _on_end(self, p: dict[str, Any]) -> None:
        w, name = p["worker"], p["configuration"]
        self.done[name] = self.done.get(name, 0) + 1
        self.progress.advance(self.suite)
        self.progress.update(self.configs[w], completed=self.done[name])
        self.progress.update(self.trials[w], description=f"  w{w}   {p['role']}: {p['outcome']}")

    def _on_skipped(self, p: dict[str, Any]) -> None:
        """Final seeds that will not run (every trial diverged) count as done, as on resume."""
        name = p["configuration"]
        self.done[name] = self.done.get(name, 0) + p["jobs"]
        self.progress.advance(self.suite, p["jobs"])

    def _on_done(self, p: dict[str, Any]) -> None:
        self.progress.update(self.configs[p["worker"]], visible=False)
        self.progress.update(self.trials[p["worker"]], visible=False)


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def make_console() -> Console:
    """A console wide enough for the tables, also when output goes to a file or a pipe."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    return console


def leaderboard_table(rows: Sequence[Mapping[str, Any]], task: str) -> Table:
    """One task's configurations, best first, as the terminal leaderboard."""
    rows = [r for r in rows if r["task"] == task]
    maximize = any(r.get("direction") == "maximize" for r in rows)
    ranked = sorted(rows, key=lambda r: (math.isnan(r["mean"]),
                                         -r["mean"] if maximize else r["mean"]))
    metric = next((r["metric"] for r in rows if r["metric"]), "metric")
    better = "higher" if maximize else "lower"
    table = Table(title=f"{task}: test {metric} over all final seeds ({better} is better; a "
                  f"diverged seed scores as the trivial predictor)")
    for column in ("T", "model", "reg", "clip", f"{metric} mean", "std", "seeds", "solved",
                   "diverged", "steps to solve", "trials c/p/d"):
        table.add_column(column, justify="left" if column in ("model", "reg", "clip") else "right")
    for r in ranked:
        std = _fmt(r["std"]) if r["seeds"] > 1 else "-"
        table.add_row(str(r["seq_len"] or "-"), r["model"], r["regularization"], r["clipping"],
                      _fmt(r["mean"]), std, str(r["seeds"]),
                      _fmt(r["solved_rate"], 2), _fmt(r["diverged_rate"], 2),
                      _fmt(r.get("steps_to_solve", math.nan), 0),
                      f"{r['complete']}/{r['pruned']}/{r['diverged']}")
    return table


def status_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("configuration", "complete", "pruned", "diverged", "interrupted", "running",
                   "queued", "best val loss", "final seeds"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for r in rows:
        table.add_row(r["configuration"], *(str(r[k]) for k in (
            "complete", "pruned", "diverged", "interrupted", "running", "waiting")),
            _fmt(r["best"]), r["finals"])
    return table
