"""Terminal output of ``gradbench run`` and ``status``: progress, tables, machine formats.

On a terminal ``gradbench run`` draws rich progress bars; in a log file or a pipe (nohup,
Slurm, CI) it prints one plain progress line at a steady pace instead. Both count the whole
suite's work: with a shared storage (several machines) they re-read it now and then.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

PLAIN_EVERY_S = float(os.environ.get("GRADBENCH_PROGRESS_S", "30"))
Snapshot = Callable[[], Mapping[str, int]]  # jobs done per configuration, read from the storage


class SuiteProgress:
    """Bars: the suite (jobs), and per worker its configuration (jobs) and trial (steps),
    each with the time elapsed and the time left at its pace so far.

    ``refresh`` (a shared storage: other machines work on the suite too) is read at most
    every ``PLAIN_EVERY_S`` seconds and at the end, so that the suite bar counts their runs.
    """

    def __init__(self, console: Console, total: int, done: Mapping[str, int],
                 per_configuration: int, workers: int, refresh: Snapshot | None = None) -> None:
        self.done = dict(done)
        self.per_configuration = per_configuration
        self.refresh = refresh
        self._synced = time.monotonic()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("left"), TimeRemainingColumn(), console=console,
                                 speed_estimate_period=3600.0)  # runs end minutes apart
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
        if exc[0] is None:
            self.sync()
        self.progress.stop()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(payload)
        if self.refresh is not None and time.monotonic() - self._synced > PLAIN_EVERY_S:
            self.sync()

    def sync(self) -> None:
        """Count what the storage says is done (other machines' runs included)."""
        self._synced = time.monotonic()
        if self.refresh is None:
            return
        for name, jobs in self.refresh().items():
            self.done[name] = max(self.done.get(name, 0), jobs)
        self.progress.update(self.suite, completed=sum(self.done.values()))

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


class PlainProgress:
    """One plain line every ``every`` seconds, for logs: runs done/total, running, diverged,
    elapsed and estimated time left (from this command's pace). Same events as the bars."""

    def __init__(self, console: Console, total: int, done: Mapping[str, int],
                 refresh: Snapshot | None = None, every: float = PLAIN_EVERY_S) -> None:
        self.console, self.total, self.refresh, self.every = console, total, refresh, every
        self.done = dict(done)
        self.at_start = sum(self.done.values())
        self.running: set[int] = set()
        self.diverged = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gradbench-progress",
                                        daemon=True)

    def __enter__(self) -> PlainProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self.print_line()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.print_line()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if kind == "start":
                self.running.add(payload["worker"])
            elif kind == "end":
                self.running.discard(payload["worker"])
                name = payload["configuration"]
                self.done[name] = self.done.get(name, 0) + 1
                self.diverged += payload.get("outcome") == "diverged"
            elif kind == "skipped":
                name = payload["configuration"]
                self.done[name] = self.done.get(name, 0) + payload["jobs"]
            elif kind in ("done", "error", "interrupted"):
                self.running.discard(payload.get("worker"))

    def print_line(self) -> None:
        if self.refresh is not None:
            snapshot = self.refresh()
            with self._lock:
                for name, jobs in snapshot.items():
                    self.done[name] = max(self.done.get(name, 0), jobs)
        with self._lock:
            line = self.line()
        self.console.print(line, highlight=False, markup=False)

    def line(self) -> str:
        done = min(self.total, sum(self.done.values()))
        elapsed = time.monotonic() - self.start
        pace = (done - self.at_start) / elapsed if elapsed > 0 else 0.0
        left = ("done" if done >= self.total else
                f"about {_duration((self.total - done) / pace)} left" if pace > 0
                else "time left unknown")
        share = done / self.total if self.total else 1.0
        return (f"{time.strftime('%H:%M:%S')} progress: {done}/{self.total} runs done "
                f"({share:.0%}), {len(self.running)} running, {self.diverged} diverged; "
                f"elapsed {_duration(elapsed)}, {left}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def make_console() -> Console:
    """A console wide enough for the tables, also when output goes to a file or a pipe
    (140 columns there, unless ``COLUMNS`` says otherwise)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)
    return console


NUM, KEY, NAME = "num", "key", "name"  # numbers and keys kept whole; names fold at words


def _compact(title: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]],
             legend: str) -> Table:
    """A table that reads at 80 columns: short headers explained by ``legend`` (the
    caption), no vertical rules, numbers and the key column (the configuration's name) never
    wrapped or cut (each at least as wide as its longest cell), other names wrapped at their
    words (folded only where a word is longer than the space left)."""
    table = Table(title=title, caption=legend, box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False, collapse_padding=True, show_edge=False,
                  caption_justify="left")
    for i, (header, kind) in enumerate(columns):
        cells = [Text.from_markup(r[i]).plain for r in rows]
        if kind == NAME:
            word = max((len(w) for c in cells for w in c.split()), default=1)
            table.add_column(header, justify="left", overflow="fold", min_width=min(word, 14))
        else:
            table.add_column(header, justify="right" if kind == NUM else "left", no_wrap=True,
                             min_width=max([len(c) for c in cells] + [len(header)]))
    for row in rows:
        table.add_row(*row)
    return table


def leaderboard_table(rows: Sequence[Mapping[str, Any]], task: str) -> Table:
    """One task's configurations, best first, as the terminal leaderboard."""
    rows = [r for r in rows if r["task"] == task]
    maximize = any(r.get("direction") == "maximize" for r in rows)
    ranked = sorted(rows, key=lambda r: (math.isnan(r["mean"]),
                                         -r["mean"] if maximize else r["mean"]))
    metric = next((r["metric"] for r in rows if r["metric"]), "metric")
    better = "higher" if maximize else "lower"
    cells = []
    for r in ranked:
        std = _fmt(r["std"]) if r["seeds"] > 1 else "-"
        mean = "beyond horizon" if r.get("beyond_horizon") else _fmt(r["mean"])
        cells.append([str(r["seq_len"] or "-"), r["model"], r["regularization"], r["clipping"],
                      mean, std, str(r["seeds"]),
                      _fmt(r["solved_rate"], 2), _fmt(r["diverged_rate"], 2),
                      _fmt(r.get("steps_to_solve", math.nan), 0),
                      f"{r['complete']}/{r['pruned']}/{r['diverged']}", _edge(r)])
    return _compact(
        f"{task}: test {metric} over all final seeds ({better} is better; a diverged seed "
        f"scores as the trivial predictor)",
        [("T", NUM), ("model", KEY), ("reg", KEY), ("clip", KEY), ("mean", NUM),
         ("std", NUM), ("seeds", NUM), ("solved", NUM), ("div", NUM), ("steps", NUM),
         ("c/p/d", NUM), ("best in range", NAME)], cells,
        f"mean, std: test {metric} over the final seeds; solved, div: share of seeds that "
        f"solved the task / diverged; steps: median steps to solve; c/p/d: tuning trials "
        f"complete / pruned / diverged; reg, clip: the remedies; {EDGE_LEGEND}")


EDGE_LEGEND = ("best in range: whether the best trial's log-scale parameters keep clear of "
               "the outer tenth of their ranges (told from 8 complete trials on)")


def _edge(row: Mapping[str, Any]) -> str:
    """The row's range check (``bench.range_edge``), "-" where there is none; an edge in
    yellow."""
    found = str(row.get("range_edge") or "-")
    return f"[yellow]{found}[/]" if "widen" in found else found


def status_table(rows: Sequence[Mapping[str, Any]], title: str,
                 objective: str = "val loss") -> Table:
    """``objective``: what the best value is (the suite's ``tuning.objective``, in words)."""
    cells = [[r["configuration"], *(str(r[k]) for k in (
        "complete", "pruned", "diverged", "interrupted", "running", "waiting")),
        _fmt(r["best"]), r["finals"], _edge(r)] for r in rows]
    return _compact(title, [("configuration", KEY), ("c", NUM), ("p", NUM), ("d", NUM),
                            ("i", NUM), ("run", NUM), ("queue", NUM), ("best", NUM),
                            ("seeds", NUM), ("best in range", NAME)], cells,
                    f"trials c/p/d/i: complete / pruned / diverged / interrupted; run, queue: "
                    f"running, queued; best: best {objective}; seeds: final seeds done; "
                    f"{EDGE_LEGEND}")


STATUS_FIELDS = ("configuration", "complete", "pruned", "diverged", "interrupted", "failed",
                 "running", "waiting", "best", "finals", "range_edge")


def status_json(name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """``gradbench status --json``: the suite and one object per configuration (NaN: null)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps({"suite": name, "configurations": [
        {k: clean(r.get(k)) for k in STATUS_FIELDS if k in r} for r in rows]}, indent=2)


def status_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``gradbench status --format csv``: a header and one line per configuration."""
    fields = [k for k in STATUS_FIELDS if not rows or k in rows[0]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if isinstance(r.get(k), float) and math.isnan(r[k]) else r.get(k)
                         for k in fields})
    return out.getvalue()
