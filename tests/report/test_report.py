"""The report: analysis on hand-made frames, a report of a real suite, a suite with diverged
and running configurations, and the page opened in a real (headless) browser."""

from __future__ import annotations

import base64
import html
import math
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from bench import config, tracking, tuning
from bench.cli.main import main
from bench.report import analysis as an
from bench.report import facts
from bench.report import leaderboard as lb
from bench.report import statistics as st
from bench.run import suite as suites

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ------------------------------------------------------------------------------ hand-made frames


def _run(configuration: str, role: str, **values: Any) -> dict[str, Any]:
    task_t, model, reg, clip = configuration.split("/")
    task, _, t = task_t.partition("-T")
    row = {"run_id": f"{configuration}:{role}:{values.get('seed', values.get('trial_number'))}",
           "role": role, "configuration": configuration, "task": task,
           "seq_len": int(t) if t else pd.NA, "model": model, "regularization": reg,
           "clipping": clip, "status": "FINISHED", "state": "complete", "metric": "",
           "direction": "", "solved": False, "duration_s": 1.0, "seed": pd.NA,
           "trial_number": pd.NA}
    row.update(values)
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("seq_len", "seed", "trial_number"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _suite(metric: str, direction: str, values: dict[str, list[float]]) -> pd.DataFrame:
    """Parents + two tuning trials + final seeds with the given test values per config."""
    rows = []
    for configuration, seeds in values.items():
        rows.append(_run(configuration, "configuration", state=""))
        for n in range(2):
            rows.append(_run(configuration, "trial", trial_number=n, **{"val/loss": 1.0 - n}))
        for i, v in enumerate(seeds):
            rows.append(_run(configuration, "final", seed=1000 + i, metric=metric,
                             direction=direction, **{f"test/{metric}": v,
                                                     "test/normalized": v / 0.5}))
    return _frame(rows)


def test_mean_ci_uses_student_t() -> None:
    mean, std, low, high = st.mean_ci([1.0, 2.0, 6.0])  # uneven: the median would be 2
    assert mean == pytest.approx(3.0) and std == pytest.approx(math.sqrt((4 + 1 + 9) / 2))
    assert (high - mean) * math.sqrt(3) / std == pytest.approx(4.303, abs=5e-4)  # t table
    assert low == pytest.approx(2 * mean - high)
    one = st.mean_ci([0.5])
    assert one[0] == 0.5 and all(math.isnan(v) for v in one[1:])
    assert all(math.isnan(v) for v in st.mean_ci([]))
    assert st.t_quantile(1000) == pytest.approx(1.962, abs=0.005)


def test_leaderboard_ranks_by_the_metric_direction() -> None:
    # three uneven seeds: a median (0.02) or a population std would show
    mse = lb.leaderboard(_suite("mse", "minimize", {
        "adding-T10/rnn/none/none": [0.2, 0.3, 0.25],
        "adding-T10/lstm/none/none": [0.01, 0.02, 0.06]}), {"trials": 2, "seeds": 3})
    assert mse["model"].tolist() == ["lstm", "rnn"]
    assert mse["rank"].tolist() == [1, 2]
    best = mse.iloc[0]
    assert best["mean"] == pytest.approx(0.03)
    assert best["std"] == pytest.approx(math.sqrt((0.02**2 + 0.01**2 + 0.03**2) / 2))
    assert best["normalized"] == pytest.approx(0.06)  # each seed's test/normalized: v / 0.5
    assert best["status"] == "done" and best["complete"] == 2 and best["seeds"] == 3

    acc = lb.leaderboard(_suite("acc", "maximize", {
        "har/rnn/none/none": [0.6, 0.7], "har/lstm/none/none": [0.9, 0.92]}))
    assert acc["model"].tolist() == ["lstm", "rnn"]  # higher accuracy first
    assert acc["seq_len"].isna().all()
    grid = lb.score_grid(acc)
    assert grid.loc["lstm", "none"] == pytest.approx(1.82)


def test_leaderboard_marks_diverged_running_and_unfinished() -> None:
    rows = [
        _run("adding-T10/rnn/none/none", "configuration", state="", status="RUNNING"),
        *[_run("adding-T10/rnn/none/none", "trial", trial_number=n, state="diverged",
               status="FAILED") for n in range(2)],
        _run("adding-T10/irnn/none/none", "configuration", state="", status="RUNNING"),
        _run("adding-T10/irnn/none/none", "trial", trial_number=0, **{"val/loss": 0.2}),
        _run("adding-T10/irnn/none/none", "trial", trial_number=1, state="running",
             status="RUNNING"),
        _run("adding-T10/gru/none/none", "configuration", state=""),
        _run("adding-T10/gru/none/none", "trial", trial_number=0, **{"val/loss": 0.1}),
        *[_run("adding-T10/gru/none/none", "final", seed=s, state="diverged", status="FAILED",
               metric="mse", direction="minimize") for s in (1, 2)],
        _run("adding-T10/lstm/none/none", "configuration", state="", status="RUNNING"),
    ]
    board = lb.leaderboard(_frame(rows), {"trials": 2, "seeds": 2}).set_index("model")
    assert board.loc["rnn", "status"] == "all trials diverged"
    assert board.loc["rnn", "failed"] == 2
    assert board.loc["irnn", "status"] == "running" and board.loc["irnn", "running"] == 1
    assert board.loc["gru", "status"] == "diverged" and board.loc["gru", "diverged_rate"] == 1
    assert board.loc["lstm", "status"] == "not started"
    assert board["rank"].isna().all()  # nothing has a test result
    assert lb.best_rows(board.reset_index(), ["model"])["model"].tolist() == ["gru", "irnn"]


def test_a_diverged_seed_counts_with_the_trivial_predictors_score() -> None:
    config = "adding-T10/irnn/none/norm"
    rows = [_run(config, "configuration", state=""),
            _run(config, "trial", trial_number=0, **{"val/loss": 0.1}),
            _run(config, "final", seed=1, metric="mse", direction="minimize", solved=True,
                 **{"test/mse": 0.01, "test/normalized": 0.06, "val/steps_to_solve": 200.0,
                    "baseline/test_loss": 0.17, "baseline/test_mse": 0.17}),
            _run(config, "final", seed=2, metric="mse", direction="minimize",
                 **{"test/mse": 0.03, "test/normalized": 0.18, "val/steps_to_solve": 400.0}),
            _run(config, "final", seed=3, state="diverged", status="FAILED", metric="mse",
                 direction="minimize", **{"test/mse": 0.17, "test/normalized": 1.0})]
    frame = _frame(rows)
    row = lb.leaderboard(frame, {"trials": 1, "seeds": 3}).iloc[0]
    assert row["seeds"] == 3 and row["n_values"] == 3  # none dropped
    assert row["mean"] == pytest.approx((0.01 + 0.03 + 0.17) / 3)
    assert row["diverged_rate"] == pytest.approx(1 / 3)
    assert row["normalized"] == pytest.approx((0.06 + 0.18 + 1.0) / 3)
    assert row["steps_to_solve"] == 200.0  # seed 2 met the rule on validation only
    assert st.seed_scores(frame, config, "mse") == pytest.approx({1: 0.01, 2: 0.03, 3: 0.17})
    assert an.baseline_of(frame[frame["role"] == "final"]) == 0.17
    measured = an.empirical_baselines(frame, "adding", 10, "mse")
    assert measured["test_loss"] == 0.17 and math.isnan(measured["val_loss"])


def test_the_report_and_the_terminal_count_the_same_seeds_alike() -> None:
    """The same final seeds, as MLflow runs (the report) and as Optuna trial records (the
    terminal, ``gradbench status``): one computation (``bench.board``) gives both rows."""
    configuration = config.expand(config.load("smoke", {}))[0]
    # the second seed met the rule on validation (at 500) and missed it on the test set: its
    # step does not count
    seeds = [("complete", 0.12, True, 300.0), ("complete", 0.31, False, 500.0),
             ("diverged", 0.52, False, None), ("complete", 0.09, True, 100.0)]
    rows = [_run(configuration.name, "configuration", state=""),
            *[_run(configuration.name, "final", seed=i, state=state, metric="mse",
                   direction="minimize", solved=solved,
                   **{"test/mse": score},
                   **({"val/steps_to_solve": at} if at is not None else {}))
              for i, (state, score, solved, at) in enumerate(seeds)]]
    report = lb.leaderboard(_frame(rows)).iloc[0]
    finals = [tuning.TrialRecord(i, state, None, {}, {
        "metric": "mse", "direction": "minimize", "test": {"mse": score}, "solved": solved,
        **({"solved_at": int(at)} if at is not None else {})})
        for i, (state, score, solved, at) in enumerate(seeds)]
    terminal = suites.board_row(configuration, [], finals)
    for key in ("mean", "std", "seeds", "solved_rate", "diverged_rate", "steps_to_solve"):
        assert report[key] == terminal[key], key
    assert (terminal["seeds"], terminal["solved_rate"], terminal["steps_to_solve"]) == \
        (4, 0.5, 200.0)


def test_permutation_test_and_t_interval_of_the_difference() -> None:
    assert st.permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)  # exact, two-sided
    assert st.permutation_p([1, 2, 3], [1, 2, 3]) == 1.0
    assert st.min_attainable_p(2, 2) == pytest.approx(1 / 3)
    assert st.min_attainable_p(5, 5) == pytest.approx(2 / 252)
    assert math.isnan(st.permutation_p([], [1.0]))
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 40), rng.normal(3, 1, 40)  # many seeds: sampled, not enumerated
    assert st.permutation_p(a, b) < 0.001
    low, high = st.welch_interval(a, b)
    assert low < b.mean() - a.mean() < high and low > 2
    assert st.verdict(0.3, 1 / 3) == "too few seeds to test"
    assert st.verdict(0.004, 2 / 252) == "best is better"
    # 4 seeds a side reach 2/70 = 0.029 alone, 0.086 after Holm among 3: nothing can reject
    assert st.verdict(0.0286, 2 / 70) == "best is better"
    assert st.verdict(0.0857, 2 / 70, comparisons=3) == "too few seeds to test"
    assert st.verdict(0.024, 2 / 252, comparisons=3) == "best is better"


