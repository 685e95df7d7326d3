"""The suite end to end: real Optuna journal storage, real MLflow SQLite store, real workers."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from bench import config, tuning
from bench.cli.main import main
from testkit.processes import default_sigint, freeze_when, signal_frozen
from testkit.suites import SMALL, write_suite

pytestmark = pytest.mark.slow


def _studies(run_dir: Path) -> dict[str, optuna.Study]:
    storage = JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


def _runs(run_dir: Path, name: str) -> list:
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    return list(client.search_runs([experiment.experiment_id], max_results=1000)), client


def test_small_suite_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_suite(tmp_path, SMALL)
    runs_dir = tmp_path / "runs"
    assert main(["run", str(config), "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "adding: test mse over all final seeds" in out and "lstm" in out
    assert "progress: 8/8 runs done (100%), 0 running, 0 diverged" in out  # no terminal: a line
    run_dir = runs_dir / "small"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] == "small"
    _check_small_studies(run_dir)
    runs = _check_small_runs(run_dir, tmp_path)

    # Running it again changes nothing: everything is done.
    assert main(["run", str(config), "--runs-dir", str(runs_dir)]) == 0
    assert len(_runs(run_dir, "small")[0]) == len(runs)
    assert main(["status", "small", "--runs-dir", str(runs_dir)]) == 0
    assert "adding-T8/lstm/none/norm" in capsys.readouterr().out
    _check_status_for_scripts(runs_dir)


def _check_status_for_scripts(runs_dir: Path) -> None:
    import csv
    import io
    import json

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["status", "small", "--runs-dir", str(runs_dir), "--json"]) == 0
    status = json.loads(out.getvalue())
    assert status["suite"] == "small"
    rows = {r["configuration"]: r for r in status["configurations"]}
    assert sorted(rows) == ["adding-T8/lstm/none/norm", "adding-T8/rnn/none/norm"]
    assert all(r["complete"] == 2 and r["finals"] == "2/2" and r["best"] > 0
               for r in rows.values())
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["status", "small", "--runs-dir", str(runs_dir), "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["configuration"] for r in table] == list(rows)
    assert all(float(r["best"]) == rows[r["configuration"]]["best"] for r in table)


def _check_small_studies(run_dir: Path) -> None:
    studies = _studies(run_dir)
    assert sorted(studies) == sorted(
        f"small/adding-T8/{m}/none/norm{suffix}" for m in ("rnn", "lstm")
        for suffix in ("", "/final"))
    for name, study in studies.items():
        states = [t.state for t in study.trials]
        assert states == [optuna.trial.TrialState.COMPLETE] * 2, (name, states)
        if name.endswith("/final"):
            assert sorted(t.params["seed"] for t in study.trials) == [1000, 1001]
            assert all("mse" in t.user_attrs["test"] for t in study.trials)
        else:
            assert all(set(t.params) == {"lr", "clip"} for t in study.trials)
            assert all(sorted(t.intermediate_values) == [10] for t in study.trials)
            # Tuning never reads the test split; each trial trains on its own seed.
            assert not any("test" in t.user_attrs or "solved" in t.user_attrs
                           for t in study.trials)
            assert len({t.user_attrs["seed"] for t in study.trials}) == 2


def _check_small_runs(run_dir: Path, tmp_path: Path) -> list:
    runs, client = _runs(run_dir, "small")
    parents = [r for r in runs if r.data.tags.get("role") == "configuration"]
    trials = [r for r in runs if r.data.tags.get("role") == "trial"]
    finals = [r for r in runs if r.data.tags.get("role") == "final"]
    assert len(parents) == 2 and len(trials) == 4 and len(finals) == 4
    started = sorted(trials + finals, key=lambda r: r.info.start_time)
    assert [r.data.tags["role"] for r in started] == ["trial"] * 4 + ["final"] * 4
    first_round = {r.data.tags["configuration"] for r in started[:2]}
    assert len(first_round) == 2  # tuning goes breadth-first over configurations
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in trials:  # validation only: no test metric, no trivial test score
        assert not [k for k in run.data.metrics if k.startswith("test/") or "test_" in k]
        assert "baseline/val_loss" in run.data.metrics and "solved" not in run.data.tags
        assert run.data.params["seed"] == run.data.tags["seed"] != "0"
    for run in finals:
        assert {"test/mse", "test/normalized", "baseline/test_loss", "baseline/test_mse"} <= \
            set(run.data.metrics)
        assert run.data.metrics["test/normalized"] == pytest.approx(
            run.data.metrics["test/loss"] / run.data.metrics["baseline/test_loss"])
    parent_ids = {r.info.run_id for r in parents}
    assert all(r.data.tags["mlflow.parentRunId"] in parent_ids for r in trials + finals)
    for parent in parents:
        assert {"task", "seq_len", "model", "regularization", "clipping", "config_hash",
                "git_commit", "version.torch"} <= set(parent.data.tags)
        assert "final/mse_mean" in parent.data.metrics and "best.lr" in parent.data.tags
        study = f"small/{parent.data.tags['configuration']}"
        assert parent.data.tags["optuna.study"] == study
        study_id = _studies(run_dir)[study]._study_id
        assert parent.data.tags["optuna.dashboard"] == \
            f"http://127.0.0.1:8080/dashboard/studies/{study_id}"  # where `ui` serves it
        assert parent.data.tags["optuna.dashboard"] in parent.data.tags["mlflow.note.content"]
        assert [a.path for a in client.list_artifacts(parent.info.run_id)] == [
            "config.yaml", "figures"]  # figures/gradient_flow.png: its first seed's heatmap
    _check_final_run(client, finals[0], tmp_path)
    return runs


def _check_final_run(client: MlflowClient, run: Any, tmp_path: Path) -> None:
    assert {"lr", "clip", "model", "hidden_size", "n_params", "seed", "steps"} <= set(
        run.data.params)
    assert {"train/loss", "grad/norm", "val/loss", "test/mse", "grad/clip_rate",
            "grad/decay_rate", "weights/spectral_radius"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 21))
    profile_steps = {m.step for m in client.get_metric_history(run.info.run_id,
                                                               "grad/decay_rate")}
    assert profile_steps == {0, 10, 20}  # initialisation, schedule, after training
    steps = [a.path for a in client.list_artifacts(run.info.run_id) if a.path == "curves.csv"]
    curves = pd.read_csv(client.download_artifacts(run.info.run_id, steps[0], str(tmp_path)))
    assert list(curves.columns) == ["step", "train_loss", "grad_norm", "clipped"]
    assert curves["step"].tolist() == list(range(1, 21))
    assert curves["train_loss"].tolist() == pytest.approx([m.value for m in sorted(
        history, key=lambda m: m.step)])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "diagnostics")}
    assert {"diagnostics/profiles.csv", "diagnostics/summaries.csv",
            "diagnostics/spectra.csv"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "diagnostics/profiles.csv", str(tmp_path))
    header, *rows = Path(local).read_text().splitlines()
    assert header == "step,t,norm,kind" and len(rows) >= 3 * 8


def test_workers_take_the_callers_directory_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers fork from a server that lives as long as this process: a later run that
    changed directory and environment must still reach its workers (relative --runs-dir,
    MLFLOW_TRACKING_URI)."""
    spec = {**SMALL, "name": "moved", "models": ["rnn"],
            "training": {"steps": 10, "batch_size": 16, "eval_every": 10},
            "tuning": {"trials": 1, "sampler": "random", "pruner": "none"},
            "final": {"seeds": 1}}
    config = write_suite(tmp_path, spec)
    assert main(["run", str(config), "--runs-dir", str(tmp_path / "first")]) == 0  # server up
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["run", str(config), "--runs-dir", "runs"]) == 0
    assert (elsewhere / "runs" / "moved" / "optuna.journal").exists()
    assert not (elsewhere / "runs" / "moved" / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'env.db'}")
    runs = client.search_runs([client.get_experiment_by_name("moved").experiment_id])
    assert sorted(r.data.tags["role"] for r in runs) == ["configuration", "final", "trial"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_case_built_to_prune(tmp_path: Path) -> None:
    spec = {**SMALL, "name": "prune", "models": ["lstm"], "clipping": ["none"],
            "training": {"steps": 60, "batch_size": 32, "eval_every": 10},
            "search": {"lr": {"choices": [0.03, 1.0e-7]}},
            "tuning": {"trials": 8, "sampler": "random", "pruner": "median"},
            "final": {"seeds": 1}, "diagnostics": {"probe_every": 1000}}
    runs_dir = tmp_path / "runs"
    assert main(["run", str(write_suite(tmp_path, spec)), "--runs-dir", str(runs_dir)]) == 0
    study = _studies(runs_dir / "prune")["prune/adding-T10/lstm/none/none".replace("T10", "T8")]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [(t.params, t.state) for t in study.trials]
    assert all(t.params["lr"] == 1.0e-7 for t in pruned)  # only the hopeless ones
    assert all(max(t.intermediate_values) < 60 for t in pruned)
    assert study.best_trial.params["lr"] == 0.03


def test_successive_halving_stops_trials_at_its_rungs(tmp_path: Path) -> None:
    spec = {**SMALL, "name": "halving", "models": ["lstm"], "clipping": ["none"],
            "training": {"steps": 90, "batch_size": 32, "eval_every": 10},
            "search": {"lr": {"choices": [0.03, 1.0e-7]}},
            "tuning": {"trials": 9, "sampler": "random", "pruner": "halving"},
            "final": {"seeds": 1}, "diagnostics": {"probe_every": 1000}}
    runs_dir = tmp_path / "runs"
    assert main(["run", str(write_suite(tmp_path, spec)), "--runs-dir", str(runs_dir)]) == 0
    study = _studies(runs_dir / "halving")["halving/adding-T8/lstm/none/none"]
    assert tuning.halving_rungs(config.load(tmp_path / "halving.yaml")) == [10, 30]
    trials = sorted(study.trials, key=lambda t: t.number)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) >= 4, [(t.params, t.state) for t in trials]
    for t in pruned:  # stopped exactly at a rung, having run only that far
        assert max(t.intermediate_values) in (10, 30)
        assert t.user_attrs["steps_done"] == max(t.intermediate_values)
    first_good = next(t.number for t in trials if t.params["lr"] == 0.03)
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in trials
               if t.number > first_good and t.params["lr"] == 1.0e-7)
    assert study.best_trial.params["lr"] == 0.03


