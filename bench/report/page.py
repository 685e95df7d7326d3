"""The parts of the page above the tasks' sections: the subtitle, the overview (or, for
several suites, the comparison), the remedies table and the provenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from bench import registry
from bench.report import facts
from bench.report import leaderboard as lb
from bench.report.formatting import num, number_format, pct, t_label
from bench.report.html import Note, Section, Table
from bench.report.results import Results


def subtitle(results: Results, board: pd.DataFrame) -> str:
    """How many configurations (by status), trials and final seeds the page reads, and the
    suite's tasks that have no run, each with the reason."""
    runs = results.runs
    counts = board["status"].value_counts().to_dict() if len(board) else {}
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    missing = "".join(f" Task {task} was not run: {reason}." for task, reason in
                      skipped_tasks(results.config, board).items())
    return (f"{len(board)} configurations ({states}); {int((runs['role'] == 'trial').sum())} "
            f"tuning trials and {int((runs['role'] == 'final').sum())} final seed runs, read "
            f"from MLflow experiment {results.suite!r}.{missing}")


def skipped_tasks(config: Mapping[str, Any], board: pd.DataFrame) -> dict[str, str]:
    """The suite's tasks (its resolved config) without a recorded configuration -> why: the
    task's own words on its absent data where it reads data (HAR offline: what ``gradbench
    run`` printed when it left the task out), else that no run of it was recorded."""
    tasks = config.get("tasks") or {}
    recorded = set(board["task"].astype(str)) if "task" in board else set()
    out = {}
    for name, params in (tasks.items() if isinstance(tasks, Mapping) else ()):
        if str(name) in recorded:
            continue
        reason = None
        info = facts.task_info(str(name))
        if info is not None and info.unavailable is not None:
            given = {k: v for k, v in (params.items() if isinstance(params, Mapping) else ())
                     if k in info.params}  # its own keys: not the budget (steps)
            offline = {"download": False} if "download" in info.params else {}  # never here
            try:
                reason = info.unavailable({**given, **offline})
            except Exception as err:  # noqa: BLE001 - broken data: its own error is the reason
                reason = str(err)
        out[str(name)] = reason or "no run of it is recorded"
    return out


def overview(board: pd.DataFrame, results: Results) -> Section:
    """The answer first: per task and T, the winner and the best of each model."""
    section = Section("overview", "At a glance")
    if board.empty:
        section.blocks.append(Note("No configuration has been recorded yet.", "warn"))
        return section
    rows, classes = [], []
    # one format per task's metric (its rows are a block: mse beside mse, not beside acc)
    means = {task: number_format(part["mean"]) for task, part in board.groupby("task")}
    score_of = number_format(board["normalized"], 3)
    for (task, _), part in board.groupby(["task", board["seq_len"].astype("Float64")],
                                         sort=False, dropna=False):
        for i, (_, r) in enumerate(lb.best_rows(part, ["model"]).iterrows()):
            metric = f"{r['metric']} {means[task](r['mean'])}"
            rows.append([str(task), t_label(r["seq_len"]), str(r["model"]), str(r["remedy"]),
                         metric, score_of(r["normalized"]), pct(r["solved_rate"]),
                         str(r["status"])])
            classes.append("best" if i == 0 and pd.notna(r["rank"]) else "")
    section.blocks.append(Table(
        "Best configuration of each model, per task and T", ["task", "T", "model",
                                                            "best remedy", "test metric",
                                                            "score / baseline", "solved",
                                                            "status"],
        rows, row_classes=classes, model_column=2, keys=3,
        caption="Models are listed best first; the first row of each task (bold) is the "
                "overall winner. test metric: mean over all final seeds of the task's headline "
                f"metric ({_headline_metrics(board)}). score / baseline: test loss divided by "
                "the trivial predictor's loss (below 1 beats it). solved: share of final seeds "
                "meeting the task's solved rule."))
    section.blocks += remedies_table(board)
    return section


def remedies_table(board: pd.DataFrame) -> list[Table]:
    """What each remedy of the suite does, from its record (W_hh: the recurrent matrix)."""
    rows = []
    for axis in ("regularization", "clipping"):
        for name in dict.fromkeys(str(n) for n in board[axis].dropna()):
            found = registry.REMEDIES.find(name) if name != registry.NONE else None
            if found is not None:
                ranges = ", ".join(f"{p} {d.low:g}-{d.high:g}" for p, d in found.search.items())
                rows.append([found.label, name, axis, found.description, ranges])
            elif name != registry.NONE:
                rows.append([name, name, axis, "(its plugin does not import here)", ""])
    if not rows:
        return []
    return [Table("Remedies", ["label", "name", "axis", "what it does", "default range"], rows,
                  wrap=True,
                  caption="W_hh is the recurrent matrix (all its gate blocks), the lecture's "
                          "W_r. The range tuned is the suite's config's where it gives one, "
                          "else the default shown.")]


def _headline_metrics(board: pd.DataFrame) -> str:
    """``adding: mse; har: acc``: each task's headline metric, as its runs recorded it."""
    metrics = board.groupby("task", sort=False)["metric"].first()
    return "; ".join(f"{task}: {metrics[task]}" for task in facts.task_order(metrics.index))


def comparison(loaded: Sequence[tuple[Results, pd.DataFrame, list[Section]]]) -> Section:
    """Several suites: per task, T and model, each suite's best configuration side by side."""
    section = Section("overview", "Suites side by side")
    names = [results.suite for results, _, _ in loaded]
    best: dict[tuple[str, str, str], dict[str, str]] = {}
    for results, board, _ in loaded:
        if board.empty:
            continue
        for (task, seq_len), part in board.groupby(
                ["task", board["seq_len"].astype("Float64")], sort=False, dropna=False):
            for _, r in lb.best_rows(part, ["model"]).iterrows():
                key = (str(task), t_label(seq_len), str(r["model"]))
                best.setdefault(key, {})[results.suite] = (
                    f"{r['metric']} {num(r['mean'])} ({r['remedy']}; {num(r['normalized'], 3)}"
                    f" x baseline; solved {pct(r['solved_rate'])})")
    rows = [[task, t, model, *(cells.get(n, "-") for n in names)]
            for (task, t, model), cells in best.items()]
    if not rows:
        section.blocks.append(Note("No configuration has been recorded yet.", "warn"))
        return section
    section.blocks.append(Table(
        "Best configuration of each model, per task and T, in each suite",
        ["task", "T", "model", *names], rows, model_column=2, wrap=True,
        caption="Each cell: that suite's best configuration of the model at that T: mean test "
                "metric over its final seeds, its remedy, test loss over the trivial "
                "predictor's, and the share of final seeds that solved the task. The suites' "
                "own sections follow, one per suite and task; leaderboard.csv has every "
                "configuration of every suite with a suite column."))
    return section


def provenance(results: Results) -> dict[str, str]:
    """Where the results come from: store, runs, config hash, versions, when written."""
    runs = results.runs
    statuses = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
    out = {"suite": results.suite, "tracking store": results.tracking_uri,
           "runs": f"{len(runs)} ({statuses})"}
    if len(runs):
        out["first run started"] = str(runs["start_time"].min())
        out["last run ended"] = str(runs["end_time"].max())
    hashes = sorted(set(runs.get("config_hash", pd.Series(dtype=str)).dropna()) - {""})
    out["config hash"] = ", ".join(hashes) or "-"
    out.update(results.provenance)
    out["report written"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return out