def test_significance_compares_the_best_with_the_rest() -> None:
    runs = _suite("mse", "minimize", {
        "adding-T10/lstm/none/none": [0.01, 0.011, 0.012, 0.009, 0.010],
        "adding-T10/rnn/none/none": [0.2, 0.21, 0.19, 0.2, 0.22],
        "adding-T10/gru/none/none": [0.0105, 0.0098, 0.011, 0.012, 0.0095]})
    table = st.significance(lb.leaderboard(runs), runs).set_index("model")
    assert set(table["best"]) == {"adding-T10/lstm/none/none"}
    assert table.loc["rnn", "verdict"] == "best is better" and table.loc["rnn", "diff"] > 0
    assert table.loc["gru", "verdict"] == "no detectable difference"
    assert table.loc["rnn", "ci_low"] <= table.loc["rnn", "diff"] <= table.loc["rnn", "ci_high"]


def test_four_seeds_a_side_cannot_reject_among_three_comparisons() -> None:
    """2 / C(8, 4) = 0.029 per test, 0.086 after Holm over 3: however far apart the values,
    no verdict can say better, and the table says why."""
    runs = _suite("mse", "minimize", {
        "adding-T10/lstm/none/none": [0.01, 0.011, 0.012, 0.009],
        "adding-T10/rnn/none/none": [0.2, 0.21, 0.19, 0.22],
        "adding-T10/irnn/none/none": [0.15, 0.16, 0.14, 0.17],
        "adding-T10/gru/none/none": [0.3, 0.31, 0.29, 0.32]})
    table = st.significance(lb.leaderboard(runs), runs)
    assert table["p"].tolist() == pytest.approx([2 / 70] * 3)
    assert (table["verdict"] == st.TOO_FEW).all()


def test_remedies_of_one_model_are_compared_on_their_shared_seeds() -> None:
    # seed i is hard or easy for both remedies alike; norm clipping is worse on every seed
    # by 0.01, a gap far below the spread over seeds
    base = [0.05, 0.3, 0.12, 0.5, 0.08, 0.2, 0.15]
    runs = _suite("mse", "minimize", {
        "adding-T10/lstm/none/none": base,
        "adding-T10/lstm/none/norm": [v + 0.01 for v in base],
        "adding-T10/rnn/none/none": [v + 0.6 for v in base]})
    table = st.significance(lb.leaderboard(runs), runs).set_index("model")
    same = table.loc["lstm"]
    # two comparisons: 7 pairs reach 2 / 2**7 = 0.016 <= 0.05 / 2 (6 would not: 0.031)
    assert same["test"] == "paired" and same["n"] == 7
    # 7 differences of one sign: 2 of the 2**7 sign patterns reach them
    assert same["p"] == pytest.approx(2 / 128) and same["min_p"] == pytest.approx(2 / 128)
    assert same["diff"] == pytest.approx(0.01) and same["ci_low"] == pytest.approx(0.01)
    assert st.permutation_p(base, [v + 0.01 for v in base]) > 0.5  # unpaired: no signal
    other = table.loc["rnn"]  # another model: its seeds do not pair
    assert other["test"] == "independent" and other["min_p"] == pytest.approx(2 / 3432)
    # Holm over the table's two comparisons: the smaller p times 2, the larger times 1
    assert other["p"] == pytest.approx(2 / 3432)  # C(14, 7) = 3432 splits, 2 as extreme
    assert other["p_holm"] == pytest.approx(2 * 2 / 3432)
    assert same["p_holm"] == pytest.approx(2 / 128)
    assert (table["verdict"] == "best is better").all()


