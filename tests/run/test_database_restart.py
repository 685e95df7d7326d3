"""A PostgreSQL restart stops no machine: two ``gradbench run`` commands (one worker each)
share a suite of short trials, so that claims, heartbeats and tells commit all the time, and
the database is restarted twice under them; both exit 0 and every run is kept once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from testkit.servers import (
    MlflowServer,
    as_postgres,
    create_database,
    postgres_bin,
    postgres_server,
)
from testkit.waiting import wait_until

pytestmark = pytest.mark.slow

TRIALS, SEEDS, MODELS = 4, 2, ("rnn", "gru")
SUITE = {
    "name": "restart", "device": "cpu",
    "tasks": {"adding": {"seq_len": [8], "val_size": 64, "test_size": 64}},
    "models": list(MODELS), "regularization": ["none"], "clipping": ["norm"],
    "model": {"hidden_size": 8},
    "training": {"steps": 150, "batch_size": 16, "eval_every": 10},
    "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
               "clip": {"low": 0.5, "high": 5.0, "log": True}},
    "tuning": {"trials": TRIALS, "sampler": "tpe", "pruner": "none"},
    "final": {"seeds": SEEDS}, "diagnostics": {"probe_every": 20},
}
ENV = {"GRADBENCH_HEARTBEAT_S": "1", "GRADBENCH_GRACE_S": "6"}


def _data_dir(server: str) -> Path:
    """The cluster directory ``postgres_server`` made for ``server`` (its port in the opts)."""
    port = server.split(":")[1]
    return next(p for p in Path(tempfile.gettempdir()).glob("gradbench-pg-*/data")
                if f"-p {port} " in (p / "postmaster.opts").read_text()
                or f'"{port}"' in (p / "postmaster.opts").read_text())


def _restart(data: Path) -> None:
    pg_ctl = str(postgres_bin() / "pg_ctl")  # type: ignore[operator]
    subprocess.run(as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-l",
                                str(data / "server.log"), "-w", "restart"]),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def _studies(url: str) -> dict[str, optuna.Study]:
    storage = optuna.storages.RDBStorage(url)
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


def _done(url: str) -> int:
    """Complete trials and final seeds so far."""
    return sum(1 for s in _studies(url).values() for t in s.trials
               if t.state == optuna.trial.TrialState.COMPLETE)


def test_two_machines_ride_out_database_restarts(tmp_path: Path) -> None:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    config = tmp_path / "restart.yaml"
    config.write_text(yaml.safe_dump(SUITE))
    with postgres_server() as pg:
        url, data = create_database(pg, "restart"), _data_dir(pg)
        tracking = MlflowServer(tmp_path / "mlflow").start()
        procs = []
        try:
            for name in ("a", "b"):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bench", "run", str(config), "--runs-dir",
                     str(tmp_path / name), "--storage", url, "--tracking-uri", tracking.url],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True, env={**os.environ, **ENV}))

            def telling() -> bool:  # both machines are claiming and telling
                assert all(p.poll() is None for p in procs), "a machine stopped early"
                return _done(url) >= 2

            wait_until(telling, what="two runs told", timeout=240, every=0.5)
            for _ in range(2):
                _restart(data)
                time.sleep(3)  # the machines work between the restarts
            outputs = []
            for proc in procs:
                try:
                    outputs.append(proc.communicate(timeout=300)[0])
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    outputs.append(proc.communicate()[0])
            for name, proc, output in zip("ab", procs, outputs, strict=True):
                print(f"--- machine {name}, exit {proc.returncode}:\n{output[-6000:]}")
            assert [p.returncode for p in procs] == [0, 0], "see the machines' output above"
            _check_kept_once(url, tracking.url)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            tracking.stop()


def _check_kept_once(url: str, tracking: str) -> None:
    """Exactly the budget complete in Optuna, nothing left RUNNING, each run FINISHED once in
    MLflow and each complete trial so."""
    studies = _studies(url)
    complete = set()
    for name, study in studies.items():
        states = [t.state for t in study.trials]
        assert optuna.trial.TrialState.RUNNING not in states, name
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == (SEEDS if name.endswith("/final") else TRIALS), name
        complete |= {(name, t.number) for t in done}
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("restart")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=1000)
    keys = [(r.data.tags["study"], int(r.data.tags["trial_number"])) for r in runs
            if r.data.tags.get("role") in ("trial", "final")]
    assert len(keys) == len(set(keys)), "a run recorded FINISHED twice"
    assert set(keys) == complete
