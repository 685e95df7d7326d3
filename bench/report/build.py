"""Suite -> report page: gather what each figure needs, compute, draw, render, write.

Reading is the slow part, so artifacts and metric histories are read only for the runs the
figures show: per task, at its longest T, the best configuration of each model (its final
seeds) and of each (model, clipping) pair; the HAR confusion matrix of the best
configuration. Everything else comes from one ``search_runs`` sweep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench import registry, tracking
from bench.report import analysis as an
from bench.report import plots
from bench.report.html import (
    Figure,
    Heading,
    Note,
    Page,
    Row,
    Section,
    Table,
    figure_data,
    figure_images,
    render,
)
from bench.report.results import Results, ResultsSource

Importances = Mapping[str, dict[str, float] | str]
SHOWN_IDS = 6  # run ids listed under a figure (all of them are in its CSV)


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
    board = an.leaderboard(results.runs, expected_counts(results.config))
    board = board.merge(final_run_ids(results.runs), on="configuration", how="left") \
        if "configuration" in board else board
    importances = suite_importances(results, storage) if storage is not None else None
    sections = []
    for task in an.task_order(board.get("task", pd.Series(dtype=str)).astype(str)):
        report = TaskReport(task, results, board[board["task"] == task], source,
                            suite_label=suite_label,
                            links=RunLinks(mlflow_url, source.experiment_id) if mlflow_url
                            else None)
        sections.append(report.section(importances, storage_note))
    return results, board, sections


def final_run_ids(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: its parent MLflow run and its final seeds' runs (space between)."""
    parents = runs[runs["role"] == "configuration"].groupby("configuration")["run_id"].last()
    finals = runs[runs["role"] == "final"].groupby("configuration")["run_id"].agg(" ".join)
    return pd.DataFrame({"parent_run_id": parents, "final_run_ids": finals}) \
        .rename_axis("configuration").reset_index()


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
            for _, r in an.best_rows(part, ["model"]).iterrows():
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


def write_figure_table(frame: pd.DataFrame, path: Path) -> None:
    """The data one figure was drawn from, as CSV (``figures/<name>.csv`` beside the page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


BOARD_COLUMNS = ("suite", "task", "seq_len", "model", "regularization", "clipping",
                 "configuration", "metric", "seeds", "mean", "std", "ci_low", "ci_high",
                 "normalized", "solved_rate", "diverged_rate", "steps_to_solve", "complete",
                 "pruned", "diverged", "failed", "running", "best_val", "time_s", "status",
                 "parent_run_id", "final_run_ids")


def leaderboard_path(out: Path) -> Path:
    """The leaderboard's CSV beside the page: ``leaderboard.csv`` next to ``index.html``."""
    return out.with_name("leaderboard.csv" if out.name == "index.html"
                         else f"{out.stem}.leaderboard.csv")


def write_table(board: pd.DataFrame, path: Path) -> None:
    """Every configuration's row of the leaderboards, for a spreadsheet or a paper's table.

    ``diverged_rate`` is over the final seeds; ``diverged`` and ``failed`` count tuning trials.
    """
    columns = [c for c in BOARD_COLUMNS if c in board]
    tmp = path.with_suffix(".csv.tmp")
    board.reindex(columns=columns).to_csv(tmp, index=False)
    tmp.replace(path)