def test_the_report_says_whether_the_last_third_of_the_trials_improved_the_best() -> None:
    def curve(values: list[float | None], states: list[str] | None = None) -> pd.DataFrame:
        states = states or ["complete"] * len(values)
        return an.best_so_far(_frame([
            _run("adding-T10/lstm/none/none", "trial", trial_number=n, state=state,
                 **{"val/loss": v}) for n, (v, state) in enumerate(zip(values, states,
                                                                       strict=True))]))

    # 6 trials: the last third is trials 4 and 5; trial 4 (0.3) beats 0.4 from before
    late = an.last_third(curve([0.5, 0.4, 0.45, 0.6, 0.3, 0.7])).iloc[0]
    assert (late["trials"], late["best_at"], late["improved"]) == (6, 4, True)
    assert late["last_third"] == "improved in the last 2 of 6 trials (best at trial 4)"
    # 9 trials, best at trial 2: the last 3 do not improve it
    late = an.last_third(curve([0.5, 0.4, 0.2, 0.6, 0.3, 0.7, 0.25, 0.21, 0.9])).iloc[0]
    assert (late["best_at"], late["improved"]) == (2, False)
    assert late["last_third"].startswith("no improvement in the last 3 of 9")
    # a pruned trial sets no value, even a low one
    late = an.last_third(curve([0.5, 0.4, 0.1], ["complete", "complete", "pruned"])).iloc[0]
    assert not late["improved"] and late["best_at"] == 1
    assert an.last_third(curve([0.5, 0.4])).iloc[0]["last_third"] == "too few trials to tell"


def test_tuning_curve_sweep_and_classes() -> None:
    trials = _frame([
        _run("adding-T10/lstm/l2/norm", "trial", trial_number=0, **{"val/loss": 0.5}),
        _run("adding-T10/lstm/l2/norm", "trial", trial_number=1, state="pruned",
             **{"val/loss": 0.01}),
        _run("adding-T10/lstm/l2/norm", "trial", trial_number=2, **{"val/loss": 0.3})])
    curve = an.best_so_far(trials)
    assert curve["best"].tolist() == [0.5, 0.5, 0.3]  # a pruned trial sets no value
    assert set(curve["remedy"]) == {"L2 + norm clip"}

    board = pd.DataFrame({"model": ["rnn", "rnn", "lstm", "lstm"], "remedy": ["none"] * 4,
                          "regularization": ["none"] * 4, "clipping": ["none"] * 4,
                          "seq_len": [50, 100, 50, 100], "solved_rate": [1.0, 0.0, 1.0, 0.5]})
    longest = lb.longest_solved(board)
    assert longest.loc["lstm", "none"] == 100 and longest.loc["rnn", "none"] == 50

    rows = pd.DataFrame({"true": ["a", "a", "b", "b"] * 2, "predicted": ["a", "b", "a", "b"] * 2,
                         "count": [4, 1, 0, 5] * 2})
    matrix = an.confusion_matrix(rows)
    assert matrix.loc["a", "a"] == 8 and matrix.loc["a", "b"] == 2
    f1 = an.per_class_f1(matrix).set_index("class")
    assert f1.loc["a", "f1"] == pytest.approx(2 * 8 / (2 * 8 + 2))
    assert f1.loc["b", "precision"] == pytest.approx(10 / 12)


def test_a_run_with_a_memory_profile_shows_it() -> None:
    rows = [{"run_id": run, "step": 0, "t": t, "kind": kind, "norm": norm}
            for run, kinds in (("copy", ("h", "h_memory", "bound", "bound_memory", "c")),
                               ("adding", ("h", "bound")))
            for kind in kinds for t, norm in ((1, 1.0 if "memory" in kind else 5.0),
                                              (2, 2.0))]
    snaps = an.profile_snapshots(pd.DataFrame(rows))
    copy = snaps[snaps["run_id"] == "copy"]
    assert sorted(set(copy["kind"])) == ["bound", "h"] and len(copy) == 4
    assert copy.loc[(copy["kind"] == "h") & (copy["t"] == 1), "norm"].tolist() == [1.0]
    adding = snaps[snaps["run_id"] == "adding"]
    assert adding.loc[(adding["kind"] == "h") & (adding["t"] == 1), "norm"].tolist() == [5.0]


def test_profile_snapshots_and_ratio() -> None:
    profiles = pd.DataFrame([{"run_id": "r", "step": s, "t": t, "kind": k,
                              "norm": 10.0 ** (t - 3) if k == "h" else 1.0}
                             for s in (0, 10, 20) for t in (1, 2, 3) for k in ("h", "bound")])
    snaps = an.profile_snapshots(profiles)
    assert set(zip(snaps["step"], snaps["when"], strict=True)) == {
        (0, "at initialisation"), (20, "after training")}
    ratios = an.gradient_ratios(snaps)
    assert ratios["log10_ratio"].tolist() == pytest.approx([-2.0, -2.0])


def test_cells_of_numbers_align_as_numbers_and_sentences_wrap_as_text() -> None:
    from bench.report.html import Table, render_table

    rows = [["lstm", "0.0123 ± 4.00e-04", "[0.01, 0.02]", "-0.12 -> -0.03 (-0.2 to 0)",
             "3/0/1 of 3 +1 running", "1.5 min", "100 steps of SGD; batch 20", "-"],
            ["rnn", "-", "-", "-", "2/0/0", "45 s", "figure only", "1,000"]]
    html_text = render_table(Table("t", ["model", "mean", "CI", "split", "trials", "time",
                                         "setting", "n"], rows, keys=2))
    heads = re.findall(r'<th class="(\w+)', html_text)
    assert heads == ["text", "num", "num", "num", "num", "num", "text", "num"]
    cells = re.findall(r'<td class="(\w+)', html_text)
    assert cells[:8] == heads and cells[8:] == heads  # one class per column, placeholders too
    assert "<span>-0.12</span> <span>-&gt; -0.03</span> <span>(-0.2 to 0)</span>" in html_text
    assert html_text.count('class="text key"') == 3 and 'key key-last" style="--w:' in html_text


def test_a_column_of_numbers_has_one_format() -> None:
    from bench.report.formatting import num, number_format

    column = number_format([0.001135, 4.21e-4, 4.12e-4, 3.98e-4, float("nan")])
    assert [column(v) for v in (0.001135, 4.12e-4, float("nan"), 0)] == [
        "1.13e-03", "4.12e-04", "-", "0"]
    plain = number_format([0.5, 12.25, 0.00123])
    assert [plain(v) for v in (0.5, 12.25, 0.00123)] == ["0.5", "12.25", "0.00123"]
    assert num(4.12e-4) == "4.12e-04" and num(1200) == "1200" and num(None) == "-"