def _journal_trials(run_dir: Path) -> list:
    """The journal's trials (none before it is written); one that cannot be read raises."""
    if not (run_dir / "optuna.journal").exists():
        return []
    return [t for s in _studies(run_dir).values() for t in s.trials]


def _freeze_or_fail(proc: subprocess.Popen, ready: Callable[[], bool], what: str) -> None:
    """Freeze ``proc``'s group once ``ready()``, or fail with what it printed."""
    try:
        freeze_when(proc.pid, ready, timeout=120, what=what)
    except AssertionError as err:
        proc.kill()
        pytest.fail(f"{err}: {proc.stderr.read()}")


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_resume_after_an_interrupted_run(tmp_path: Path, how: str) -> None:
    spec = {**SMALL, "name": "resume", "training": {"steps": 300, "batch_size": 16,
                                                    "eval_every": 50}}
    config = write_suite(tmp_path, spec)
    runs_dir = tmp_path / "runs"
    run_dir = runs_dir / "resume"
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--runs-dir", str(runs_dir),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=default_sigint)

    def done_and_training() -> bool:
        trials = _journal_trials(run_dir)
        done = any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        training = any(t.state == optuna.trial.TrialState.RUNNING  # its MLflow run open
                       and "mlflow_run_id" in t.user_attrs for t in trials)
        return done and training

    _freeze_or_fail(proc, done_and_training, "a finished and a running trial")
    signal_frozen(proc.pid, signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    interrupted_run = [t for t in _journal_trials(run_dir)
                       if t.state == optuna.trial.TrialState.RUNNING or
                       t.user_attrs.get("outcome") == "interrupted"]
    assert interrupted_run

    assert main(["run", str(config), "--runs-dir", str(runs_dir), "--workers", "2"]) == 0
    for name, study in _studies(run_dir).items():
        c = {s: sum(1 for t in study.trials if t.state == s) for s in optuna.trial.TrialState}
        assert c[optuna.trial.TrialState.COMPLETE] == 2, name  # the budget, not more
        assert c[optuna.trial.TrialState.RUNNING] == 0 and c[optuna.trial.TrialState.WAITING] == 0
        for failed in (t for t in study.trials if t.state == optuna.trial.TrialState.FAIL):
            assert failed.user_attrs["outcome"] in ("interrupted", "over_budget"), name
        if name.endswith("/final"):
            seeds = [t.params["seed"] for t in study.trials
                     if t.state == optuna.trial.TrialState.COMPLETE]
            assert sorted(seeds) == [1000, 1001], name  # no final seed run twice
    runs, _ = _runs(run_dir, "resume")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status in ("KILLED", "FAILED")]
    assert killed and all(r.data.tags.get("state") == "interrupted" for r in killed)
    finished_finals = [r for r in runs if r.data.tags.get("role") == "final"
                       and r.info.status == "FINISHED"]
    assert len(finished_finals) == 4
    assert len({(r.data.tags["configuration"], r.data.tags["seed"])
                for r in finished_finals}) == 4


