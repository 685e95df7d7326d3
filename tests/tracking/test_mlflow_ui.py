"""A finished suite as the MLflow UI and optuna-dashboard show it, read through their APIs:
every final run's pictures, the report as a run of its own, the fields MLflow and Optuna users
read (best values, descriptions, source, the runs table's view, metric names), a resume with
more trials, and `gradbench ui` printing its links only, its dashboard links on its port.

One small suite is run once for the module (about 30 s); the resume comes last."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from bench import tuning
from bench.cli.main import main
from bench.names import RUNS_VIEW_TAG
from testkit.processes import default_sigint, read_lines, stop_command, wait_for_line
from testkit.servers import free_port
from testkit.suites import SMALL, write_suite

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


class Finished:
    """The small suite, run and reported once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = write_suite(root, SMALL)
        self.runs_dir = root / "runs"
        self.run_dir = self.runs_dir / "small"
        assert main(["run", str(self.config), "--runs-dir", str(self.runs_dir)]) == 0
        assert main(["report", str(self.config), "--runs-dir", str(self.runs_dir),
                     "--out", str(root / "report")]) == 0
        self.client = MlflowClient(f"sqlite:///{self.run_dir / 'mlflow.db'}")
        self.experiment = self.client.get_experiment_by_name("small")

    def runs(self, role: str) -> list[Any]:
        return list(self.client.search_runs([self.experiment.experiment_id],
                                            f"tags.role = '{role}'", max_results=1000))

    def paths(self, run: Any, folder: str) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run.info.run_id, folder)]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return Finished(tmp_path_factory.mktemp("mlflow-ui"))


def test_every_final_run_lists_its_pictures(suite: Finished, tmp_path: Path) -> None:
    finals = suite.runs("final")
    assert len(finals) == 4
    for run in finals:
        images = suite.paths(run, "figures")
        assert {"figures/gradient_profile.png", "figures/learning_curves.png",
                "figures/exact_split.png"} <= set(images)
        local = suite.client.download_artifacts(run.info.run_id, images[0], str(tmp_path))
        assert Path(local).read_bytes().startswith(PNG)
    for parent in suite.runs("configuration"):
        assert suite.paths(parent, "figures") == ["figures/gradient_flow.png"]


def test_the_report_is_a_run_of_its_own(suite: Finished, tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    (report,) = suite.runs("report")
    assert report.info.status == "FINISHED" and report.info.run_name == "report"
    assert "report/index.html" in suite.paths(report, "report")
    assert any(p.endswith(".png") for p in suite.paths(report, "report/figures"))
    page = suite.client.download_artifacts(report.info.run_id, "report/index.html",
                                           str(tmp_path))
    assert "rnn-gradbench report: suite small" in Path(page).read_text()
    capfd.readouterr()
    assert main(["report", str(suite.config), "--runs-dir", str(suite.runs_dir),
                 "--out", str(suite.root / "again")]) == 0
    assert [r.info.run_id for r in suite.runs("report")] == [report.info.run_id]  # replaced
    assert "in MLflow: run 'report'" in capfd.readouterr().out


def test_fields_read_as_mlflow_and_optuna_users_read_them(suite: Finished) -> None:
    for run in suite.runs("final") + suite.runs("trial"):
        tags = run.data.tags
        what = "Final seed" if tags["role"] == "final" else "Trial"
        assert tags["mlflow.note.content"].startswith(f"{what} ")
        assert f"`{tags['configuration']}`" in tags["mlflow.note.content"]
        assert tags["mlflow.source.git.commit"] == tags["git_commit"]
        assert tags["mlflow.source.name"] and tags["mlflow.source.type"] == "LOCAL"
    for parent in suite.runs("configuration"):
        metrics, tags = parent.data.metrics, parent.data.tags
        assert metrics["best/lr"] == pytest.approx(float(tags["best.lr"]))
        assert metrics["best/trial"] == float(tags["best.trial"])
        assert metrics["best/val_loss"] == pytest.approx(float(tags["best.val_loss"]))
    view = json.loads(suite.experiment.tags[RUNS_VIEW_TAG])
    assert {"metrics.`final/mse_mean`", "tags.`model`", "tags.`clipping`"} <= set(
        view["selectedColumns"])
    storage = tuning.open_storage(None, suite.run_dir)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        final = summary.study_name.endswith("/final")
        assert study.metric_names == ["val loss (final seed)" if final else "val loss"]


def test_ui_prints_its_links_only_and_the_runs_link_its_dashboard_port(
        suite: Finished) -> None:
    """Without --verbose: the two links and how to stop, nothing of the servers' own (their
    start-up, warnings, one line per request), on stdout and stderr both; each parent run's
    link to its study names the port the dashboard took."""
    port, dashboard_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "ui", str(suite.config), "--runs-dir",
         str(suite.runs_dir), "--port", str(port), "--dashboard-port", str(dashboard_port)],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint)
    seen: list[str] = []
    try:
        lines = read_lines(proc)
        wait_for_line(lines, "Ctrl-C stops", seen, timeout=150)
        printed = "".join(seen)
        mlflow = re.search(r"MLflow UI: (\S+)", printed)[1]
        dashboard = re.search(r"optuna-dashboard: (http://[^/]+)/dashboard", printed)[1]
        assert "workflowType=machine_learning&viewStateShareKey=gradbench" in mlflow
        for path in ("/", "/ajax-api/2.0/mlflow/experiments/search?max_results=5"):
            with urllib.request.urlopen(mlflow.split("/#")[0] + path, timeout=30) as answer:
                assert answer.status == 200  # request lines the server would log
        with urllib.request.urlopen(dashboard + "/api/meta", timeout=30) as answer:
            assert answer.status == 200
        for parent in suite.runs("configuration"):
            assert parent.data.tags["optuna.dashboard"].startswith(dashboard + "/dashboard/")
            assert parent.data.tags["optuna.dashboard"] in parent.data.tags[
                "mlflow.note.content"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        with contextlib.suppress(queue.Empty):  # what it printed while stopping
            while True:
                seen.append(lines.get(timeout=2))
    finally:
        stop_command(proc)
    said = [line.strip() for line in seen if line.strip()]
    assert [line.split(":")[0] for line in said] == ["MLflow UI", "optuna-dashboard",
                                                     "Ctrl-C stops them"], said


def test_a_resume_with_more_trials_moves_the_best_and_fails_on_nothing(
        suite: Finished) -> None:
    """More trials may find a better one: the parents' best values follow (a new point of
    each ``best/`` metric where it changed), and nothing immutable is written again."""
    assert main(["run", str(suite.config), "--runs-dir", str(suite.runs_dir),
                 "--trials", "5"]) == 0
    storage = tuning.open_storage(None, suite.run_dir)
    for parent in suite.runs("configuration"):
        study = optuna.load_study(study_name=parent.data.tags["optuna.study"], storage=storage)
        history = suite.client.get_metric_history(parent.info.run_id, "best/trial")
        latest = max(history, key=lambda m: (m.step, m.timestamp))
        assert latest.value == study.best_trial.number == int(parent.data.tags["best.trial"])
        assert len([t for t in study.trials if t.state.is_finished()]) == 5