def test_a_task_of_the_suite_without_runs_is_named_with_the_reason(tmp_path: Path) -> None:
    from bench.report.page import skipped_tasks

    config = {"tasks": {"adding": {"seq_len": [8]}, "har": {"data_dir": None, "steps": 600},
                        "copy": {"seq_len": [10]}}}
    board = pd.DataFrame({"task": ["adding"]})
    found = skipped_tasks(config, board)
    assert set(found) == {"har", "copy"}
    assert found["copy"] == "no run of it is recorded"
    assert "tasks.har.data_dir" in found["har"] or "UCI HAR" in found["har"]
    assert skipped_tasks({}, board) == {} and skipped_tasks(config, pd.DataFrame()) .keys() \
        == {"adding", "har", "copy"}


def test_the_flow_colour_bar_marks_where_it_clips_and_ticks_both_halves() -> None:
    from bench.report import heatmaps, plots

    plots.configure()
    rows = [{"run_id": "r", "model": "rnn", "step": step, "t": t,
             "value": -41.5 * (8 - t) / 7 if step else 0.3 * (8 - t) / 7}
            for step in (0, 10) for t in range(1, 9)]
    rows[0]["value"] = -np.inf  # a norm of exactly 0: white
    fig = heatmaps.gradient_flow(pd.DataFrame(rows))
    bar = fig.axes[-1]
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert labels[0] == "<= -12" and "0" in labels
    positive = [float(x) for x in labels[labels.index("0") + 1:]]
    assert len(positive) >= 2 and max(positive) == pytest.approx(0.3 * 6 / 7, abs=1e-3)
    assert tuple(fig.axes[0].images[0].cmap.get_bad()[:3]) == (1.0, 1.0, 1.0)
    plots.plt.close("all")


@pytest.mark.parametrize("top", [0.48887895825970545, 0.3 * 6 / 7, 0.5])
def test_the_flow_colour_bar_spans_its_range_whatever_its_ends_round_to(top: float) -> None:
    """Every tick inside the norm's range and drawn at its own height: an end rounded
    outwards (0.488879 for 0.48887896) once collapsed the whole bar to one point."""
    from bench.report import heatmaps, plots

    plots.configure()
    rows = [{"run_id": "r", "model": "irnn", "step": step, "t": t, "value": v}
            for step in (0, 10) for t, v in enumerate(np.linspace(top, -0.18, 12), start=1)]
    fig = heatmaps.gradient_flow(pd.DataFrame(rows))
    fig.canvas.draw()
    bar = fig.axes[-1]
    ticks = list(bar.get_yticks())
    assert min(ticks) >= -0.18 and max(ticks) <= top and max(ticks) == pytest.approx(top)
    heights = [bar.transData.transform((0, t))[1] for t in ticks]
    assert all(np.isfinite(heights)) and all(np.diff(heights) > 5), heights
    plots.plt.close("all")


# ------------------------------------------------------------------------------ built reports


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"',
                                                     page)]


def _check_self_contained(page: str) -> None:
    images = _images(page)
    assert images, "no figure"
    for png in images:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 50 and height > 50
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    hrefs = re.findall(r'href="([^"]*)"', page)
    full = [h for h in hrefs if not h.startswith("#")]  # each figure's full-size image
    assert full and all(re.fullmatch(r"figures/[a-z0-9-]+\.png", h) for h in full), full
    assert "<script" not in page and "@import" not in page and "url(" not in page


