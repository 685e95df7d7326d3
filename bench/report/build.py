"""Suite -> report page: gather what each figure needs, compute, draw, render, write.

Reading is the slow part, so artifacts and metric histories are read only for the runs the
figures show: per task, at its longest T, the best configuration of each model (its final
seeds) and of each (model, clipping) pair; the HAR confusion matrix of the best
configuration. Everything else comes from one ``search_runs`` sweep.

The page's parts: ``page`` (overview, comparison, provenance), ``task`` (one section per
task); the numbers come from ``leaderboard``, ``analysis`` and ``statistics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report import facts, plots
from bench.report import leaderboard as lb
from bench.report.html import Page, Section, figure_data, figure_images, render
from bench.report.page import comparison, overview, provenance, subtitle
from bench.report.results import Results, ResultsSource
from bench.report.task import RunLinks, TaskView, task_section


def build_report(source: ResultsSource, out: Path, *, storage: Any = None,
                 storage_note: str = "",
                 others: Sequence[tuple[ResultsSource, Any, str]] = (),
                 mlflow_url: str | None = None) -> Path:
    """Read the suite from ``source``, write the report to ``out`` (an .html file).

    Args:
        source: the suite's MLflow runs.
        out: the HTML file to write (its folder is created).
        storage: the suite's Optuna storage (for hyperparameter importance), or None.
        storage_note: why there is no storage, shown in place of the importance figure.
        others: more suites ``(source, storage, storage_note)`` to put side by side on the
            same page: a comparison of their best results first, then each suite's sections.
        mlflow_url: the MLflow UI serving the suites' store (``http://host:port``): each
            leaderboard row links to its configuration's parent run and each figure to the
            runs it draws. None: no links (the page stays self-contained).
    """
    if mlflow_url is not None:
        RunLinks(mlflow_url, "")  # a bad address fails before anything is read
    plots.configure()
    suites = [(source, storage, storage_note), *others]
    many = len(suites) > 1
    loaded = [suite_sections(*entry, suite_label=many, mlflow_url=mlflow_url)
              for entry in suites]
    boards = [board.assign(suite=results.suite) for results, board, _ in loaded]
    results = loaded[0][0]
    if many:
        sections = [comparison(loaded)]
        title = "rnn-gradbench report: suites " + ", ".join(r.suite for r, _, _ in loaded)
        subtitle_text = " | ".join(f"{r.suite}: {subtitle(r, b)}" for r, b, _ in loaded)
    else:
        sections = [overview(loaded[0][1], results)]
        title, subtitle_text = f"rnn-gradbench report: suite {results.suite}", \
            subtitle(results, loaded[0][1])
    sections += [section for _, _, parts in loaded for section in parts]
    page = Page(title=title, subtitle=subtitle_text, sections=sections,
                provenance=provenance(results), config_text=results.config_text)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(render(page), encoding="utf-8")
    tmp.replace(out)
    write_table(pd.concat(boards, ignore_index=True), leaderboard_path(out))
    for relative, frame in figure_data(sections).items():
        write_figure_table(frame, out.parent / relative)
    for relative, image in figure_images(sections).items():
        (out.parent / relative).write_bytes(image)
    return out


def suite_sections(source: ResultsSource, storage: Any, storage_note: str, *,
                   suite_label: bool, mlflow_url: str | None = None
                   ) -> tuple[Results, pd.DataFrame, list[Section]]:
    """One suite read back: its results, its leaderboard and one section per task."""
    results = source.load()
    board = lb.leaderboard(results.runs, lb.expected_counts(results.config),
                           lb.search_ranges(results.config))
    board = board.merge(final_run_ids(results.runs), on="configuration", how="left") \
        if "configuration" in board else board
    importances = suite_importances(results, storage) if storage is not None else None
    sections = []
    for task in facts.task_order(board.get("task", pd.Series(dtype=str)).astype(str)):
        view = TaskView(task, results, board[board["task"] == task], source,
                        suite_label=suite_label,
                        links=RunLinks(mlflow_url, source.experiment_id) if mlflow_url
                        else None)
        sections.append(task_section(view, importances, storage_note))
    return results, board, sections


def final_run_ids(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: its parent MLflow run and its final seeds' runs (space between)."""
    parents = runs[runs["role"] == "configuration"].groupby("configuration")["run_id"].last()
    finals = runs[runs["role"] == "final"].groupby("configuration")["run_id"].agg(" ".join)
    return pd.DataFrame({"parent_run_id": parents, "final_run_ids": finals}) \
        .rename_axis("configuration").reset_index()


def write_figure_table(frame: pd.DataFrame, path: Path) -> None:
    """The data one figure was drawn from, as CSV (``figures/<name>.csv`` beside the page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def leaderboard_path(out: Path) -> Path:
    """The leaderboard's CSV beside the page: ``leaderboard.csv`` next to ``index.html``."""
    return out.with_name("leaderboard.csv" if out.name == "index.html"
                         else f"{out.stem}.leaderboard.csv")


def write_table(board: pd.DataFrame, path: Path) -> None:
    """Every configuration's row of the leaderboards, for a spreadsheet or a paper's table.

    ``diverged_rate`` is over the final seeds; ``diverged`` and ``failed`` count tuning trials.
    """
    columns = [c for c in lb.BOARD_COLUMNS if c in board]
    tmp = path.with_suffix(".csv.tmp")
    board.reindex(columns=columns).to_csv(tmp, index=False)
    tmp.replace(path)


def suite_importances(results: Results, storage: Any) -> dict[str, dict[str, float] | str]:
    """Configuration -> hyperparameter importances (or the reason there are none)."""
    # Optuna takes half a second to import, and only a report with a storage reads it: not
    # with this module, which ``import bench.report`` (and its pure analysis) loads.
    from bench import tuning

    trials = results.trials
    studies = trials[trials["study"].fillna("") != ""].groupby("configuration")["study"].first()
    found = tuning.param_importances(storage, list(studies))
    return {configuration: found[study] for configuration, study in studies.items()}
