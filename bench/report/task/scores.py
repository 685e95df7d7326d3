"""One task's results: the summary notes, the leaderboard and its heat map, the T sweep, the
HAR classes, published results and the significance table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.names import CONFUSION_TABLE
from bench.report import analysis as an
from bench.report import facts, heatmaps, plots
from bench.report import leaderboard as lb
from bench.report import statistics as st
from bench.report.formatting import (
    duration,
    num,
    number_format,
    pct,
    spread,
    status_class,
    t_label,
    where,
)
from bench.report.html import Heading, Note, Row, Table
from bench.report.literature import for_task
from bench.report.task.view import TaskView

# ------------------------------------------------------------------------------ summary


def summary(view: TaskView) -> list[Note]:
    """The notes that open the section: headline metric, baselines, winner, what is not done."""
    notes: list[Note] = []
    better = "higher" if view.maximize else "lower"
    ts = ", ".join(t_label(t) for t in sorted(view.board["seq_len"].dropna().unique()))
    baseline = an.baseline_of(view.runs[view.runs["role"] == "final"])
    notes.append(Note(f"Headline metric: test {view.metric} ({better} is better); solved: "
                      f"{facts.solved_rule(view.task)}; baseline loss "
                      f"(trivial predictor): {num(baseline)}"
                      + (f"; T tried: {ts}." if ts else ".")))
    notes.append(baselines(view))
    ranked = view.top[view.top["rank"].notna()]
    if len(ranked):
        r = ranked.iloc[0]
        notes.append(Note(
            f"Winner{where(view.longest)}: {r['model']} with {r['remedy']} "
            f"(test {view.metric} {spread(r)}, {num(r['normalized'], 3)} x baseline, "
            f"solved {pct(r['solved_rate'])})."))
    pending = view.board[~view.board["status"].isin(("done",))]
    if len(pending):
        counts = ", ".join(f"{n} {s}" for s, n in pending["status"].value_counts().items())
        notes.append(Note(f"Not every configuration is done: {counts}. They are listed "
                          f"and marked below.", "warn"))
    return notes


def baselines(view: TaskView) -> Note:
    """The trivial predictor: analytic (the task record's words) beside what it scores
    on the fixed validation and test sets (score / baseline divides by the test one)."""
    info = facts.task_info(view.task)
    parts = []
    for t in view.seq_lens():
        b = an.empirical_baselines(view.runs, view.task, t, view.metric)
        parts.append(f"{'T = ' + t_label(t) + ': ' if pd.notna(t) else ''}validation loss "
                     f"{num(b['val_loss'])}, {view.metric} {num(b['val_' + view.metric])}; "
                     f"test loss {num(b['test_loss'])}, {view.metric} "
                     f"{num(b['test_' + view.metric])}")
    analytic = info.baseline if info is not None else "see the task"
    return Note(f"Baseline (trivial predictor): analytic {analytic}; measured on the fixed "
                f"sets: {'; '.join(parts)}. A diverged final seed counts with the "
                f"trivial predictor's test score.")


# ------------------------------------------------------------------------------ leaderboard


def leaderboard(view: TaskView) -> list[Any]:
    """Every configuration of the task, ranked, and the model x remedy heat map."""
    rows, classes = [], []
    previous: str | None = None
    board = view.board
    spread_of = number_format([*board["mean"], *board["std"]])
    ci_of = number_format([*board["ci_low"], *board["ci_high"]])
    score_of = number_format(board["normalized"], 3)
    steps_of = number_format(board.get("steps_to_solve", pd.Series(dtype=float)))
    for _, r in board.iterrows():
        mean = f"{spread_of(r['mean'])} ± {spread_of(r['std'])}" if r["n_values"] > 1 \
            else spread_of(r["mean"])
        ci = f"[{ci_of(r['ci_low'])}, {ci_of(r['ci_high'])}]" if pd.notna(r["ci_low"]) else "-"
        expected = lb.expected_counts(view.results.config)
        of = f" of {expected['trials']}" if expected["trials"] else ""
        rows.append([
            "-" if pd.isna(r["rank"]) else str(int(r["rank"])), t_label(r["seq_len"]),
            str(r["model"]), str(r["remedy"]), str(r["status"]),
            mean, ci, score_of(r["normalized"]),
            _solved(r), pct(r["diverged_rate"]),
            steps_of(r.get("steps_to_solve", math.nan)), str(r["seeds"]),
            f"{r['complete']}/{r['pruned']}/{r['failed']}{of}"
            + (f" +{r['running']} running" if r["running"] else ""),
            duration(float(r["time_s"]))])
        cls = status_class(str(r["status"])) if r["status"] != "done" else \
            ("best" if r["rank"] == 1 else "")
        key = t_label(r["seq_len"])
        classes.append(f"{cls} group-start" if previous not in (None, key) else cls)
        previous = key
    table = Table(
        f"Leaderboard: all {len(view.board)} configurations",
        ["#", "T", "model", "remedy", "status", f"test {view.metric} mean ± std",
         "95% CI", "score / baseline", "solved", "diverged", "steps to solve", "seeds",
         "trials c/p/f", "time"], rows, row_classes=classes, model_column=2, keys=4,
        links=view.parent_links(), link_column=3,
        caption=_board_caption(view))
    grids = {f"T = {t_label(t)}" if pd.notna(t) else view.task:
             lb.score_grid(lb.at_seq_len(view.board, t))
             for t in view.seq_lens()}
    heat = view.figure(
        "score-heatmap", "Normalised score: model x remedy", heatmaps.score_heatmap(grids),
        "Each cell: test loss / baseline loss (the trivial predictor), mean over final "
        "seeds. Blue (< 1) beats the baseline, white (= 1) learned nothing beyond it, red "
        "(> 1) is worse than it. Read a row to see what the remedies do for one model, "
        "a column to compare models under one remedy. Grey 'no result': no finished "
        "seed (diverged, still running or not run).",
        pd.concat([g.stack().rename("normalized").reset_index().assign(T=t)
                   for t, g in grids.items()]),
        configurations=view.board["configuration"])
    return [table, heat]


def _board_caption(view: TaskView) -> str:
    """How to read the leaderboard's columns."""
    better = "higher" if view.maximize else "lower"
    return (f"Ranked best first within each T by the mean test {view.metric} over "
            f"all final seeds ({better} is better; a diverged seed counts with the "
            f"trivial predictor's score, and every score is capped at it). steps to "
            f"solve: median, over the seeds that solved, of the first evaluation step "
            f"whose validation metrics met the solved rule. "
            "± std: sample standard deviation "
            "over seeds; 95% CI: Student-t interval of the mean (needs 2 seeds; clipped "
            "to the metric's range, e.g. MSE >= 0, accuracy <= 1). "
            "score / baseline: test loss / the trivial predictor's loss on the same test "
            "set (< 1 beats it). "
            "solved / diverged: share of final seeds that meet the solved rule / whose "
            "loss became NaN or Inf or ended above training.diverge_factor (default 10) "
            "times the trivial predictor's; beside solved, its exact 95% (Clopper-Pearson) "
            "interval: 3 of 3 seeds solved is compatible with a true rate of 0.29; "
            "where the seeds split into solved and unsolved ones, the mean lies between "
            "two clusters and its t-interval is rough: read the solved rate then. "
            "trials c/p/f: tuning trials complete / pruned / failed (diverged or "
            "interrupted) of the budget. time: wall time of all its runs. Yellow rows "
            "are still running, red ones diverged, grey ones stopped before the end.")


def _solved(row: pd.Series) -> str:
    """The solved rate and its exact 95% interval (``statistics.clopper_pearson``)."""
    if pd.isna(row["solved_rate"]):
        return "-"
    return f"{pct(row['solved_rate'])} [{pct(row['solved_low'])}, {pct(row['solved_high'])}]"


def sweep(view: TaskView) -> list[Any]:
    """The longest T each configuration solves, and the normalised score against T."""
    grid = lb.longest_solved(view.board)
    rows = [[model] + [f"T = {t_label(grid.loc[model, c])}" if pd.notna(grid.loc[model, c])
                       else "none" for c in grid.columns] for model in grid.index]
    ts = ", ".join(t_label(t) for t in view.seq_lens())
    table = Table("Longest T solved", ["model", *grid.columns], rows, model_column=0,
                  caption=f"The longest sequence length (of {ts}) at which at least half "
                          f"the final seeds of the configuration meet the solved rule "
                          f"({facts.solved_rule(view.task)}); 'none': not even the "
                          f"shortest.")
    scored = view.board[view.board["normalized"].notna()]
    fig = view.figure(
        "sweep", "Normalised score against T", plots.seq_len_sweep(scored),
        "Test loss / baseline against the sequence length, per remedy (panel) and model "
        "(colour). Lines that climb to the dotted baseline as T grows mark the length "
        "where the model stops carrying information across the sequence.",
        scored.reindex(columns=[c for c in lb.BOARD_COLUMNS if c in scored]),
        configurations=scored["configuration"])
    return [table, fig]


# ------------------------------------------------------------------------------ extras


def classes(view: TaskView) -> list[Any]:
    """A classification task's best configuration: confusion matrix and per-class F1."""
    ranked = view.top[view.top["rank"].notna()]
    if ranked.empty:
        return [Note(f"No finished {view.task} configuration yet.", "warn")]
    best = ranked.iloc[0]
    rows = view.source.tables(view.seeds.get(best["configuration"]) or
                              an.representative_runs(view.runs, best["configuration"]),
                              CONFUSION_TABLE)
    if rows.empty:
        return [Note(f"No confusion matrix was recorded for the best {view.task} "
                     "configuration "
                     "(runs made before test/confusion.csv was logged).", "warn")]
    matrix = an.confusion_matrix(rows)
    scores = an.per_class_f1(matrix)
    n = rows["run_id"].nunique()
    who = f"{best['model']} with {best['remedy']}"
    ids = list(rows["run_id"].unique())
    return [Row([
        view.figure(
            "confusion", f"Confusion matrix: {who}", heatmaps.confusion_heatmap(matrix),
            f"Test windows of each true activity (row) by predicted activity (column), "
            f"summed over {n} final seed(s); share of the row and count. The diagonal is "
            f"correct; off-diagonal blocks show which activities are confused.", rows, ids),
        view.figure(
            "f1", f"Per-class F1: {who}", plots.f1_bars(scores, str(best["model"])),
            f"F1 = harmonic mean of precision and recall per activity, from the confusion "
            f"matrix; macro-F1 = {scores['f1'].mean():.3f}.",
            scores, ids)])]


def literature(view: TaskView) -> list[Any]:
    """Published results on this task (``literature.yaml``), ours beside the comparable
    ones."""
    entries = for_task(view.task)
    if not entries:
        return []
    rows = []
    published = number_format(e.value for e in entries if e.value is not None)
    for e in entries:
        rows.append([e.model, "-" if e.seq_len is None else str(e.seq_len), e.metric,
                     "figure only" if e.value is None else
                     f"{e.value:,}" if float(e.value).is_integer() else published(e.value),
                     _ours(view, e) if e.comparable else "not comparable",
                     f"{e.source} {e.where}. {e.url}", e.setting, e.note])
    return [Heading("Published results", f"{view.key}-literature"), Table(
        "Published results on this task", ["model", "T", "metric", "published", "ours",
                                           "source", "setting", "what differs"], rows,
        wrap=True,
        caption="Read from each source (bench/report/literature.yaml; no number from "
                "memory). ours: this suite's best configuration of the same model at the "
                "same T, mean test metric over its final seeds, where the published "
                "setting matches this task, T and metric; 'not comparable' where it "
                "does not (see what differs).")]


def _ours(view: TaskView, entry: Any) -> str:
    """Our best result for a published entry's model, T and metric, or '-'."""
    model = entry.model.split()[0].strip(";,").lower()
    board = view.board[(view.board["model"] == model) & (view.board["metric"] ==
                                                         entry.metric)]
    if entry.seq_len is not None:
        board = board[board["seq_len"] == entry.seq_len]
    ranked = lb.best_rows(board, ["model"]) if len(board) else board
    if ranked.empty or pd.isna(ranked["mean"].iloc[0]):
        return "-"
    r = ranked.iloc[0]
    return f"{number_format(view.board['mean'])(r['mean'])} ({r['model']}, {r['remedy']})"


def significance(view: TaskView) -> list[Any]:
    """The best configuration at the longest T against each other one (``statistics``)."""
    table = st.significance(view.top, view.runs)
    if table.empty:
        return [Note("Only one configuration has final results: nothing to compare.")]
    diff_of = number_format(table["diff"])
    ci_of = number_format([*table["ci_low"], *table["ci_high"]])
    p_of = number_format([*table["p"], *table["p_holm"], *table["min_p"]], 3)
    rows = [[str(r["other"]), str(r["model"]), f"{r['n_best']} / {r['n_other']}",
             f"{r['test']} ({r['n']} {'pairs' if r['test'] == 'paired' else 'per side'})",
             diff_of(r["diff"]), f"[{ci_of(r['ci_low'])}, {ci_of(r['ci_high'])}]",
             p_of(r["p"]), p_of(r["p_holm"]), p_of(r["min_p"]), str(r["verdict"]),
             str(r["why"])] for _, r in table.iterrows()]
    m = len(table)
    reach = (f"; no comparison here can reach p < {st.ALPHA:g} once Holm's "
             f"correction multiplies its smallest p by {m} ('too few seeds to test'): "
             f"raise final.seeds" if (table["verdict"] == st.TOO_FEW).all() else
             "; few seeds still miss small real gaps ('no detectable difference' is not "
             "'equal')")
    return [Table(
        f"Best configuration ({table['best'].iloc[0]}) against each other one",
        ["other configuration", "model", "seeds best / other", "test",
         f"difference of mean {view.metric} (other - best)", "95% t CI", "p", "Holm p",
         "smallest p at this n", "verdict", "why this test"], rows, model_column=1,
        wrap=True,
        caption=f"On the final seeds' test {view.metric}{where(view.longest)}, alpha = "
                f"{st.ALPHA:g}. Tests, two-sided and exact: paired, a sign-flip test on the "
                f"differences of the seeds both configurations ran (one model: seed i "
                f"starts both from the same weights and batches); independent, a "
                f"permutation test over every split of the pooled seeds. The paired test "
                f"is used where its smallest p, 2 / 2^n, reaches alpha / {m} (Holm's "
                f"strictest step here), else the test whose smallest p is lower; the "
                f"choice reads the numbers of seeds, never their values. Holm p: adjusted "
                f"for the {m} comparisons of this table; the verdict reads it. 95% t CI: "
                f"the Student-t interval of the mean paired difference, or Welch's of the "
                f"difference of means (no bootstrap: at 3-5 seeds it has a few dozen "
                f"distinct resamples). smallest p at this n: the lowest p the test can "
                f"give with these seeds, whatever the values{reach}.")]