class Fake:
    """Writes a small suite through the real tracking layer, run by run."""

    def __init__(self, run_dir: Path, name: str) -> None:
        from bench.tracking import Tracker, default_tracking_uri

        run_dir.mkdir(parents=True)
        self.uri = default_tracking_uri(run_dir)
        self.tracker = Tracker(self.uri, name, run_dir=run_dir)
        self.config = yaml.safe_dump({"name": name, "tuning": {"trials": 2},
                                      "final": {"seeds": 2}})

    def parent(self, name: str) -> tuple[str, dict[str, str]]:
        task_t, model, reg, clip = name.split("/")
        task, _, t = task_t.partition("-T")
        tags = {"task": task, "seq_len": t, "model": model, "regularization": reg,
                "clipping": clip, "config_hash": "abc", "suite": "mixed"}
        run_id = self.tracker.parent_run(name, tags)
        self.tracker.set_tags(run_id, {"git_commit": "0" * 40, "version.torch": "2.13.0"})
        self.tracker.log_text(run_id, self.config, "config.yaml")
        return run_id, {**tags, "configuration": name}

    def run(self, parent: tuple[str, dict[str, str]], role: str, n: int, state: str,
            test: dict[str, float] | None = None, end: str | None = "FINISHED") -> str:
        pid, tags = parent
        metric = {"adding": "mse", "har": "acc"}[tags["task"]]
        run_id = self.tracker.start_run(pid, f"{role}-{n}", {
            **tags, "role": role, "study": f"mixed/{tags['configuration']}",
            "trial_number": str(n), "seed": str(1000 + n)})
        self.tracker.set_tags(run_id, {"state": state, "metric": metric, "solved": "False",
                                       "direction": "minimize" if metric == "mse"
                                       else "maximize"})
        self.tracker.log_params(run_id, {"lr": 0.01, "clip": 1.0})
        steps = 20 if state != "diverged" else 7
        points = [(k, 0.1 + 1 / s, s) for s in range(1, steps + 1)
                  for k in ("train/loss", "grad/norm")]
        points += [("val/loss", 0.2 + 1 / s, s) for s in (10, 20) if s <= steps]
        points += [("weights/spectral_radius", 0.9 + s / 100, s) for s in (0, 10, 20)]
        points += [(f"test/{k}", v, 20) for k, v in (test or {}).items()]
        self.tracker.log_metrics(run_id, points)
        rows = [{"step": s, "t": t, "norm": 0.5 ** (8 - t), "kind": kind}
                for s in (0, steps) for t in range(1, 9) for kind in ("h", "bound")]
        self.tracker.log_table(run_id, rows, "diagnostics/profiles.csv")
        if tags["task"] == "har" and role == "final":
            self.tracker.log_table(run_id, [
                {"true": a, "predicted": b, "count": 9 if a == b else 1}
                for a in ("WALKING", "SITTING", "LAYING") for b in ("WALKING", "SITTING",
                                                                    "LAYING")],
                "test/confusion.csv")
        if end:
            self.tracker.end_run(run_id, end)
        return run_id


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite with a done, a diverged, an all-diverged and a running configuration, and HAR."""
    root = tmp_path_factory.mktemp("mixed")
    fake = Fake(root / "runs" / "mixed", "mixed")
    done = fake.parent("adding-T8/lstm/none/norm")
    for n in range(2):
        fake.run(done, "trial", n, "complete")
    for n in range(2):
        fake.run(done, "final", n, "complete", {"loss": 0.01 + n / 1000, "mse": 0.01 + n / 1000,
                                                "normalized": 0.06})
    fake.tracker.end_run(done[0])
    blown = fake.parent("adding-T8/rnn/none/none")
    fake.run(blown, "trial", 0, "complete")
    for n in range(2):
        fake.run(blown, "final", n, "diverged", end="FAILED")
    hopeless = fake.parent("adding-T8/irnn/none/none")
    for n in range(2):
        fake.run(hopeless, "trial", n, "diverged", end="FAILED")
    busy = fake.parent("adding-T8/gru/none/norm")
    fake.run(busy, "trial", 0, "complete")
    fake.run(busy, "trial", 1, "running", end=None)
    har = fake.parent("har/gru/none/none")
    for n in range(2):
        fake.run(har, "trial", n, "complete")
        fake.run(har, "final", n, "complete", {"loss": 0.3, "acc": 0.9, "normalized": 0.2})
    out = root / "report"
    assert main(["report", "--tracking-uri", fake.uri, "--experiment", "mixed",
                 "--runs-dir", str(root / "none"), "--out", str(out)]) == 0
    return out / "index.html"


def test_a_suite_with_problems_still_builds_and_shows_them(mixed_report: Path) -> None:
    page = mixed_report.read_text()
    _check_self_contained(page)
    for status in ("running", "diverged", "all-trials-diverged"):
        assert f'class="status-{status}"' in page, status
    assert ">all trials diverged<" in page and ">running<" in page
    assert "+1 running" in page  # the trial still running is counted as such
    assert "Not every configuration is done" in page
    for title in ("Leaderboard: all 4 configurations", "The vanishing / exploding picture",
                  "Gradient norm during training", "Learning curves", "Spectral radius",
                  "Best value so far", "Confusion matrix: gru", "Per-class F1: gru",
                  "Only one configuration has final results: nothing to compare",
                  "Provenance"):
        assert title in page, title
    assert "Hyperparameter importance not shown: no Optuna storage found" in page
    assert "a line that falls to the left means gradients vanish" in page.lower()
    assert "0" * 40 in page  # provenance: the git commit of the runs


def test_the_split_shown_is_the_median_runs_and_adds_up() -> None:
    """One seed far off (a saturated plain RNN, say) moves the median, not the figure; the
    row is one run's split, so its f' and W_hh factors add up to its per-step log ratio."""
    rows = []
    for run, (fprime, w_hh, slope) in enumerate([(-0.1, -0.2, -0.3), (-0.05, -0.35, -0.4),
                                                 (-3.0, -1.0, -4.2)]):
        for step, scale in ((0, 0.0), (100, 1.0)):
            rows.append({"run_id": f"r{run}", "step": step, "path": "W_hh, tanh'",
                         "fprime_log10": fprime * scale, "w_hh_log10": w_hh * scale,
                         "step_log10_ratio": (fprime + w_hh) * scale, "slope": slope * scale,
                         "carry_share": math.nan})
    snaps = an.factor_snapshots(pd.DataFrame(rows)).assign(configuration="c")
    medians = an.factor_medians(snaps).set_index("when")
    after = medians.loc["after training"]
    assert (after["fprime_log10"], after["w_hh_log10"]) == (-0.05, -0.35)  # r1: -0.4
    assert after["step_log10_ratio"] == pytest.approx(after["fprime_log10"]
                                                      + after["w_hh_log10"])
    assert after["slope"] == pytest.approx(-0.4)
    assert (after["slope_low"], after["slope_high"]) == (-4.2, -0.3)
    assert after["runs"] == 3 and medians.loc["at initialisation", "slope"] == 0.0
    assert an.factor_medians(snaps.iloc[:0]).empty


def _step_rows(run_id: str, model: str, plain: bool) -> list[dict[str, Any]]:
    """factor_steps.csv rows of three probes (0, 10, 20) and t = 2..5, as a model records them."""
    nan = math.nan
    return [{"run_id": run_id, "model": model, "step": step, "t": t,
             "fprime_log10": -0.01 * t if plain else nan, "w_hh_log10": -0.2 if plain else nan,
             "step_log10_ratio": -0.01 * t - 0.2, "carry_share": nan if plain else 0.9}
            for step in (0, 10, 20) for t in range(2, 6)]


def test_the_split_figures_draw_plain_gated_and_missing_splits() -> None:
    """Per backward step: the first and the last probe of each run, a column per model; over
    training: every probe, a panel per model, the undeclared one saying so."""
    from bench.report import plots

    steps = pd.DataFrame(_step_rows("a", "rnn", True) + _step_rows("b", "lstm", False))
    snaps = an.factor_step_snapshots(steps.drop(columns="model"))
    assert set(snaps["step"]) == {0, 20} and len(snaps) == 2 * 2 * 4
    assert (snaps[snaps["step"] == 0]["when"] == "at initialisation").all()
    assert an.factor_step_snapshots(steps.iloc[:0]).empty
    fig = plots.factor_steps(snaps.assign(model=snaps["run_id"].map({"a": "rnn", "b": "lstm"})))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["rnn, at initialisation", "lstm, at initialisation",
                      "rnn, after training", "lstm, after training"]
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["decades per step", "carry share"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["f' factor", "W_hh factor", "per-step log ratio (= f' + W_hh)",
                      "carry share (gated cells)"]
    history = steps.groupby(["run_id", "model", "step"], as_index=False).mean()
    missing = history[history["model"] == "rnn"].assign(
        run_id="c", model="zz-plugin", fprime_log10=math.nan, w_hh_log10=math.nan,
        step_log10_ratio=math.nan)
    fig = plots.factor_history(pd.concat([history, missing]))
    assert [ax.get_title() for ax in fig.axes] == ["rnn", "lstm", "zz-plugin"]
    assert "split not available (or every norm 0)" in [t.get_text() for t in fig.axes[2].texts]
    plots.plt.close("all")


def _factor_table(page: str) -> list[list[str]]:
    """The cells of the page's factor table, one list per row."""
    start = page.index("The two factors of the decay per step")
    body = page[start:page.index("</table>", start)]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    cells = [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
              for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)] for r in rows]
    return cells


def _check_factor_table(page: str) -> None:
    """No column called 'predicted'; on every row with the plain split, at initialisation and
    after training, per-step log ratio = f' + W_hh (to the shown digits)."""
    head, *rows = _factor_table(page)
    assert not any("predicted" in c for c in head)
    fprime, w_hh, ratio = (head.index(c) for c in
                           ("f' factor", "W_hh factor", "per-step log ratio (= f' + W_hh)"))
    assert any(c.startswith("slope of log10") for c in head)
    plain = [r for r in rows if r[fprime] != "- -> -"]
    assert plain and len(rows) > len(plain)  # the rnn's rows split, the lstm's are gated
    for row in plain:
        pairs = [[float(v) for v in row[i].split(" -> ")] for i in (fprime, w_hh, ratio)]
        for f, w, r in zip(*pairs, strict=True):
            assert f + w == pytest.approx(r, abs=2e-3), row


