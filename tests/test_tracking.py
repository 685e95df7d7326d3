"""The MLflow boundary: only ``bench.tracking`` imports mlflow, nothing is set at import, the
read side hands out plain records, and a suite's store is resolved in one place."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import tracking

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p for package in ("bench", "tasks") for p in (ROOT / package).rglob("*.py"))


def _imports_mlflow(path: Path) -> list[int]:
    """Lines of ``path`` that import mlflow or one of its modules, at any depth."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(ROOT).as_posix() for p in MODULES])
def test_only_tracking_imports_mlflow(path: Path) -> None:
    lines = _imports_mlflow(path)
    if path == ROOT / "bench" / "tracking.py":
        assert lines, "bench.tracking is where mlflow is imported"
    else:
        assert lines == [], f"{path.relative_to(ROOT)} imports mlflow at line(s) {lines}"


def test_the_check_sees_imports_at_any_depth(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from mlflow.entities import Metric\n"
                      "    import mlflow.store.tracking.sqlalchemy_store\n")
    assert _imports_mlflow(source) == [4, 5]


def test_importing_sets_nothing() -> None:
    """Environment, loggers and the plotting theme are set by the set-up calls only."""
    code = (
        "import logging, os, sys\n"
        "import matplotlib\n"
        "grid = matplotlib.rcParams['axes.grid']\n"
        "import bench.tracking, bench.results, bench.report, bench.report.plots\n"
        "assert 'MLFLOW_HTTP_REQUEST_MAX_RETRIES' not in os.environ\n"
        "assert 'MLFLOW_HTTP_REQUEST_TIMEOUT' not in os.environ\n"
        "assert logging.getLogger('mlflow').level < logging.WARNING\n"
        "assert matplotlib.rcParams['axes.grid'] == grid\n"
        "bench.tracking.configure(); bench.tracking.configure()\n"
        "assert os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES'] == '0'\n"
        "assert os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] == '20'\n"
        "assert logging.getLogger('mlflow').level == logging.WARNING\n"
        "bench.report.plots.configure(); bench.report.plots.configure()\n"
        "assert matplotlib.get_backend().lower() == 'agg'\n"
        "assert matplotlib.rcParams['axes.grid']\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_HTTP_REQUEST", "MLFLOW_LOGGING"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_configure_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    tracking.configure()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


def test_resolve_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = tracking.default_tracking_uri(tmp_path)
    assert tracking.resolve_uri(None, tmp_path) == default
    assert default == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.resolve_uri(None, tmp_path) == "http://tracking:5000"
    assert tracking.resolve_uri("sqlite:////x.db", tmp_path) == "sqlite:////x.db"


def test_runs_read_back_as_plain_records(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    writer = tracking.Tracker(uri, "suite", run_dir=tmp_path)
    parent = writer.parent_run("adding-T8/rnn/none/none", {"task": "adding", "model": "rnn"})
    child = writer.start_run(parent, "final-0", {"role": "final", "seed": "1000"})
    writer.log_run(child, params={"lr": 0.01}, tags={"state": "complete"},
                   metrics=[(tracking.VAL_LOSS, 0.5, 10), (tracking.VAL_LOSS, 0.25, 20)],
                   files={tracking.PROFILES_TABLE: "step,t,norm\n0,1,0.5\n"})
    writer.end_run(child)

    reader = tracking.RunReader(uri, "suite")
    assert reader.experiment_id == tracking.find_experiment_id(uri, "suite")
    records = {r.name: r for r in reader.runs()}
    run = records["final-0"]
    assert isinstance(run, tracking.RunRecord)
    assert run.parent_id == parent and run.status == "FINISHED"
    assert run.tags["role"] == "final" and run.params["lr"] == "0.01"
    assert run.metrics[tracking.VAL_LOSS] == 0.25  # the latest value
    assert records["adding-T8/rnn/none/none"].tags["role"] == "configuration"
    assert reader.metric_history(child, tracking.VAL_LOSS) == [(10, 0.5), (20, 0.25)]
    assert reader.text(child, tracking.PROFILES_TABLE) == "step,t,norm\n0,1,0.5\n"
    assert reader.text(child, tracking.CONFUSION_TABLE) is None
    assert writer.load_table(child, tracking.PROFILES_TABLE) == [
        {"step": "0", "t": "1", "norm": "0.5"}]


def test_reading_creates_nothing(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tracking store"):
        tracking.RunReader(uri, "suite")
    assert not (tmp_path / "mlflow.db").exists()
    tracking.Tracker(uri, "other", run_dir=tmp_path).experiment_id  # noqa: B018
    with pytest.raises(FileNotFoundError, match="no MLflow experiment 'suite'"):
        tracking.RunReader(uri, "suite")
    assert tracking.find_experiment_id(uri, "suite") is None


def test_metric_keys_are_namespace_slash_name() -> None:
    assert tracking.metric_key("test", "mse") == "test/mse"