def expected_counts(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The trial budget and final seeds of the suite, from its resolved config."""
    tuning, final = config.get("tuning") or {}, config.get("final") or {}
    return {"trials": tuning.get("trials"), "seeds": final.get("seeds")}


def suite_importances(results: Results, storage: Any) -> dict[str, dict[str, float] | str]:
    """Configuration -> hyperparameter importances (or the reason there are none)."""
    from bench import tuning

    trials = results.trials
    studies = trials[trials["study"].fillna("") != ""].groupby("configuration")["study"].first()
    found = tuning.param_importances(storage, list(studies))
    return {configuration: found[study] for configuration, study in studies.items()}


# ------------------------------------------------------------------------------ formatting


def num(value: Any, digits: int = 4) -> str:
    """A number for a table: NaN -> '-', small/large in scientific notation."""
    if value is None or pd.isna(value):
        return "-"
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        return f"{v:.2e}"
    return f"{v:.{digits}g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def spread(row: Mapping[str, Any]) -> str:
    """'mean ± std over n seeds' (no ± with one seed)."""
    n = int(row["n_values"])
    text = num(row["mean"]) if n < 2 else f"{num(row['mean'])} ± {num(row['std'])}"
    return f"{text} over {plural(n, 'seed')}"


def pct(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.0%}"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def t_label(seq_len: Any) -> str:
    return "-" if pd.isna(seq_len) else str(int(seq_len))


def where(seq_len: Any) -> str:
    return "" if pd.isna(seq_len) else f" at T = {int(seq_len)}"


def status_class(status: str) -> str:
    return "status-" + "-".join(str(status).split())


# ------------------------------------------------------------------------------ page parts


def subtitle(results: Results, board: pd.DataFrame) -> str:
    runs = results.runs
    counts = board["status"].value_counts().to_dict() if len(board) else {}
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"{len(board)} configurations ({states}); {int((runs['role'] == 'trial').sum())} "
            f"tuning trials and {int((runs['role'] == 'final').sum())} final seed runs, read "
            f"from MLflow experiment {results.suite!r}.")


def overview(board: pd.DataFrame, results: Results) -> Section:
    """The answer first: per task and T, the winner and the best of each model."""
    section = Section("overview", "At a glance")
    if board.empty:
        section.blocks.append(Note("No configuration has been recorded yet.", "warn"))
        return section
    rows, classes = [], []
    for (task, _), part in board.groupby(["task", board["seq_len"].astype("Float64")],
                                         sort=False, dropna=False):
        for i, (_, r) in enumerate(an.best_rows(part, ["model"]).iterrows()):
            metric = f"{r['metric']} {num(r['mean'])}"
            rows.append([str(task), t_label(r["seq_len"]), str(r["model"]), str(r["remedy"]),
                         metric, num(r["normalized"], 3), pct(r["solved_rate"]),
                         str(r["status"])])
            classes.append("best" if i == 0 and pd.notna(r["rank"]) else "")
    section.blocks.append(Table(
        "Best configuration of each model, per task and T", ["task", "T", "model",
                                                            "best remedy", "test metric",
                                                            "score / baseline", "solved",
                                                            "status"],
        rows, row_classes=classes, model_column=2,
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
    return "; ".join(f"{task}: {metrics[task]}" for task in an.task_order(metrics.index))


def _and(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def bounded_models(models: Iterable[str]) -> list[str]:
    """The models, in display order, that have the theory bound (a plain RNN's gain), from
    their records."""
    return [m for m in an.model_order(models)
            if (info := an.model_info(m)) is not None and info.gain is not None]


def radius_caption(models: Iterable[str]) -> str:
    """The caption of the spectral-radius figure: which of the suite's models have gate
    blocks and which the bound that rho governs (from their records)."""
    shown = an.model_order(models)
    gated = "/".join(info.label or m for m in shown
                     if (info := an.model_info(m)) is not None and len(info.blocks) > 1)
    plain = "/".join(bounded_models(shown))
    text = ("rho(W_hh), the largest |eigenvalue|"
            + (f" ({gated}: largest over gate blocks)" if gated else "")
            + " at the probe steps, mean over the seeds (band: lowest to highest).")
    if plain:
        text += (f" For {plain}, rho < 1 makes W_hh^k shrink (gradients vanish over many "
                 "steps) and rho > 1 lets it grow (explode).")
    return text


def provenance(results: Results) -> dict[str, str]:
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


# ------------------------------------------------------------------------------ one task


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
        return f"{self.base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"


class TaskReport:
    """The section of one task: tables, the gradient picture, tuning, HAR extras."""

    def __init__(self, task: str, results: Results, board: pd.DataFrame,
                 source: ResultsSource, *, suite_label: bool = False,
                 links: RunLinks | None = None) -> None:
        self.task, self.results, self.board, self.source = task, results, board, source
        self.links = links
        # with several suites on one page: anchors, figure files and titles name the suite
        self.key = f"{results.suite}-{task}" if suite_label else task
        self.suffix = f" (suite {results.suite})" if suite_label else ""
        self.runs = results.runs[results.runs["task"] == task]
        self.longest = an.longest_seq_len(board)
        self.top = an.at_seq_len(board, self.longest)
        self.metric = str(board["metric"].iloc[0])
        self.maximize = str(board["direction"].iloc[0]) == "maximize"
        self.per_model = an.best_rows(self.top, ["model"])
        self.per_clip = an.best_rows(self.top, ["model", "clipping"])
        self.seeds = {c: an.representative_runs(self.runs, c)
                      for c in set(self.per_model["configuration"]) |
                      set(self.per_clip["configuration"])}

    def section(self, importances: Importances | None, storage_note: str) -> Section:
        started = time.perf_counter()
        section = Section(f"task-{self.key}", f"Task {self.task}{self.suffix}")
        blocks = section.blocks
        blocks += self.summary()
        blocks += self.leaderboard()
        blocks.append(Heading("Why, in gradients", f"{self.key}-gradients"))
        blocks += self.gradients()
        blocks += self.factors()
        blocks += self.traces()
        blocks += self.curves()
        blocks.append(Heading("Tuning (Optuna)", f"{self.key}-tuning"))
        blocks += self.tuning(importances, storage_note)
        if self.board["seq_len"].dropna().nunique() > 1:
            blocks.append(Heading("Sequence-length sweep", f"{self.key}-sweep"))
            blocks += self.sweep()
        info = an.task_info(self.task)
        if info is not None and info.classes:
            blocks.append(Heading(f"{self.task}: classes", f"{self.key}-classes"))
            blocks += self.classes()
        blocks += self.literature()
        blocks.append(Heading("Significance", f"{self.key}-significance"))
        blocks += self.significance()
        self.elapsed = time.perf_counter() - started
        return section

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

    def _parent_links(self) -> list[str]:
        """Per leaderboard row, its parent run in the MLflow UI (none without links)."""
        if self.links is None or "parent_run_id" not in self.board:
            return []
        links = self.links
        return [links.run(str(i)) if isinstance(i, str) and i else ""
                for i in self.board["parent_run_id"]]

    def source_line(self, run_ids: Sequence[str], configurations: Iterable[str]) -> str:
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

    # -------------------------------------------------------------- tables

    def summary(self) -> list[Note]:
        notes: list[Note] = []
        better = "higher" if self.maximize else "lower"
        ts = ", ".join(t_label(t) for t in sorted(self.board["seq_len"].dropna().unique()))
        baseline = an.baseline_of(self.runs[self.runs["role"] == "final"])
        notes.append(Note(f"Headline metric: test {self.metric} ({better} is better); solved: "
                          f"{an.solved_rule(self.task)}; baseline loss "
                          f"(trivial predictor): {num(baseline)}"
                          + (f"; T tried: {ts}." if ts else ".")))
        notes.append(self.baselines())
        ranked = self.top[self.top["rank"].notna()]
        if len(ranked):
            r = ranked.iloc[0]
            notes.append(Note(
                f"Winner{where(self.longest)}: {r['model']} with {r['remedy']} "
                f"(test {self.metric} {spread(r)}, {num(r['normalized'], 3)} x baseline, "
                f"solved {pct(r['solved_rate'])})."))
        pending = self.board[~self.board["status"].isin(("done",))]
        if len(pending):
            counts = ", ".join(f"{n} {s}" for s, n in pending["status"].value_counts().items())
            notes.append(Note(f"Not every configuration is done: {counts}. They are listed "
                              f"and marked below.", "warn"))
        return notes

    def baselines(self) -> Note:
        """The trivial predictor: analytic (the task record's words) beside what it scores
        on the fixed validation and test sets (score / baseline divides by the test one)."""
        info = an.task_info(self.task)
        parts = []
        for t in self._seq_lens():
            b = an.empirical_baselines(self.runs, self.task, t, self.metric)
            parts.append(f"{'T = ' + t_label(t) + ': ' if pd.notna(t) else ''}validation loss "
                         f"{num(b['val_loss'])}, {self.metric} {num(b['val_' + self.metric])}; "
                         f"test loss {num(b['test_loss'])}, {self.metric} "
                         f"{num(b['test_' + self.metric])}")
        analytic = info.baseline if info is not None else "see the task"
        return Note(f"Baseline (trivial predictor): analytic {analytic}; measured on the fixed "
                    f"sets: {'; '.join(parts)}. A diverged final seed counts with the "
                    f"trivial predictor's test score.")

    def leaderboard(self) -> list[Any]:
        rows, classes = [], []
        previous: str | None = None
        for _, r in self.board.iterrows():
            mean = f"{num(r['mean'])} ± {num(r['std'])}" if r["n_values"] > 1 \
                else num(r["mean"])
            ci = f"[{num(r['ci_low'])}, {num(r['ci_high'])}]" if pd.notna(r["ci_low"]) else "-"
            expected = expected_counts(self.results.config)
            of = f" of {expected['trials']}" if expected["trials"] else ""
            rows.append([
                "-" if pd.isna(r["rank"]) else str(int(r["rank"])), t_label(r["seq_len"]),
                str(r["model"]), str(r["remedy"]), str(r["status"]),
                mean, ci, num(r["normalized"], 3),
                f"{pct(r['solved_rate'])}", pct(r["diverged_rate"]),
                num(r.get("steps_to_solve", math.nan)), str(r["seeds"]),
                f"{r['complete']}/{r['pruned']}/{r['failed']}{of}"
                + (f" +{r['running']} running" if r["running"] else ""),
                duration(float(r["time_s"]))])
            cls = status_class(str(r["status"])) if r["status"] != "done" else \
                ("best" if r["rank"] == 1 else "")
            key = t_label(r["seq_len"])
            classes.append(f"{cls} group-start" if previous not in (None, key) else cls)
            previous = key
        better = "higher" if self.maximize else "lower"
        table = Table(
            f"Leaderboard: all {len(self.board)} configurations",
            ["#", "T", "model", "remedy", "status", f"test {self.metric} mean ± std",
             "95% CI", "score / baseline", "solved", "diverged", "steps to solve", "seeds",
             "trials c/p/f", "time"], rows, row_classes=classes, model_column=2,
            links=self._parent_links(), link_column=3,
            caption=f"Ranked best first within each T by the mean test {self.metric} over "
                    f"all final seeds ({better} is better; a diverged seed counts with the "
                    f"trivial predictor's score). steps to solve: median over seeds of the "
                    f"first evaluation step whose validation metrics met the solved rule. "
                    "± std: sample standard deviation "
                    "over seeds; 95% CI: Student-t interval of the mean (needs 2 seeds; clipped "
                    "to the metric's range, e.g. MSE >= 0, accuracy <= 1). "
                    "score / baseline: test loss / the trivial predictor's loss on the same test "
                    "set (< 1 beats it). "
                    "solved / diverged: share of final seeds that meet the solved rule / whose "
                    "loss became NaN or Inf. trials c/p/f: tuning trials complete / pruned / "
                    "failed (diverged or interrupted) of the budget. time: wall time of all "
                    "its runs. Yellow rows are still running, red ones diverged, grey ones "
                    "stopped before the end.")
        grids = {f"T = {t_label(t)}" if pd.notna(t) else self.task:
                 an.score_grid(an.at_seq_len(self.board, t))
                 for t in self._seq_lens()}
        heat = self.figure(
            "score-heatmap", "Normalised score: model x remedy", plots.score_heatmap(grids),
            "Each cell: test loss / baseline loss (the trivial predictor), mean over final "
            "seeds. Blue (< 1) beats the baseline, white (= 1) learned nothing beyond it, red "
            "(> 1) is worse than it. Read a row to see what the remedies do for one model, "
            "a column to compare models under one remedy. Grey 'no result': no finished "
            "seed (diverged, still running or not run).",
            pd.concat([g.stack().rename("normalized").reset_index().assign(T=t)
                       for t, g in grids.items()]),
            configurations=self.board["configuration"])
        return [table, heat]

    def _seq_lens(self) -> list[Any]:
        values = sorted(self.board["seq_len"].dropna().unique())
        return values or [pd.NA]

    # -------------------------------------------------------------- gradients

    def _first_runs(self, configurations: pd.Series) -> list[str]:
        return [self.seeds[c][0] for c in configurations if self.seeds.get(c)]

    def gradients(self) -> list[Any]:
        ids = self._first_runs(self.per_model["configuration"])
        profiles = self.source.tables(ids, tracking.PROFILES_TABLE)
        if profiles.empty:
            return [Note("No gradient profiles recorded for these runs.", "warn")]
        memory = bool(len(profiles)) and profiles["kind"].isin(list(an.MEMORY_KINDS)).any()
        snaps = an.profile_snapshots(profiles)
        snaps = snaps.merge(self.runs[["run_id", "model", "configuration"]], on="run_id")
        ratios = an.gradient_ratios(snaps).merge(self.runs[["run_id", "model"]], on="run_id")
        shown = ", ".join(f"{r['model']} ({r['remedy']})" for _, r in
                          self.per_model.iterrows())
        caption = (
            f"||dL/dh_t||: the norm of the total gradient of the loss with respect to the "
            f"hidden state at step t (through every later step), mean over a fixed probe "
            f"batch; best configuration of each model{where(self.longest)}: {shown}; first "
            f"final seed. {read_at(self.task)} A line that falls to the left means "
            "gradients vanish on their way back (the model cannot learn dependencies that far "
            "back); a line that rises to the left means they explode; flat is what long memory "
            "needs. Dashed: the theory bound ||dL/dh_T|| (gamma ||W_hh||_2)^(T-t) for "
            f"{_and(bounded_models(self.board['model'])) or 'plain RNNs (none here)'} "
            "(gamma = 1 for tanh and ReLU); a measured line far below its bound is "
            "vanishing caused by the activation derivatives, not only by the weights. Left: "
            "at initialisation; right: after training. The y range follows the measured "
            "lines; bounds beyond it are cut off."
            + (" L here is the loss of the steps that need the long memory alone (copy: the "
               "cross-entropy of the 10 recalled symbols), not the full loss, which the blank "
               "predictions dominate." if memory else ""))
        fig = self.figure("profiles", "The vanishing / exploding picture: per-time-step "
                          "gradient norms", plots.gradient_profiles(snaps), caption, snaps, ids)
        return [fig, self._ratio_table(ratios), *self.flow(profiles, ids)]

    def flow(self, profiles: pd.DataFrame, ids: Sequence[str]) -> list[Any]:
        """The gradient-flow heatmap of the best configuration of each model."""
        flow = an.gradient_flow(an.memory_profiles(profiles))
        if flow.empty or flow["step"].nunique() < 2:
            return []
        columns = ["run_id", "model", "configuration"]
        if tracking.STEPS_TO_SOLVE in self.runs:
            columns.append(tracking.STEPS_TO_SOLVE)
        flow = flow.merge(self.runs[columns], on="run_id").rename(
            columns={tracking.STEPS_TO_SOLVE: "solved_step"})
        return [self.figure(
            "flow", "Gradient flow over training", plots.gradient_flow(flow),
            f"Each panel: one model's best configuration{where(self.longest)}, first final "
            f"seed. A row is one probe of the fixed probe batch (bottom: initialisation, then "
            f"every diagnostics.probe_every steps and after the last update); a cell is "
            f"log10 of ||dL/dh_t|| over ||dL/dh_T|| at that probe. Grey (0): the gradient "
            f"reaches step t undiminished; blue: it vanished on its way back (-3 = 1000 times "
            f"smaller); red: it grew. {read_at(self.task)} Read upwards to see when during "
            f"training gradients start to flow back to the early steps. A black line: the "
            f"first probe after the run met the task's solved rule on the validation set "
            f"(its steps to solve).", flow, ids)]

    def factors(self) -> list[Any]:
        """The two factors of the decay, per configuration, at initialisation and after:
        medians over the configuration's final seeds (the plain RNNs' seeds differ widely)."""
        runs = {c: ids for c in self.top["configuration"]
                if (ids := an.representative_runs(self.runs, c))}
        factors = self.source.tables([i for ids in runs.values() for i in ids],
                                     tracking.diagnostics_table("factors"))
        if factors.empty:
            return [Note("No two-factor diagnostics recorded for these runs (runs made "
                         "before diagnostics/factors.csv was logged).", "warn")]
        snaps = an.factor_snapshots(factors).merge(
            self.runs[["run_id", "configuration"]], on="run_id")
        medians = an.factor_medians(snaps)
        info = self.runs.drop_duplicates("configuration").set_index("configuration")
        paths = snaps.groupby("configuration")["path"].first()
        order = an.model_order(self.top["model"].astype(str))
        rows = []
        for configuration in runs:
            init = medians[(medians["configuration"] == configuration)
                           & (medians["when"] == "at initialisation")]
            if init.empty:
                continue
            end = medians[(medians["configuration"] == configuration)
                          & (medians["when"] == "after training")]
            r, e = init.iloc[0], (end.iloc[0] if len(end) else init.iloc[0])
            pair = [f"{num(r[k], 3)} -> {num(e[k], 3)}" for k in
                    ("w_log10_radius", "w_log10_norm", "act_log10", "predicted", "measured")]
            if e["runs"] > 1:
                pair[-1] += f" ({num(e['measured_low'], 3)} to {num(e['measured_high'], 3)})"
            model = str(info.loc[configuration, "model"])
            remedy = an.remedy_label(info.loc[configuration, "regularization"],
                                     info.loc[configuration, "clipping"])
            rows.append([model, remedy, str(paths[configuration]), *pair, str(int(e["runs"]))])
        rows.sort(key=lambda row: (order.index(row[0]) if row[0] in order else 99, row[1]))
        return [Table(
            "The two factors of the decay per step, at initialisation -> after training",
            ["model", "remedy", "path", "log10 rho(W_hh)", "log10 ||W_hh||_2", "f' factor",
             "predicted", "measured (range over runs)", "runs"], rows, model_column=0,
            caption="Per configuration" + where(self.longest) + ": the median over its final "
                    "seeds (runs: how many; the best tuning trial where there are none), in "
                    "decades per step of lag (negative: the gradient shrinks); the measured "
                    "decay after training also with its range over the seeds. The lecture's "
                    "dL/dW_r terms are W_r^(t-n) * prod f'(u_m): the W_r^t factor is log10 of "
                    "W_hh's spectral radius (its long-run rate; the norm bounds one step; the "
                    "largest gate block for LSTM and GRU), the f' factor the mean log10 "
                    "derivative on the path (tanh: 1 - h^2; ReLU: 0 over its active units; "
                    "LSTM: the forget gate f, GRU: the update gate z, on the cell path). "
                    "predicted: their sum (the gate alone for LSTM and GRU); measured: the "
                    "slope of log10 ||dL/dh_t||. Weight clipping and L2/decay act on the first "
                    "factor, ReLU and the gates on the second.")]

    def _ratio_table(self, ratios: pd.DataFrame) -> Table:
        pivot = ratios.pivot_table(index="model", columns="when", values="log10_ratio")
        rows = []
        for model in an.model_order(pivot.index.tolist()):
            r = pivot.loc[model]
            rows.append([model, num(r.get("at initialisation"), 3),
                         num(r.get("after training"), 3)])
        return Table("Gradient ratio first / last step", ["model", "log10 ratio at init",
                                                         "after training"], rows,
                     model_column=0,
                     caption="log10(||dL/dh_1|| / ||dL/dh_T||) of the lines above: -3 means "
                             "the gradient reaching the first step is 1000 times smaller "
                             "than at the last (vanishing); positive values mean growth.")

    def traces(self) -> list[Any]:
        picks = self.per_clip
        ids = self._first_runs(picks["configuration"])
        hist = self.source.steps(ids, "grad_norm", tracking.GRAD_NORM)
        if hist.empty:
            return [Note("No gradient-norm traces recorded for these runs.", "warn")]
        info = self.runs.set_index("run_id")
        hist["model"] = hist["run_id"].map(info["model"])
        hist["clipping"] = hist["run_id"].map(info["clipping"])
        hist["tau"] = hist["run_id"].map(info["clip"]) if "clip" in info else math.nan
        return [self.figure(
            "grad-norm", "Gradient norm during training, with the clipping threshold",
            plots.grad_norm_traces(hist),
            f"Global gradient norm before clipping at every training step; per model the "
            f"best configuration{where(self.longest)} of each clipping remedy (line style; "
            f"dotted: no clipping), first final seed. Spikes far above the rest are exploding "
            f"gradients; with norm clipping every step above the dashed threshold tau (tuned) "
            f"was rescaled to tau (value clipping clamps each entry, weight clipping bounds "
            f"W_hh instead: their thresholds are not gradient norms). A line that ends early "
            f"belongs to a run that diverged there.", hist, ids)]

    def curves(self) -> list[Any]:
        ids = [i for c in self.per_model["configuration"] for i in self.seeds.get(c, [])]
        hist = self.source.histories(ids, [tracking.VAL_LOSS, tracking.SPECTRAL_RADIUS])
        if hist.empty:
            return [Note("No learning curves recorded for these runs.", "warn")]
        info = self.runs.set_index("run_id")
        hist["model"] = hist["run_id"].map(info["model"])
        hist["configuration"] = hist["run_id"].map(info["configuration"])
        bands = []
        for _, r in self.per_model.iterrows():
            band = an.seed_band(hist[hist["configuration"] == r["configuration"]],
                                tracking.VAL_LOSS)
            seeds = plural(int(band["n"].max()) if len(band) else 0, "seed")
            label = f"{r['model']} ({r['remedy']}, {seeds})"
            bands.append(band.assign(model=r["model"], label=label))
        baseline = an.baseline_of(self.runs[self.runs["role"] == "final"])
        curves = self.figure(
            "learning-curves", "Learning curves of the best configuration of each model",
            plots.learning_curves(pd.concat(bands), baseline, "validation loss"),
            "Validation loss at the evaluation steps, mean over the final seeds (line) and "
            "from the lowest to the highest seed (band). The dotted line is the trivial "
            "predictor: a curve that stays on it has learned nothing; the gap between "
            "curves is the gap between the models.",
            hist[hist["key"] == tracking.VAL_LOSS], ids)
        radius = hist[hist["key"] == tracking.SPECTRAL_RADIUS]
        blocks: list[Any] = [curves]
        if len(radius):
            blocks.append(self.figure(
                "spectral-radius", "Spectral radius of the recurrent weights",
                plots.spectral_radius(radius), radius_caption(self.board["model"]), radius,
                ids))
        return [Row(blocks)]

    # -------------------------------------------------------------- tuning

    def tuning(self, importances: Importances | None, storage_note: str) -> list[Any]:
        trials = self.runs[self.runs["role"] == "trial"]
        trials = an.at_seq_len(trials, self.longest) if pd.notna(self.longest) else trials
        frame = an.best_so_far(trials)
        blocks: list[Any] = []
        budget = expected_counts(self.results.config)["trials"]
        if frame["best"].notna().any():
            blocks.append(self.figure(
                "best-so-far", "Best value so far against trials", plots.best_so_far(frame),
                f"Per configuration{where(self.longest)} (panel: model; line style: clipping "
                f"remedy, marker: regularization remedy), "
                f"the lowest final validation loss among its tuning trials up to that trial "
                f"(complete trials only: pruned and diverged trials set no value, so a line "
                f"starts at its first complete trial). A line still falling at the last trial "
                f"means the budget ({budget or '?'} trials) was too small to converge.",
                frame, list(trials["run_id"])))
        else:
            blocks.append(Note("No complete tuning trial yet: no best-so-far curve.", "warn"))
        blocks += self._importance(importances, storage_note)
        return blocks

    def _importance(self, importances: Importances | None, storage_note: str) -> list[Any]:
        from bench.tuning import IMPORTANCE_EVALUATOR

        if importances is None:
            reason = storage_note or "the Optuna storage is not reachable"
            return [Note(f"Hyperparameter importance not shown: {reason}.", "warn")]
        mine = {c: v for c, v in importances.items()
                if c in set(an.at_seq_len(self.board, self.longest)["configuration"])}
        table, notes = an.importance_table(mine, self.board)
        blocks: list[Any] = []
        if len(table):
            blocks.append(self.figure(
                "importance", "Hyperparameter importance", plots.importance_heatmap(table),
                f"Share of the difference between the best tuning trials and the rest that "
                f"each hyperparameter explains, per configuration{where(self.longest)}; rows "
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

    # -------------------------------------------------------------- sweep, HAR, tests

    def sweep(self) -> list[Any]:
        grid = an.longest_solved(self.board)
        rows = [[model] + [f"T = {t_label(grid.loc[model, c])}" if pd.notna(grid.loc[model, c])
                           else "none" for c in grid.columns] for model in grid.index]
        ts = ", ".join(t_label(t) for t in self._seq_lens())
        table = Table("Longest T solved", ["model", *grid.columns], rows, model_column=0,
                      caption=f"The longest sequence length (of {ts}) at which at least half "
                              f"the final seeds of the configuration meet the solved rule "
                              f"({an.solved_rule(self.task)}); 'none': not even the "
                              f"shortest.")
        scored = self.board[self.board["normalized"].notna()]
        fig = self.figure(
            "sweep", "Normalised score against T", plots.seq_len_sweep(scored),
            "Test loss / baseline against the sequence length, per remedy (panel) and model "
            "(colour). Lines that climb to the dotted baseline as T grows mark the length "
            "where the model stops carrying information across the sequence.",
            scored.reindex(columns=[c for c in BOARD_COLUMNS if c in scored]),
            configurations=scored["configuration"])
        return [table, fig]

    def classes(self) -> list[Any]:
        ranked = self.top[self.top["rank"].notna()]
        if ranked.empty:
            return [Note(f"No finished {self.task} configuration yet.", "warn")]
        best = ranked.iloc[0]
        rows = self.source.tables(self.seeds.get(best["configuration"]) or
                                  an.representative_runs(self.runs, best["configuration"]),
                                  tracking.CONFUSION_TABLE)
        if rows.empty:
            return [Note(f"No confusion matrix was recorded for the best {self.task} "
                         "configuration "
                         "(runs made before test/confusion.csv was logged).", "warn")]
        matrix = an.confusion_matrix(rows)
        scores = an.per_class_f1(matrix)
        n = rows["run_id"].nunique()
        who = f"{best['model']} with {best['remedy']}"
        ids = list(rows["run_id"].unique())
        return [Row([
            self.figure(
                "confusion", f"Confusion matrix: {who}", plots.confusion_heatmap(matrix),
                f"Test windows of each true activity (row) by predicted activity (column), "
                f"summed over {n} final seed(s); share of the row and count. The diagonal is "
                f"correct; off-diagonal blocks show which activities are confused.", rows, ids),
            self.figure(
                "f1", f"Per-class F1: {who}", plots.f1_bars(scores, str(best["model"])),
                f"F1 = harmonic mean of precision and recall per activity, from the confusion "
                f"matrix; macro-F1 = {scores['f1'].mean():.3f}.",
                scores, ids)])]

    def literature(self) -> list[Any]:
        """Published results on this task (``literature.yaml``), ours beside the comparable
        ones."""
        from bench.report import literature

        entries = literature.for_task(self.task)
        if not entries:
            return []
        rows = []
        for e in entries:
            rows.append([e.model, "-" if e.seq_len is None else str(e.seq_len), e.metric,
                         "figure only" if e.value is None else
                         f"{e.value:,}" if float(e.value).is_integer() else num(e.value),
                         self._ours(e) if e.comparable else "not comparable",
                         f"{e.source} {e.where}. {e.url}", e.setting, e.note])
        return [Heading("Published results", f"{self.key}-literature"), Table(
            "Published results on this task", ["model", "T", "metric", "published", "ours",
                                               "source", "setting", "what differs"], rows,
            wrap=True,
            caption="Read from each source (bench/report/literature.yaml; no number from "
                    "memory). ours: this suite's best configuration of the same model at the "
                    "same T, mean test metric over its final seeds, where the published "
                    "setting matches this task, T and metric; 'not comparable' where it "
                    "does not (see what differs).")]

    def _ours(self, entry: Any) -> str:
        model = entry.model.split()[0].strip(";,").lower()
        board = self.board[(self.board["model"] == model) & (self.board["metric"] ==
                                                             entry.metric)]
        if entry.seq_len is not None:
            board = board[board["seq_len"] == entry.seq_len]
        ranked = an.best_rows(board, ["model"]) if len(board) else board
        if ranked.empty or pd.isna(ranked["mean"].iloc[0]):
            return "-"
        r = ranked.iloc[0]
        return f"{num(r['mean'])} ({r['model']}, {r['remedy']})"

    def significance(self) -> list[Any]:
        table = an.significance(self.top, self.runs)
        if table.empty:
            return [Note("Only one configuration has final results: nothing to compare.")]
        n_best = int(table["n_best"].iloc[0])
        rows = [[str(r["other"]), str(r["model"]), f"{r['n_best']} / {r['n_other']}",
                 num(r["diff"]), f"[{num(r['ci_low'])}, {num(r['ci_high'])}]", num(r["p"], 3),
                 str(r["verdict"])] for _, r in table.iterrows()]
        min_p = float(table["min_p"].min())
        advice = (": no difference can reach p < 0.05 ('too few seeds to test'); raise "
                  "final.seeds (5 seeds per side can reach p = 0.008)." if min_p >= an.ALPHA
                  else "; few seeds still miss small real gaps ('no detectable difference' "
                  "is not 'equal').")
        return [Table(
            f"Best configuration ({table['best'].iloc[0]}) against each other one",
            ["other configuration", "model", "seeds best / other",
             f"difference of mean {self.metric} (other - best)", "95% bootstrap CI",
             "permutation p", "verdict"], rows, model_column=1,
            caption=f"On the final seeds' test {self.metric}{where(self.longest)}. Test: "
                    f"two-sided permutation test of equal means (exact over every split of the "
                    f"pooled seeds), alpha = 0.05; interval: 95% percentile bootstrap of the "
                    f"difference (2,000 resamples of each group). With {n_best} seeds for "
                    f"the best configuration the smallest attainable p here is {min_p:.3g}"
                    f"{advice}")]


def read_at(task: str) -> str:
    """Where the task's loss reads the hidden states (its record's ``read_at``)."""
    info = an.task_info(task)
    return info.read_at if info is not None else ""