def _check_means_against_mlflow(table: pd.DataFrame, run_dir: Path) -> None:
    """Each row's mean, std and 95% interval, from its final runs' test MSE as MLflow holds
    it, computed here (Python's statistics, Student's t from scipy)."""
    import statistics

    from mlflow import MlflowClient
    from scipy import stats as scipy_stats

    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    for _, row in table.iterrows():
        values = [client.get_run(run_id).data.metrics["test/mse"]
                  for run_id in row["final_run_ids"].split()]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        half = scipy_stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))
        assert row["mean"] == pytest.approx(mean, rel=1e-9), row["configuration"]
        assert row["std"] == pytest.approx(std, rel=1e-9), row["configuration"]
        # an MSE is never below 0: the interval is cut there
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (max(0.0, mean - half), mean + half), rel=1e-6, abs=1e-12)


@pytest.mark.slow
def test_report_of_a_real_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"name": "tiny", "device": "cpu",
            "tasks": {"adding": {"seq_len": [8], "val_size": 64, "test_size": 64}},
            "models": ["rnn", "lstm"], "regularization": ["none"], "clipping": ["norm"],
            "model": {"hidden_size": 8},
            "training": {"steps": 20, "batch_size": 16, "eval_every": 10},
            "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
                       "clip": {"low": 0.5, "high": 5.0, "log": True}},
            "tuning": {"trials": 3, "sampler": "random", "pruner": "none"},
            "final": {"seeds": 2}, "diagnostics": {"probe_every": 10}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--runs-dir", str(runs)]) == 0
    out = tmp_path / "out.html"
    assert main(["report", "tiny", "--runs-dir", str(runs), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    _check_self_contained(page)
    assert len(_images(page)) >= 7
    # 3 trials: no importance (it needs 10), and too few to tell whether a best is at an edge
    for text in ("adding-T8/lstm/none/norm", "adding-T8/rnn/none/norm",
                 "too few trials (3 complete, 10 needed)", "permutation", "Holm p",
                 "Clopper-Pearson", "last third of the trials", "too few trials to tell",
                 "theory bound"):
        assert text in page, text
    assert 'class="status-' not in page and page.count('class="best"') >= 1
    table = pd.read_csv(tmp_path / "out.leaderboard.csv")
    assert sorted(table["configuration"]) == ["adding-T8/lstm/none/norm",
                                              "adding-T8/rnn/none/norm"]
    assert (table["seeds"] == 2).all() and (table["complete"] == 3).all()
    assert (table["metric"] == "mse").all()
    _check_means_against_mlflow(table, runs / "tiny")
    assert (table["suite"] == "tiny").all() and table["parent_run_id"].notna().all()
    assert (table["final_run_ids"].str.split().str.len() == 2).all()
    # the gradient flow, the two factors, and every figure's data beside the page
    for text in ("Gradient flow over training", "The two factors of the decay per step",
                 "Drawn from MLflow runs", "config hash", "redraw: gradbench report tiny"):
        assert text in page, text
    flow = pd.read_csv(tmp_path / "figures" / "adding-flow.csv")
    assert {"run_id", "step", "t", "value", "model"} <= set(flow.columns)
    assert sorted(flow["step"].unique())[:2] == [0, 10] and flow["t"].max() == 8
    last = flow[flow["t"] == 8]["value"]
    assert (last.abs() < 1e-12).all()  # log10 of ||dL/dh_T|| / itself
    assert (tmp_path / "figures" / "adding-profiles.csv").exists()
    # which factor drives the decay: the table adds up, the figures and their data are there
    _check_factor_table(page)
    for name in ("factor-steps", "factor-history"):
        assert (tmp_path / "figures" / f"adding-{name}.png").read_bytes().startswith(b"\x89PNG")
    split = pd.read_csv(tmp_path / "figures" / "adding-factor-steps.csv")
    assert set(split["model"]) == {"rnn", "lstm"} and set(split["t"]) == set(range(2, 9))
    assert set(split["when"]) == {"at initialisation", "after training"}
    plain = split[split["model"] == "rnn"]
    assert np.allclose(plain["fprime_log10"] + plain["w_hh_log10"], plain["step_log10_ratio"])
    assert split[split["model"] == "lstm"]["carry_share"].between(0, 1).all()
    history = pd.read_csv(tmp_path / "figures" / "adding-factor-history.csv")
    assert sorted(history["step"].unique()) == [0, 10, 20] and history["available"].all()
    image = (tmp_path / "figures" / "adding-flow.png").read_bytes()  # the picture as a file
    assert image.startswith(b"\x89PNG") and base64.b64encode(image).decode() in page


    # a second suite side by side on one page
    config.write_text(yaml.safe_dump({**spec, "name": "tiny2", "models": ["lstm"],
                                      "tuning": {**spec["tuning"], "trials": 1}}))
    assert main(["run", str(config), "--runs-dir", str(runs)]) == 0
    both = tmp_path / "both"
    assert main(["report", "tiny", "tiny2", "--runs-dir", str(runs), "--out", str(both)]) == 0
    page = (both / "index.html").read_text()
    _check_self_contained(page)
    assert "Suites side by side" in page and "Task adding (suite tiny2)" in page
    assert 'id="task-tiny-adding"' in page and 'id="task-tiny2-adding"' in page
    combined = pd.read_csv(both / "leaderboard.csv")
    assert sorted(combined["suite"].unique()) == ["tiny", "tiny2"] and len(combined) == 3
    assert (both / "figures" / "tiny2-adding-flow.csv").exists()

    # the run directory moved (renamed, copied to another machine): its artifacts go with it
    moved = tmp_path / "moved-runs"
    shutil.copytree(runs, moved)
    shutil.rmtree(runs / "tiny" / "artifacts")
    out = tmp_path / "moved.html"
    assert main(["report", "tiny", "--runs-dir", str(moved), "--out", str(out)]) == 0
    page = out.read_text()
    assert "The two factors of the decay per step" in page and "No two-factor" not in page
    assert "No gradient" not in page and len(_images(page)) >= 7

    # resumed there, the copy records into its own artifacts folder, never the original's
    config.write_text(yaml.safe_dump(spec))
    assert main(["run", str(config), "--runs-dir", str(moved), "--seeds", "3"]) == 0
    assert not (runs / "tiny" / "artifacts").exists()
    own = (moved / "tiny" / "artifacts").resolve()
    reader = tracking.RunReader(tracking.default_tracking_uri(moved / "tiny"), "tiny")
    finals = [r for r in reader.runs() if r.tags.get("role") == "final"]
    assert len(finals) == 2 * 3  # two configurations, a third seed each
    for run in reader.runs():
        assert run.artifact_uri.startswith(own.as_uri() + "/"), run.artifact_uri
    for run in finals:
        assert (own / run.run_id / "artifacts" / "task.yaml").is_file()
    original = tracking.RunReader(tracking.default_tracking_uri(runs / "tiny"), "tiny")
    assert all(str((runs / "tiny").resolve()) in r.artifact_uri for r in original.runs())


def test_report_of_a_missing_suite_is_one_clear_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "smoke", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no tracking store for suite 'smoke'" in err and len(err.strip().splitlines()) == 1


# Per table: its box (the scrolling div) against the page, the table against its box, and,
# scrolled to its right end, where its key (sticky) columns stand.
_LAYOUT = """() => {
  const out = {page: document.scrollingElement.scrollWidth, window: innerWidth, tables: 0,
               outside: [], scrolled: [], lost: []};
  for (const table of document.querySelectorAll('table')) {
    out.tables += 1;
    const box = table.parentElement, name = box.parentElement.querySelector('h4');
    const title = name ? name.textContent : '';
    const edge = box.getBoundingClientRect();
    if (edge.left < 0 || edge.right > innerWidth) out.outside.push(title);
    if (table.scrollWidth <= box.clientWidth) continue;
    out.scrolled.push(title);
    box.scrollLeft = box.scrollWidth;
    const keys = table.querySelectorAll('tbody tr:first-child td.key');
    const last = table.querySelector('tbody tr:first-child td:last-child').getBoundingClientRect();
    if (!keys.length || last.right > edge.right + 1) { out.lost.push(title); continue; }
    for (const key of keys) {
      const r = key.getBoundingClientRect();
      if (r.left < edge.left - 1 || r.right > edge.right) out.lost.push(title);
    }
  }
  return out;
}"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh "
                    "installs it; CI runs it)")
def test_the_report_in_a_real_browser(mixed_report: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:  # never downloads a browser: Debian's chromium is used
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(mixed_report.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map("
                                   "i => [i.complete && i.naturalWidth > 0, i.alt])")
            wide = page.evaluate(_LAYOUT)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            phone = browser.new_page(viewport={"width": 400, "height": 800})
            phone.goto(mixed_report.as_uri(), wait_until="load")
            narrow = phone.evaluate(_LAYOUT)
        finally:
            browser.close()
    assert images and all(ok for ok, _ in images), [alt for ok, alt in images if not ok]
    assert errors == []
    network = [u for u in requests if not u.startswith(("data:", mixed_report.as_uri()))]
    assert network == []
    for layout in (wide, narrow):
        assert layout["page"] <= layout["window"], "the page scrolls sideways"
        assert layout["tables"] > 3
        assert layout["outside"] == [], "a table's box is wider than the page"
    assert wide["scrolled"] == [], "a table is wider than its box at 1,400 px"
    # on a phone a wide table scrolls inside its box, its key columns in view at either end
    assert narrow["scrolled"], "nothing needs scrolling at 400 px: the check checks nothing"
    assert narrow["lost"] == [], "scrolled to its end, a table hides its key columns"
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_intervals_stay_in_the_metric_range() -> None:
    from bench.report.statistics import clip_to_range, mean_ci

    _, _, low, high = mean_ci([0.001, 0.2])  # two seeds far apart: a wide t-interval
    assert low < 0
    assert clip_to_range("adding", "mse", low, high) == (0.0, high)
    _, _, low, high = mean_ci([0.99, 0.5])
    assert high > 1 and clip_to_range("har", "acc", low, high)[1] == 1.0
    assert clip_to_range("copy", "recall_acc", math.nan, math.nan)[0] != 0.0  # NaN stays NaN
    assert clip_to_range("adding", "not-its-metric", -1.0, 2.0) == (-1.0, 2.0)


def test_per_step_curves_are_thinned_as_metrics_and_whole_in_the_steps_table(
        tmp_path: Path) -> None:
    import torch

    import tasks
    from bench.report.results import ResultsSource
    from bench.tracking import MAX_CURVE_POINTS, STEPS_TABLE, result_metrics, step_rows
    from bench.train import TrainResult

    steps = 450
    norms = [1.0 + (s % 7) for s in range(steps)]
    result = TrainResult("completed", steps, train_loss=[1 / (s + 1) for s in range(steps)],
                         grad_norm=norms, clipped=[n > 5 for n in norms])
    task = tasks.build("adding", {"seq_len": 8, "val_size": 8, "test_size": 8}, seed=0,
                       device=torch.device("cpu"))
    points = result_metrics(result, task)
    norm_steps = [s for k, _, s in points if k == "grad/norm"]
    assert len(norm_steps) <= MAX_CURVE_POINTS + 1 and norm_steps[0] == 1
    assert norm_steps[-1] == steps  # the last step is always kept

    fake = Fake(tmp_path / "runs" / "curves", "curves")
    parent, tags = fake.parent("adding-T8/lstm/none/norm")
    whole, older = (fake.tracker.start_run(parent, name, {**tags, "role": "final"})
                    for name in ("with-table", "metrics-only"))
    for run_id in (whole, older):
        fake.tracker.log_metrics(run_id, points)
    fake.tracker.log_table(whole, step_rows(result), STEPS_TABLE)
    source = ResultsSource(fake.uri, "curves")
    source.load()
    frame = source.steps([whole, older], "grad_norm", "grad/norm")
    assert list(frame.columns) == ["run_id", "key", "step", "value"]
    assert set(frame["key"]) == {"grad/norm"}
    got = frame[frame["run_id"] == whole]
    assert got["step"].tolist() == list(range(1, steps + 1)) and got["value"].tolist() == norms
    assert frame[frame["run_id"] == older]["step"].tolist() == norm_steps  # the metric
    table = source.tables([whole], STEPS_TABLE)
    assert table["clipped"].sum() == sum(n > 5 for n in norms)


# ------------------------------------------------------------------------------ registry facts


def test_order_labels_and_colours_come_from_the_registries() -> None:
    from bench.registry import MODELS
    from bench.report import plots

    assert facts.model_order(["gru", "zz-plugin", "lstm", "rnn", "irnn"]) == [
        "rnn", "irnn", "lstm", "gru", "zz-plugin"]  # unknown last
    assert facts.task_order(["har", "mine", "adding", "copy"]) == ["adding", "copy", "har", "mine"]
    pairs = [("l2", "norm"), ("none", "norm"), ("l2", "none"), ("none", "none"),
             ("mystery", "none")]
    frame = pd.DataFrame(pairs, columns=["regularization", "clipping"])
    assert facts.remedy_order(frame) == ["none", "L2", "norm clip", "L2 + norm clip", "mystery"]
    assert facts.remedy_label("l2", "mystery") == "L2 + mystery"
    # line style from the clipping remedy, marker from the regularization remedy
    assert [plots.remedy_style(*p) for p in pairs] == ["--", "--", ":", ":", ":"]
    assert [plots.remedy_marker(*p) for p in pairs] == ["s", "o", "s", "o", "*"]
    assert plots.remedy_style("l2", "mystery") == (0, (3, 1, 1, 1, 1, 1))  # unknown here
    assert plots.remedy_style("none", "weight") == "-"
    assert lb.metric_of("copy", pd.DataFrame()) == ("recall_acc", "maximize")
    assert lb.metric_of("mine", pd.DataFrame()) == ("loss", "minimize")
    assert facts.solved_rule("adding") == "test MSE < 0.01"

    # the colorblind palette entries the report always used for the four built-ins
    assert {m: plots.model_hex(m) for m in ("rnn", "irnn", "lstm", "gru")} == {
        "rnn": "#d55e00", "irnn": "#cc78bc", "lstm": "#0173b2", "gru": "#029e73"}
    assert plots.model_hex("orth-rnn") == MODELS.get("orth-rnn").color
    others = [plots.model_hex(m) for m in ("zz-plugin", "pkg.mod:NP_RNN")]
    builtin = {plots.model_hex(m) for m in MODELS.names()}
    assert all(c not in builtin and c != plots.GREY for c in others)
    assert plots.model_hex("zz-plugin") == others[0]  # stable


@pytest.mark.slow
def test_a_model_and_remedy_the_registry_does_not_know_still_render(tmp_path: Path) -> None:
    fake = Fake(tmp_path / "runs" / "odd", "odd")
    for name in ("adding-T8/lstm/none/norm", "adding-T8/nowhere.mod:NET/none/weird"):
        parent = fake.parent(name)
        fake.run(parent, "trial", 0, "complete")
        for n in range(2):
            fake.run(parent, "final", n, "complete", {"loss": 0.02 + n / 100,
                                                      "mse": 0.02 + n / 100, "normalized": 0.1})
        fake.tracker.end_run(parent[0])
    out = tmp_path / "odd.html"
    assert main(["report", "--tracking-uri", fake.uri, "--experiment", "odd",
                 "--runs-dir", str(tmp_path / "none"), "--out", str(out)]) == 0
    page = out.read_text()
    _check_self_contained(page)
    assert ">nowhere.mod:NET<" in page and ">weird<" in page
    assert ".dot.m-nowhere-mod-net { background: #" in page


def test_report_of_a_config_file_on_a_given_store_reads_the_suite_it_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = Fake(tmp_path / "store", "named")
    parent = fake.parent("adding-T8/lstm/none/norm")
    for n in range(2):
        fake.run(parent, "trial", n, "complete")
        fake.run(parent, "final", n, "complete", {"loss": 0.01, "mse": 0.01})
    config_file = tmp_path / "my-experiment.yaml"  # the file's name is not the suite's
    config_file.write_text(yaml.safe_dump({"name": "named"}))
    out = tmp_path / "out.html"
    assert main(["report", str(config_file), "--tracking-uri", fake.uri, "--runs-dir",
                 str(tmp_path / "none"), "--out", str(out)]) == 0
    assert "report of suite 'named'" in capsys.readouterr().out
    assert "5 (4 FINISHED, 1 RUNNING)" in out.read_text()  # the runs of suite named


def test_report_links_rows_and_figures_to_their_mlflow_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = Fake(tmp_path / "store", "linked")
    parents = {}
    finals = []
    for name in ("adding-T8/lstm/none/norm", "adding-T8/rnn/none/norm"):
        parents[name] = fake.parent(name)
        for n in range(2):
            fake.run(parents[name], "trial", n, "complete")
            finals.append(fake.run(parents[name], "final", n, "complete",
                                   {"loss": 0.01 + n / 100, "mse": 0.01 + n / 100}))
    experiment = fake.tracker.experiment_id
    out = tmp_path / "linked.html"
    args = ["report", "linked", "--tracking-uri", fake.uri, "--runs-dir", str(tmp_path / "no"),
            "--out", str(out)]
    assert main([*args, "--mlflow-url", "http://127.0.0.1:5000/"]) == 0
    page = out.read_text()
    hrefs = re.findall(r'href="(http[^"]*)"', page)
    base = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/"
    assert all(h.startswith(base) for h in hrefs)
    assert all(h.endswith("?workflowType=machine_learning") for h in hrefs)  # not GenAI's
    linked = {h.removeprefix(base).partition("?")[0] for h in hrefs}
    assert {run_id for run_id, _ in parents.values()} <= linked  # every leaderboard row
    assert finals[0] in linked  # the first final seed drawn in the gradient figures
    assert "Runs in MLflow: <a" in page
    assert main([*args, "--mlflow-url", "127.0.0.1:5000"]) == 2
    assert "--mlflow-url 127.0.0.1:5000: expected an http:// or https://" in \
        capsys.readouterr().err
    assert main(args) == 0  # without it: no link leaves the page
    assert not re.findall(r'href="http', out.read_text())


def test_the_literature_file_is_complete_and_names_its_sources() -> None:
    from bench.report import literature

    entries = literature.load()
    assert entries and {e.task for e in entries} <= {"adding", "copy", "har"}
    for e in entries:
        assert e.source and e.where and e.setting and e.url.startswith("https://")
        assert e.comparable or e.note  # what differs is said where it is not comparable
    with pytest.raises(ValueError, match=r"results\[0\]: missing url"):
        literature.load("results:\n  - {task: adding, seq_len: 100, model: LSTM, metric: mse,"
                        " value: 0.1, source: x, where: y, setting: z, comparable: true, "
                        "note: ''}\n")
    with pytest.raises(ValueError, match=r"results\[0\]\.value: expected a number or null"):
        literature.load("results:\n  - {task: adding, seq_len: 100, model: LSTM, metric: mse,"
                        " value: 'about 0.1', source: x, url: u, where: y, setting: z, "
                        "comparable: true, note: ''}\n")


def test_significance_of_two_configurations_and_its_level() -> None:
    """Two configurations make one comparison, a table of one row. The paired test is
    chosen against alpha / comparisons: three remedies of one model with 5 shared seeds
    (smallest paired p 0.0625) make 2 comparisons (level 0.025), where two groups of 5
    (smallest p 0.0079) are the test."""
    two = _suite("mse", "minimize", {
        "adding-T10/lstm/none/none": [0.01, 0.011, 0.012, 0.009, 0.010],
        "adding-T10/rnn/none/none": [0.2, 0.21, 0.19, 0.2, 0.22]})
    table = st.significance(lb.leaderboard(two), two)
    assert len(table) == 1 and table["model"].tolist() == ["rnn"]
    remedies = _suite("mse", "minimize", {
        "adding-T10/lstm/none/none": [0.01, 0.011, 0.012, 0.009, 0.010],
        "adding-T10/lstm/none/norm": [0.02, 0.021, 0.022, 0.019, 0.020],
        "adding-T10/lstm/l2/none": [0.03, 0.031, 0.032, 0.029, 0.030]})
    table = st.significance(lb.leaderboard(remedies), remedies)
    assert table["test"].tolist() == ["independent", "independent"]  # 0.0625 > 0.05 / 2