def _told(trial: Any) -> bool:
    """Told to Optuna how it ran (``tuning.tell``): its result is kept."""
    return trial.state != optuna.trial.TrialState.RUNNING and "steps_done" in trial.user_attrs


def test_kill_9_loses_no_records_beyond_the_runs_in_flight(tmp_path: Path) -> None:
    """Workers build a run's records in the background while they train the next one and
    keep them on disk (the spool) before taking another; they are sent from there, some
    runs behind. So a ``kill -9`` mid-suite leaves at most one run per worker told to
    Optuna with records only in memory. Resuming writes what the spool holds (those runs
    end complete: params, metrics, curves, ended, no ``tracking`` tag), ends the others
    with their outcome's status, tagged ``tracking=incomplete``, and finishes the suite."""
    spec = {**SMALL, "name": "inflight", "tuning": {**SMALL["tuning"], "trials": 4},
            "training": {"steps": 150, "batch_size": 16, "eval_every": 50}}
    config_path = write_suite(tmp_path, spec)
    runs_dir = tmp_path / "runs"
    run_dir = runs_dir / "inflight"
    cmd = [sys.executable, "-m", "bench", "run", str(config_path), "--runs-dir",
           str(runs_dir), "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)

    def told_and_training() -> bool:  # several runs told, and more in flight
        trials = _journal_trials(run_dir)
        training = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                    and "mlflow_run_id" in t.user_attrs]
        return len([t for t in trials if _told(t)]) >= 3 and bool(training)

    _freeze_or_fail(proc, told_and_training, "told and running trials")
    signal_frozen(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    told = [t.user_attrs["mlflow_run_id"] for t in _journal_trials(run_dir) if _told(t)]
    runs, client = _runs(run_dir, "inflight")
    by_id = {r.info.run_id: r for r in runs}

    def complete(run_id: str) -> bool:
        run = by_id[run_id]
        return (run.info.status != "RUNNING" and "lr" in run.data.params
                and bool(run.data.metrics) and "curves.csv" in
                {a.path for a in client.list_artifacts(run_id)})

    incomplete = [run_id for run_id in told if not complete(run_id)]
    spool = run_dir / "spool"
    spooled = {path.stem.split("-", 1)[1] for path in spool.glob("*/*.json")}
    in_memory = set(incomplete) - spooled  # built, not yet kept on disk: one per worker
    assert len(told) >= 3 and len(in_memory) <= 2, (len(told), incomplete, spooled)

    assert main(["run", str(config_path), "--runs-dir", str(runs_dir), "--workers", "2"]) == 0
    runs, client = _runs(run_dir, "inflight")
    by_id = {r.info.run_id: r for r in runs}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert not spool.exists()  # every kept record written on resume, nothing left behind
    for run_id in in_memory:  # repaired: ended as its trial was told, marked incomplete
        assert by_id[run_id].data.tags.get("tracking") == "incomplete"
        assert by_id[run_id].data.tags["state"] in ("complete", "pruned", "diverged")
    for run_id in set(told) - in_memory:  # written whole, before the kill or on resume
        assert "tracking" not in by_id[run_id].data.tags and complete(run_id)


def test_an_error_while_training_fails_the_trial_and_its_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Told to Optuna as failed (not counted, not run again), its MLflow run ended FAILED,
    and the error goes on to the worker's caller."""
    from bench.run import suite as suites
    from bench.run import worker

    spec = config.load(write_suite(tmp_path, {**SMALL, "name": "broken", "models": ["rnn"]}))
    suite = suites.prepare(spec, tmp_path / "runs")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(worker, "run_job", broken)
    events: list[str] = []
    with pytest.raises(RuntimeError, match="out of memory"):
        worker.Worker(suite, 0, lambda kind, payload: events.append(kind)).run()
    assert events == ["start"]
    [trial] = _studies(suite.run_dir)["broken/adding-T8/rnn/none/norm"].trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["outcome"] == "failed"
    runs, _ = _runs(suite.run_dir, "broken")
    [run] = [r for r in runs if r.data.tags.get("role") == "trial"]
    assert (run.info.status, run.data.tags["state"]) == ("FAILED", "failed")
    assert suites.recover(suite, tuning.open_storage(None, suite.run_dir)) == {
        "interrupted": 0, "requeued": 0}


def test_resuming_a_suite_after_a_change(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Narrowing runs a subset and the whole suite is recorded; a change of meaning is
    refused in one line with nothing written; more trials, seeds and configurations are
    scheduled, finals of a superseded best run again, and the command ends."""
    config = write_suite(tmp_path, SMALL)
    runs_dir, run_dir = tmp_path / "runs", tmp_path / "runs" / "small"
    base = ["run", str(config), "--runs-dir", str(runs_dir)]
    assert main([*base, "--models", "rnn", "--trials", "1", "--seeds", "1"]) == 0
    capsys.readouterr()
    assert main(["status", "small", "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "adding-T8/rnn/none/norm" in out and "adding-T8/lstm/none/norm" in out  # whole

    journal = (run_dir / "optuna.journal").read_bytes()
    for change in (["--steps", "30"], ["--set", "tasks.adding.steps=30"]):  # one budget
        assert main([*base, "--models", "rnn", *change]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "budget was 20, now 30" in err, err
    assert (run_dir / "optuna.journal").read_bytes() == journal

    assert main([*base, "--trials", "3", "--seeds", "2", "--workers", "2"]) == 0
    capsys.readouterr()
    runs, _ = _runs(run_dir, "small")
    for name, study in _studies(run_dir).items():
        if not name.endswith("/final"):
            ended = [t for t in study.trials if t.state.is_finished()
                     and t.user_attrs.get("outcome") != "over_budget"]
            assert len(ended) == 3, name
            continue
        best = _studies(run_dir)[name.removesuffix("/final")].best_trial.params
        current = {t.number for t in study.trials if t.user_attrs.get("params") == best
                   and t.state == optuna.trial.TrialState.COMPLETE}
        assert sorted(study.trials[n].params["seed"] for n in current) == [1000, 1001], name
        shown = {int(r.data.tags["trial_number"]) for r in runs
                 if r.data.tags.get("study") == name and r.data.tags.get("role") == "final"}
        assert shown == current, name  # finals of an earlier best are marked superseded
        superseded = {t.number for t in study.trials
                      if t.state == optuna.trial.TrialState.COMPLETE} - current
        assert all(r.data.tags.get("role") == "superseded" for r in runs
                   if r.data.tags.get("study") == name
                   and int(r.data.tags["trial_number"]) in superseded)


def test_a_horizon_sweep_leaves_out_the_t_beyond_the_first_unsolved(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {**SMALL, "name": "sweep", "models": ["rnn"], "clipping": ["none"],
            "tasks": {"adding": {"seq_len": [4, 8, 16], "val_size": 64, "test_size": 64}},
            "tuning": {"trials": 1, "sampler": "tpe", "pruner": "none", "horizon": True},
            "final": {"seeds": 1}}
    runs_dir = tmp_path / "runs"
    assert main(["run", str(write_suite(tmp_path, spec)), "--runs-dir", str(runs_dir),
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "progress: 6/6 runs done (100%)" in out  # the left-out runs count as done
    assert out.count("beyond horizon") == 2
    runs, _ = _runs(runs_dir / "sweep", "sweep")
    nested = [r for r in runs if r.data.tags["role"] != "configuration"]
    assert {r.data.tags["configuration"] for r in nested} == {"adding-T4/rnn/none/none"}
    assert all(r.data.tags["solved"] == "False" for r in nested if r.data.tags["role"] == "final")
    parents = {r.data.tags["configuration"]: r for r in runs
               if r.data.tags["role"] == "configuration"}
    for name in ("adding-T8/rnn/none/none", "adding-T16/rnn/none/none"):
        assert parents[name].data.tags["state"] == "beyond_horizon"
        assert parents[name].info.status == "FINISHED"
    assert main(["status", "sweep", "--runs-dir", str(runs_dir)]) == 0
    assert capsys.readouterr().out.count("beyond horizon") == 2


def test_final_seeds_run_longest_first(tmp_path: Path) -> None:
    """The last jobs of a suite are its shortest: once tuning is done, final seeds go in
    the order of their configuration's mean trial time, longest first (README "How a suite
    runs"). T=128 trains several times longer per step than T=8."""
    spec = {**SMALL, "name": "order", "models": ["rnn"],
            "tasks": {"adding": {"seq_len": [8, 128], "val_size": 64, "test_size": 64}},
            "training": {**SMALL["training"], "steps": 200, "eval_every": 100}}
    config = write_suite(tmp_path, spec)
    runs_dir = tmp_path / "runs"
    assert main(["run", str(config), "--runs-dir", str(runs_dir), "--workers", "1",
                 "--quiet"]) == 0
    studies = _studies(runs_dir / "order")
    mean_trial = {name: sum(t.user_attrs["wall_time"] for t in s.trials) / len(s.trials)
                  for name, s in studies.items() if not name.endswith("/final")}
    long_, short = sorted(mean_trial, key=mean_trial.get, reverse=True)
    assert "adding-T128" in long_  # the premise: the longer sequences took longer
    finals = {name: [t.datetime_start for t in studies[f"{name}/final"].trials]
              for name in (long_, short)}
    assert max(finals[long_]) < min(finals[short])
