"""One task's results: the summary notes, the leaderboard and its heat map, the T sweep, the
HAR classes, published results and the significance table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.names import CONFUSION_TABLE
from bench.report import analysis as an
from bench.report import facts, plots
from bench.report import leaderboard as lb
from bench.report import statistics as st
from bench.report.formatting import duration, num, pct, spread, status_class, t_label, where
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
    for _, r in view.board.iterrows():
        mean = f"{num(r['mean'])} ± {num(r['std'])}" if r["n_values"] > 1 \
            else num(r["mean"])
        ci = f"[{num(r['ci_low'])}, {num(r['ci_high'])}]" if pd.notna(r["ci_low"]) else "-"
        expected = lb.expected_counts(view.results.config)
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
    better = "higher" if view.maximize else "lower"
    table = Table(
        f"Leaderboard: all {len(view.board)} configurations",
        ["#", "T", "model", "remedy", "status", f"test {view.metric} mean ± std",
         "95% CI", "score / baseline", "solved", "diverged", "steps to solve", "seeds",
         "trials c/p/f", "time"], rows, row_classes=classes, model_column=2,
        links=view.parent_links(), link_column=3,
        caption=f"Ranked best first within each T by the mean test {view.metric} over "
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
    grids = {f"T = {t_label(t)}" if pd.notna(t) else view.task:
             lb.score_grid(lb.at_seq_len(view.board, t))
             for t in view.seq_lens()}
    heat = view.figure(
        "score-heatmap", "Normalised score: model x remedy", plots.score_heatmap(grids),
        "Each cell: test loss / baseline loss (the trivial predictor), mean over final "
        "seeds. Blue (< 1) beats the baseline, white (= 1) learned nothing beyond it, red "
        "(> 1) is worse than it. Read a row to see what the remedies do for one model, "
        "a column to compare models under one remedy. Grey 'no result': no finished "
        "seed (diverged, still running or not run).",
        pd.concat([g.stack().rename("normalized").reset_index().assign(T=t)
                   for t, g in grids.items()]),
        configurations=view.board["configuration"])
    return [table, heat]


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
            "confusion", f"Confusion matrix: {who}", plots.confusion_heatmap(matrix),
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
    for e in entries:
        rows.append([e.model, "-" if e.seq_len is None else str(e.seq_len), e.metric,
                     "figure only" if e.value is None else
                     f"{e.value:,}" if float(e.value).is_integer() else num(e.value),
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
    return f"{num(r['mean'])} ({r['model']}, {r['remedy']})"


def significance(view: TaskView) -> list[Any]:
    """The best configuration at the longest T against each other one (``statistics``)."""
    table = st.significance(view.top, view.runs)
    if table.empty:
        return [Note("Only one configuration has final results: nothing to compare.")]
    n_best = int(table["n_best"].iloc[0])
    rows = [[str(r["other"]), str(r["model"]), f"{r['n_best']} / {r['n_other']}",
             num(r["diff"]), f"[{num(r['ci_low'])}, {num(r['ci_high'])}]", num(r["p"], 3),
             str(r["verdict"])] for _, r in table.iterrows()]
    min_p = float(table["min_p"].min())
    advice = (": no difference can reach p < 0.05 ('too few seeds to test'); raise "
              "final.seeds (5 seeds per side can reach p = 0.008)." if min_p >= st.ALPHA
              else "; few seeds still miss small real gaps ('no detectable difference' "
              "is not 'equal').")
    return [Table(
        f"Best configuration ({table['best'].iloc[0]}) against each other one",
        ["other configuration", "model", "seeds best / other",
         f"difference of mean {view.metric} (other - best)", "95% bootstrap CI",
         "permutation p", "verdict"], rows, model_column=1,
        caption=f"On the final seeds' test {view.metric}{where(view.longest)}. Test: "
                f"two-sided permutation test of equal means (exact over every split of the "
                f"pooled seeds), alpha = 0.05; interval: 95% percentile bootstrap of the "
                f"difference (2,000 resamples of each group). With {n_best} seeds for "
                f"the best configuration the smallest attainable p here is {min_p:.3g}"
                f"{advice}")]
