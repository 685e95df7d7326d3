"""A run's pictures for the MLflow UI (``bench.tracking.figures``) and the fields MLflow users
read (best values as metrics, the runs table's view, descriptions), without a suite."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import tracking
from bench.names import RUNS_VIEW_TAG
from bench.tracking import figures
from bench.train import TrainResult

PNG = b"\x89PNG\r\n\x1a\n"


def _profiles(norms: dict[int, list[float]]) -> list[dict[str, Any]]:
    """Profile rows (as read back from CSV: strings) of h and its bound at each probe."""
    rows = []
    for step, values in norms.items():
        for t, norm in enumerate(values, start=1):
            rows.append({"step": str(step), "t": str(t), "norm": str(norm), "kind": "h"})
            rows.append({"step": str(step), "t": str(t), "norm": str(2 * norm + 1e-3),
                         "kind": "bound"})
    return rows


def _split(steps: list[int], *, plain: bool) -> list[dict[str, Any]]:
    nan = math.nan
    return [{"step": step, "t": t, "fprime_log10": -0.1 if plain else nan,
             "w_hh_log10": -0.2 if plain else nan, "step_log10_ratio": -0.3 if plain else nan,
             "carry_share": nan if plain else 0.9} for step in steps for t in range(2, 6)]


def test_a_final_run_gets_its_pictures_as_png() -> None:
    steps = [{"step": i, "train_loss": 1 / i, "grad_norm": 1.0, "clipped": 0}
             for i in range(1, 21)]
    evals = [{"step": 10, "loss": 0.5, "mse": 0.5}, {"step": 20, "loss": 0.2, "mse": 0.2}]
    tables = {"profiles": _profiles({0: [1e-3, 1e-2, 1e-1], 20: [0.0, 1e-2, 1e-1]}),
              "factor_steps": _split([0, 20], plain=True)}
    out = figures.run_figures(steps, evals, tables, "mse")
    assert set(out) == {figures.CURVES_FIGURE, figures.PROFILE_FIGURE, figures.SPLIT_FIGURE}
    assert all(image.startswith(PNG) and len(image) > 5000 for image in out.values())


def test_pictures_only_where_the_tables_allow() -> None:
    assert figures.run_figures([], [], {}, "mse") == {}
    nan_split = [{**row, "carry_share": math.nan} for row in _split([0], plain=False)]
    assert figures.exact_split(nan_split) is None  # the split was not made
    assert figures.exact_split(_split([0, 10], plain=False)) is not None  # gated: carry share
    assert figures.gradient_flow_png(_profiles({0: [1.0, 1.0]})) is None  # one probe


def test_the_flow_heatmap_marks_where_it_clips_and_zero_norms() -> None:
    """A norm of 0 and a ratio far below the scale's end (-41 decades) both draw: the label
    names both, and the colour bar has its arrow."""
    fig = figures.gradient_flow(_profiles({0: [1e-41, 0.0, 1.0], 10: [1e-3, 1e-2, 1.0]}))
    assert fig is not None
    under = fig.axes[0].get_xlabel()
    assert "<= -12, values down to -41.0" in under and "hatched: a norm of 0" in under
    assert figures.png(fig).startswith(PNG)


def test_records_with_pictures_keep_through_the_spool(tmp_path: Path) -> None:
    records = tracking.RunRecords("r1", {"lr": 0.1}, {}, [("train/loss", 1.0, 1)],
                                  {"task.yaml": "a: 1\n", "figures/x.png": PNG + b"\x00\xff"},
                                  "FINISHED")
    assert tracking.RunRecords.from_json(records.to_json()) == records
    old = json.dumps({"run_id": "r0", "params": {}, "tags": {}, "metrics": [],
                      "files": {"curves.csv": "step\n1\n"}, "status": "FINISHED"})
    assert tracking.RunRecords.from_json(old).files == {"curves.csv": "step\n1\n"}


def test_best_values_are_metrics_and_a_later_best_is_the_latest(tmp_path: Path) -> None:
    """Params are immutable: the best values are metrics, each best a point at its trial's
    number, so a resume that finds a better trial adds a point and never fails."""
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "suite", run_dir=tmp_path)
    parent = tracker.parent_run("c", {})
    for number, lr in ((1, 0.01), (5, 0.003)):
        tags = {"best.lr": lr, "best.trial": number, "best.optimizer": "adam",
                "best.val_loss": lr * 10, "best.flag": True}
        points = tracking.best_points(tags, number)
        assert {key for key, _, _ in points} == {"best/lr", "best/trial", "best/val_loss"}
        tracker.log_run(parent, params={}, tags=tags, metrics=points, files={})
    run = tracker.client.get_run(parent)
    assert run.data.metrics["best/lr"] == 0.003 and run.data.metrics["best/trial"] == 5
    assert [(m.step, m.value) for m in tracker.client.get_metric_history(parent, "best/lr")] \
        == [(1, 0.01), (5, 0.003)]


def test_the_runs_table_view_is_an_experiment_tag(tmp_path: Path) -> None:
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "suite", run_dir=tmp_path)
    tracker.set_runs_view(tracking.runs_view(["mse", "acc", "mse"], ["loss"]))
    view = json.loads(tracker.client.get_experiment(tracker.experiment_id).tags[RUNS_VIEW_TAG])
    columns = view["selectedColumns"]
    assert "metrics.`final/mse_mean`" in columns and "metrics.`test/acc`" in columns
    assert "tags.`regularization`" in columns and "metrics.`best/val_loss`" in columns
    assert len(columns) == len(set(columns))


@pytest.mark.parametrize(("final", "status", "expected"), [
    (True, "completed", "Final seed 3 of `c`: complete after 20 steps; test mse = 0.125 "
                        "(solved)."),
    (False, "stopped", "Trial 4 (seed 7) of `c`: pruned after 20 steps; val mse = 0.25."),
    (False, "diverged", "Trial 4 (seed 7) of `c`: diverged at step 12 after 20 steps."),
])
def test_a_run_describes_itself(final: bool, status: str, expected: str) -> None:
    class Task:
        metric = "mse"

    result = TrainResult(status=status, steps_done=20,
                         diverged_at=12 if status == "diverged" else None,
                         evals=[] if status == "diverged" else [{"step": 20, "mse": 0.25}],
                         test={"mse": 0.125} if final else {}, solved=final)
    line = tracking.run_description(result, Task(), configuration="c", final=final,
                                    seed=3 if final else 7, number=4)
    assert line == expected


def test_a_picture_that_cannot_be_drawn_costs_the_run_nothing(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A diverged run's values (inf, NaN) draw; a figure that fails anyway is left out with
    a warning, and the run's other pictures and records go on."""
    steps = [{"step": i, "train_loss": math.inf if i > 5 else 1 / i, "grad_norm": math.nan,
              "clipped": 0} for i in range(1, 11)]
    evals = [{"step": 5, "loss": math.nan, "mse": math.inf}]
    out = figures.run_figures(steps, evals, {"profiles": _profiles({0: [1.0, 0.5]})}, "mse")
    assert set(out) == {figures.CURVES_FIGURE, figures.PROFILE_FIGURE}

    def broken(*args: Any) -> None:
        raise ValueError("Axis limits cannot be NaN or Inf")

    monkeypatch.setattr(figures, "learning_curves", broken)
    out = figures.run_figures(steps, evals, {"profiles": _profiles({0: [1.0, 0.5]})}, "mse")
    assert set(out) == {figures.PROFILE_FIGURE}
    assert "figure figures/learning_curves.png not drawn: Axis limits" in caplog.text


def test_reading_an_artifact_shows_no_progress_bar(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """MLflow draws a "Downloading artifacts" bar on stderr per artifact read (a parent's
    heatmap reads its seed's profiles; a report on a server reads dozens): off."""
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "suite", run_dir=tmp_path)
    run = tracker.parent_run("c", {})
    tracker.log_text(run, "step,t,norm,kind\n0,1,1.0,h\n", "diagnostics/profiles.csv")
    capfd.readouterr()
    assert tracker.load_table(run, "diagnostics/profiles.csv")[0]["kind"] == "h"
    printed = capfd.readouterr()
    assert "Downloading artifacts" not in printed.err + printed.out
