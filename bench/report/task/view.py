"""One task of a suite as its section reads it (``TaskView``): its runs and leaderboard, the
configurations its figures draw, and how a figure names the runs it was drawn from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.links import mlflow_run_path
from bench.report import analysis as an
from bench.report import leaderboard as lb
from bench.report import plots
from bench.report.html import Figure
from bench.report.results import Results, ResultsSource

SHOWN_IDS = 6  # run ids listed under a figure (all of them are in its CSV)


@dataclass(frozen=True)
class RunLinks:
    """Addresses of runs in the MLflow UI at ``base`` (``--mlflow-url``)."""

    base: str
    experiment_id: str

    def __post_init__(self) -> None:
        if not self.base.startswith(("http://", "https://")):
            raise ValueError(f"--mlflow-url {self.base}: expected an http:// or https:// "
                             f"address of the MLflow UI")

    def run(self, run_id: str) -> str:
        return self.base.rstrip("/") + mlflow_run_path(self.experiment_id, run_id)


class TaskView:
    """What the parts of one task's section share: the task's runs and leaderboard rows, its
    longest T (``top``: the rows there), the best configuration of each model (``per_model``)
    and of each (model, clipping) pair (``per_clip``), and the runs that stand for each of
    those (``seeds``)."""

    def __init__(self, task: str, results: Results, board: pd.DataFrame,
                 source: ResultsSource, *, suite_label: bool = False,
                 links: RunLinks | None = None) -> None:
        self.task, self.results, self.board, self.source = task, results, board, source
        self.links = links
        # with several suites on one page: anchors, figure files and titles name the suite
        self.key = f"{results.suite}-{task}" if suite_label else task
        self.suffix = f" (suite {results.suite})" if suite_label else ""
        self.runs = results.runs[results.runs["task"] == task]
        self.longest = lb.longest_seq_len(board)
        self.top = lb.at_seq_len(board, self.longest)
        self.metric = str(board["metric"].iloc[0])
        self.maximize = str(board["direction"].iloc[0]) == "maximize"
        self.per_model = lb.best_rows(self.top, ["model"])
        self.per_clip = lb.best_rows(self.top, ["model", "clipping"])
        self.seeds = {c: an.representative_runs(self.runs, c)
                      for c in set(self.per_model["configuration"]) |
                      set(self.per_clip["configuration"])}

    def seq_lens(self) -> list[Any]:
        """The task's T, shortest first ([NA] for a task without one)."""
        values = sorted(self.board["seq_len"].dropna().unique())
        return values or [pd.NA]

    def first_runs(self, configurations: pd.Series) -> list[str]:
        """The first run that stands for each configuration (``seeds``)."""
        return [self.seeds[c][0] for c in configurations if self.seeds.get(c)]

    # -------------------------------------------------------------- figures

    def figure(self, name: str, title: str, fig: Any, caption: str, data: pd.DataFrame,
               run_ids: Sequence[str] = (), configurations: Iterable[str] = ()) -> Figure:
        """A figure of this task with its data (``figures/<task>-<name>.csv``) and a line
        saying which runs and configurations it was drawn from and how to redraw it."""
        return Figure(title, plots.to_data_uri(fig), caption, name=f"{self.key}-{name}",
                      data=data, source=self.source_line(run_ids, configurations),
                      links=self._run_links(run_ids))

    def _run_links(self, run_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(configuration and role, URL) of the runs a figure draws (none without links)."""
        if self.links is None:
            return []
        info = self.runs.set_index("run_id")
        return [(f"{info.at[i, 'configuration']} ({info.at[i, 'role']})", self.links.run(i))
                for i in dict.fromkeys(run_ids) if i in info.index]

    def parent_links(self) -> list[str]:
        """Per leaderboard row, its parent run in the MLflow UI (none without links)."""
        if self.links is None or "parent_run_id" not in self.board:
            return []
        links = self.links
        return [links.run(str(i)) if isinstance(i, str) and i else ""
                for i in self.board["parent_run_id"]]

    def source_line(self, run_ids: Sequence[str], configurations: Iterable[str]) -> str:
        """'Drawn from' the runs, configurations and config hash, and how to redraw."""
        runs = self.runs[self.runs["run_id"].isin(list(run_ids))]
        configs = list(dict.fromkeys([*configurations, *runs["configuration"].dropna()]))
        hashes = ", ".join(sorted(set(self.runs.get("config_hash", pd.Series()).dropna())))
        ids = list(dict.fromkeys(run_ids))
        shown = ", ".join(ids[:SHOWN_IDS]) + (f" and {len(ids) - SHOWN_IDS} more (all in the "
                                             f"data)" if len(ids) > SHOWN_IDS else "")
        parts = [f"MLflow runs {shown}" if ids else "",
                 f"configurations {', '.join(configs)}" if configs else "",
                 f"config hash {hashes}" if hashes else "",
                 f"redraw: gradbench report {self.results.suite}"]
        return "Drawn from " + "; ".join(p for p in parts if p) + "."
