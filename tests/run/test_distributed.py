"""Many machines and faults, with real servers: PostgreSQL for Optuna, ``mlflow server``.

Two ``gradbench run`` processes with their own run directories stand for two machines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from testkit.processes import freeze_when, signal_frozen
from testkit.servers import MlflowServer, create_database
from testkit.waiting import wait_until

pytestmark = pytest.mark.slow

SUITE = {
    "name": "dist",
    "device": "cpu",
    "tasks": {"adding": {"seq_len": [8], "val_size": 64, "test_size": 64}},
    "models": ["rnn", "gru"],
    "regularization": ["none"],
    "clipping": ["norm"],
    "model": {"hidden_size": 8},
    "training": {"steps": 40, "batch_size": 16, "eval_every": 20},
    "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
               "clip": {"low": 0.5, "high": 5.0, "log": True}},
    "tuning": {"trials": 3, "sampler": "tpe", "pruner": "none"},
    "final": {"seeds": 2},
    "diagnostics": {"probe_every": 20},
}
TRIALS, SEEDS = 3, 2
FAST_HEARTBEAT = {"GRADBENCH_HEARTBEAT_S": "1", "GRADBENCH_GRACE_S": "4"}


def _config(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "dist.yaml"
    path.write_text(yaml.safe_dump({**SUITE, **changes}))
    return path


def _start(config: Path, runs_dir: Path, *flags: str, env: dict | None = None):
    # one worker a machine (the default is one per core): a trial's worker names its machine
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--runs-dir", str(runs_dir),
           "--workers", "1", *flags]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"run did not finish: {out[-3000:]}")
    return out


def _studies(url: str) -> dict[str, optuna.Study]:
    storage = optuna.storages.RDBStorage(url)
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


def _check_budget_and_uniqueness(studies: dict[str, optuna.Study]) -> None:
    """Every configuration: exactly the budget, no final seed twice, only benign failures."""
    assert len(studies) == 4
    for name, study in studies.items():
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == (SEEDS if name.endswith("/final") else TRIALS), name
        assert not [t for t in study.trials if t.state in (
            optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)], name
        if name.endswith("/final"):
            assert sorted(t.params["seed"] for t in done) == [1000, 1001], name


def _mlflow_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _check_recorded_once(studies: dict[str, optuna.Study], runs: list) -> None:
    parents = [r for r in runs if r.data.tags.get("role") == "configuration"]
    assert sorted(r.data.tags["configuration"] for r in parents) == [
        "adding-T8/gru/none/norm", "adding-T8/rnn/none/norm"]
    finished = {}
    for run in runs:
        if run.data.tags.get("role") in ("trial", "final") and run.info.status == "FINISHED":
            key = (run.data.tags["study"], int(run.data.tags["trial_number"]))
            assert key not in finished, f"{key} recorded twice"
            finished[key] = run
    complete = {(name, t.number) for name, s in studies.items() for t in s.trials
                if t.state == optuna.trial.TrialState.COMPLETE}
    assert set(finished) == complete


def test_two_machines_share_one_suite(tmp_path: Path, postgres: str,
                                      mlflow_server: MlflowServer) -> None:
    url = create_database(postgres, "two_machines")
    config = _config(tmp_path)
    flags = ("--storage", url, "--tracking-uri", mlflow_server.url)
    procs = [_start(config, tmp_path / f"machine{i}", *flags) for i in (1, 2)]
    outputs = [_finish(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # Each machine counts the whole suite's runs (2 x (3 + 2) = 10), not only its own: the one
    # that ends last has seen them all done.
    assert any("progress: 10/10 runs done (100%)" in out for out in outputs), outputs
    assert not any(re.search(r"progress: \d+/5 runs", out) for out in outputs)

    studies = _studies(url)
    _check_budget_and_uniqueness(studies)
    runs = _mlflow_runs(mlflow_server.url, "dist")
    _check_recorded_once(studies, runs)
    workers = {t.user_attrs["worker"] for s in studies.values() for t in s.trials
               if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(workers) == 2, "both machines should have run trials"

    # The password never shows: terminal output, run directories, MLflow params and tags.
    assert all("s3cret-pw" not in out for out in outputs)
    for machine in ("machine1", "machine2"):
        recorded = (tmp_path / machine / "dist" / "config.yaml").read_text()
        assert "s3cret-pw" not in recorded and "postgres:***@" in recorded
    for run in runs:
        values = [*run.data.params.values(), *run.data.tags.values()]
        assert not [v for v in values if "s3cret-pw" in v], run.info.run_id

    status = subprocess.run([sys.executable, "-m", "bench", "status", "dist", "--runs-dir",
                             str(tmp_path / "machine1"), "--storage", url],
                            capture_output=True, text=True, check=True)
    assert "adding-T8/gru/none/norm" in status.stdout and "2/2" in status.stdout
    masked = subprocess.run([sys.executable, "-m", "bench", "status", "dist", "--runs-dir",
                             str(tmp_path / "machine1")], capture_output=True, text=True)
    assert masked.returncode == 2 and "--storage" in masked.stderr


def _running_trial_of(url: str, pgid: int) -> bool:
    for study in _studies(url).values():
        for t in study.trials:
            if t.state != optuna.trial.TrialState.RUNNING or "worker" not in t.user_attrs:
                continue
            pid = int(t.user_attrs["worker"].split(":")[1])
            try:
                if os.getpgid(pid) == pgid:
                    return True
            except ProcessLookupError:
                continue
    return False


def test_a_killed_worker_is_detected_and_its_trial_rerun(tmp_path: Path, postgres: str,
                                                         mlflow_server: MlflowServer) -> None:
    url = create_database(postgres, "killed_worker")
    config = _config(tmp_path, training={"steps": 400, "batch_size": 16, "eval_every": 100})
    flags = ("--storage", url, "--tracking-uri", mlflow_server.url)
    victim = _start(config, tmp_path / "victim", *flags, env=FAST_HEARTBEAT)
    freeze_when(victim.pid, lambda: _running_trial_of(url, victim.pid), timeout=120,
                what="the victim running a trial")
    survivor = _start(config, tmp_path / "survivor", *flags, env=FAST_HEARTBEAT)
    signal_frozen(victim.pid, signal.SIGKILL)
    victim.communicate()
    out = _finish(survivor)
    assert survivor.returncode == 0, out

    studies = _studies(url)
    _check_budget_and_uniqueness(studies)
    failed = [(name, t) for name, s in studies.items() for t in s.trials
              if t.state == optuna.trial.TrialState.FAIL
              and t.user_attrs.get("outcome", "interrupted") == "interrupted"]
    assert failed, "the killed trial should be marked failed"
    for name, dead in failed:
        if dead.params:
            retried = [t for t in studies[name].trials if t.user_attrs.get("retry_of") ==
                       dead.number and t.state == optuna.trial.TrialState.COMPLETE]
            assert len(retried) == 1 and retried[0].params == dead.params
    runs = _mlflow_runs(mlflow_server.url, "dist")
    _check_recorded_once(studies, runs)
    killed = [r for r in runs if r.info.status in ("KILLED", "FAILED")]
    assert killed and not [r for r in runs if r.info.status == "RUNNING"
                           and r.data.tags.get("role") != "configuration"]


def _journal_studies(run_dir: Path) -> dict[str, optuna.Study]:
    """The studies of a run directory's journal (none before it is written). A journal that
    cannot be read raises its error: a wait on it fails at once, not at its deadline."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not (run_dir / "optuna.journal").exists():
        return {}
    storage = JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage, False)}


def _journal_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    return [t for study in _journal_studies(run_dir).values() for t in study.trials]


def _journal_states(run_dir: Path) -> list[optuna.trial.TrialState]:
    return [t.state for t in _journal_trials(run_dir)]


def _training(run_dir: Path) -> bool:
    """A trial is training: claimed, and its MLflow run already opened."""
    return any(t.state == optuna.trial.TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
               for t in _journal_trials(run_dir))


def test_tracking_server_down_for_a_while(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server").start()
    try:
        config = _config(tmp_path, training={"steps": 200, "batch_size": 16, "eval_every": 50})
        run_dir = tmp_path / "runs" / "dist"
        proc = _start(config, tmp_path / "runs", "--tracking-uri", server.url)
        wait_until(lambda: optuna.trial.TrialState.COMPLETE in _journal_states(run_dir),
                   what="a trial complete")
        server.stop()  # the outage: the workers retry with backoff meanwhile
        time.sleep(3)  # its length (nothing waits for it to be over)
        server.start()
        out = _finish(proc)
        assert proc.returncode == 0, out
        runs = _mlflow_runs(server.url, "dist")
        # every trial and seed recorded once: exactly, no run written twice by a retry
        nested = [r for r in runs if r.data.tags.get("role") in ("trial", "final")
                  and r.info.status == "FINISHED"]
        assert len(nested) == 2 * (TRIALS + SEEDS), len(nested)
        _check_recorded_once(_journal_studies(run_dir), runs)
        assert not [r for r in runs if r.info.status == "RUNNING"]
    finally:
        server.stop()


def test_tracking_server_gone_fails_clearly_and_keeps_the_trial(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "server").start()
    run_dir = tmp_path / "runs" / "dist"
    try:
        config = _config(tmp_path, training={"steps": 300, "batch_size": 16, "eval_every": 50})
        proc = _start(config, tmp_path / "runs", "--tracking-uri", server.url,
                      env={"GRADBENCH_TRACKING_RETRY_S": "3"})
        wait_until(lambda: _training(run_dir), what="a trial training", every=0.1)
        server.stop()  # during training: the trial ends, is told to Optuna, then logging fails
        out = _finish(proc)
        assert proc.returncode != 0
        assert "unreachable" in out and server.url in out, out[-2000:]
        assert "Traceback" not in out, out[-3000:]  # one line per cause (--verbose: more)
        assert len([line for line in out.splitlines() if "unreachable" in line]) == 1, out
        assert optuna.trial.TrialState.COMPLETE in _journal_states(run_dir)  # kept
        server.start()  # back: the same command finishes the suite
        again = _start(config, tmp_path / "runs", "--tracking-uri", server.url)
        out = _finish(again)
        assert again.returncode == 0, out
        runs = _mlflow_runs(server.url, "dist")
        assert not [r for r in runs if r.info.status == "RUNNING"]
        # the records it could not send were kept in the spool, and the rerun wrote them
        assert not [r for r in runs if r.data.tags.get("tracking") == "incomplete"]
        finished = [r for r in runs if r.data.tags.get("role") in ("trial", "final")
                    and r.info.status == "FINISHED"]
        assert finished and all(r.data.metrics and r.data.params for r in finished)
        assert not list((run_dir / "spool").glob("*/*.json"))
    finally:
        server.stop()


def test_machines_agree_on_a_parent_run_stamped_earlier_but_seen_later(tmp_path: Path) -> None:
    """Another machine's parent run, stamped before ours but visible only after our create
    (a slow request), must win everywhere: we wait, see it, and delete our own."""
    import threading

    from bench.tracking import Tracker, default_tracking_uri

    tracker = Tracker(default_tracking_uri(tmp_path), "race", run_dir=tmp_path)
    name, tags = "adding-T8/rnn/none/norm", {"task": "adding"}
    ours: dict = {}
    thread = threading.Thread(target=lambda: ours.update(
        tracker.ensure_parent_runs({name: tags}, settle_s=4.0)))
    thread.start()
    # ours exists (and waits out its settling time); theirs commits late, stamped earlier
    mine = wait_until(lambda: tracker.find_runs("tags.role = 'configuration'"),
                      what="our parent run created", every=0.05)
    client = MlflowClient(tracker.uri)
    assert len(mine) == 1
    theirs = client.create_run(
        tracker.experiment_id, start_time=mine[0].info.start_time - 50,
        tags={**tags, "configuration": name, "role": "configuration"}).info.run_id
    thread.join()
    assert ours[name] == (theirs, False)
    left = tracker.find_runs("tags.role = 'configuration'")
    assert [r.info.run_id for r in left] == [theirs]


def test_a_machine_started_mid_trial_takes_nothing_from_the_other(
        tmp_path: Path, postgres: str, mlflow_server: MlflowServer) -> None:
    """The second machine's start-up recovery and its periodic ones read the heartbeats:
    the first machine's live trials are left alone, and both machines end with exit 0."""
    url = create_database(postgres, "mid_trial")
    config = _config(tmp_path, training={"steps": 2000, "batch_size": 16, "eval_every": 500},
                     tuning={"trials": TRIALS, "sampler": "tpe", "pruner": "none"})
    flags = ("--storage", url, "--tracking-uri", mlflow_server.url)
    env = {"GRADBENCH_HEARTBEAT_S": "1", "GRADBENCH_GRACE_S": "8"}
    first = _start(config, tmp_path / "first", *flags, env=env)
    wait_until(lambda: _running_trial_of(url, first.pid), what="the first machine running a trial")
    second = _start(config, tmp_path / "second", *flags, env=env)
    outputs = [_finish(first), _finish(second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    studies = _studies(url)
    _check_budget_and_uniqueness(studies)
    taken = [(name, t.number) for name, s in studies.items() for t in s.trials
             if t.user_attrs.get("outcome") == "interrupted" or "retry_of" in t.user_attrs]
    assert not taken, taken
    assert all("s3cret-pw" not in out and "View run" not in out for out in outputs)


def _live_members(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies, dead but not reaped by a
    container's init, do not count)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_the_command_leaves_no_worker(tmp_path: Path) -> None:
    """``kill -9`` of ``gradbench run`` alone: its workers (forked by the fork server, not
    by it) stop within seconds, their trial marked interrupted; a rerun finishes the suite."""
    config = _config(tmp_path, training={"steps": 2000, "batch_size": 16, "eval_every": 500})
    run_dir = tmp_path / "runs" / "dist"
    proc = _start(config, tmp_path / "runs", "--workers", "2")
    freeze_when(proc.pid, lambda: _training(run_dir), timeout=120, what="a trial training")
    assert len(_live_members(proc.pid)) >= 3  # the command, the fork server, workers
    signal_frozen(proc.pid, signal.SIGKILL, leader_only=True)
    proc.communicate()
    left: list[int] = []

    def gone() -> bool:
        left[:] = _live_members(proc.pid)
        return not left

    try:  # they stop within seconds; the deadline only bounds a hang
        wait_until(gone, what="the workers gone", timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}: left running: {left}") from None
    outcomes = [t.user_attrs.get("outcome") for t in _journal_trials(run_dir)
                if t.state == optuna.trial.TrialState.FAIL]
    assert "interrupted" in outcomes
    again = _start(config, tmp_path / "runs")
    out = _finish(again)
    assert again.returncode == 0, out
    done = [t for t in _journal_trials(run_dir) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 * (TRIALS + SEEDS)


def test_the_many_machines_recipe_on_loopback(tmp_path: Path, postgres: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Running on many machines", on one host: roles and databases made with
    psql, an MLflow server on PostgreSQL (its password in PGPASSWORD, not on its command
    line) that checks the Host header, a tracking URI under a
    host name (with a password, as a proxy might want), the storage password from
    PGPASSWORD. Nothing prints a password; without --allowed-hosts the run is refused in one
    line that names the fix."""
    import socket

    host, port = postgres.split(":")
    sql = ["CREATE ROLE gradbench LOGIN PASSWORD 's3cret-pw'",
           "CREATE DATABASE gradbench OWNER gradbench",
           "CREATE ROLE mlflow LOGIN PASSWORD 's3cret-pw'", "CREATE DATABASE mlflow OWNER mlflow"]
    subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                    *[arg for command in sql for arg in ("-c", command)]],
                   check=True, capture_output=True)
    name = socket.gethostname()  # resolves to this host, and is not "localhost"
    backend = f"postgresql+psycopg2://mlflow@{postgres}/mlflow"
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")  # the servers' environment
    config = _config(tmp_path, tuning={"trials": 2, "sampler": "tpe", "pruner": "none"},
                     final={"seeds": 1})
    storage = f"postgresql+psycopg2://gradbench@{postgres}/gradbench"
    env = {"PGPASSWORD": "s3cret-pw", "GRADBENCH_TRACKING_RETRY_S": "3"}

    strict = MlflowServer(tmp_path / "strict", backend=backend).start()
    try:
        uri = f"http://alice:s3cret-pw@{name}:{strict.port}"
        refused = _start(config, tmp_path / "refused", "--storage", storage,
                         "--tracking-uri", uri, env=env)
        out = _finish(refused)
        assert refused.returncode == 2 and "--allowed-hosts" in out, out
        assert len(out.strip().splitlines()) == 1 and "s3cret-pw" not in out
    finally:
        strict.stop()

    allowed = f"{name}:{strict.port},{name}"
    server = MlflowServer(tmp_path / "server", strict.port, backend=backend,
                          extra=("--allowed-hosts", allowed)).start()
    try:
        procs = [_start(config, tmp_path / f"machine{i}", "--workers", "2", "--storage",
                        storage, "--tracking-uri", uri, env=env) for i in (1, 2)]
        outputs = [_finish(p) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        status = subprocess.run([sys.executable, "-m", "bench", "status", "dist", "--runs-dir",
                                 str(tmp_path / "machine1")], capture_output=True, text=True,
                                env={**os.environ, **env})
        assert status.returncode == 0 and "1/1" in status.stdout, status.stderr
        report = subprocess.run([sys.executable, "-m", "bench", "report", "dist", "--runs-dir",
                                 str(tmp_path / "machine1"), "--tracking-uri", uri, "--out",
                                 str(tmp_path / "report.html")], capture_output=True,
                                text=True, env={**os.environ, **env})
        assert report.returncode == 0, report.stderr  # no --storage needed
        page = (tmp_path / "report.html").read_text()
        for text in [*outputs, status.stdout, status.stderr, report.stdout, report.stderr,
                     page]:
            assert "s3cret-pw" not in text and "View run" not in text
        recorded = (tmp_path / "machine1" / "dist" / "config.yaml").read_text()
        assert f"http://alice:***@{name}:{strict.port}" in recorded and "s3cret" not in recorded
    finally:
        server.stop()


def test_storage_calls_wait_out_a_database_outage(tmp_path: Path) -> None:
    """The PostgreSQL server stops: a plain read fails, the worker's way of reading and
    claiming (``tuning.retrying``), started while it is down, waits and goes on once it is
    back."""
    import tempfile
    import threading

    from bench import config as configs
    from bench import tuning
    from testkit.servers import as_postgres, postgres_bin, postgres_server

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    tuning.configure()
    with postgres_server() as server:
        url = create_database(server, "outage")
        spec = configs.load("smoke", {"storage": url}, plugins=False)
        configuration = configs.expand(spec)[0]
        storage = tuning.open_storage(url, tmp_path)
        tuning.create_studies(storage, spec, [configuration])
        data = next(p for p in Path(tempfile.gettempdir()).glob("gradbench-pg-*/data")
                    if f"-p {server.split(':')[1]} " in (p / "postmaster.opts").read_text()
                    or f'"{server.split(":")[1]}"' in (p / "postmaster.opts").read_text())
        pg_ctl = str(postgres_bin() / "pg_ctl")

        stopped, failed = threading.Event(), threading.Event()

        def outage() -> None:
            subprocess.run(as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, check=True)
            stopped.set()
            failed.wait(120)  # a plain read failed: the retrying read starts meanwhile
            time.sleep(2)  # the rest of the outage, which the retrying read waits out
            options = f"-p {server.split(':')[1]} -k {data} -c listen_addresses=127.0.0.1"
            subprocess.run(as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l",
                                        str(data / "server.log"), "-w", "start"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

        thread = threading.Thread(target=outage)
        thread.start()
        try:
            assert stopped.wait(120), "the server did not stop"
            with pytest.raises(optuna.exceptions.StorageInternalError):
                tuning.trials_begun(storage)
        finally:
            failed.set()
        assert tuning.retrying(lambda: tuning.trials_begun(storage), retry_s=30) == {
            tuning.study_name(spec, configuration): 0}
        attempt = tuning.retrying(lambda: tuning.claim(storage, spec, configuration))
        assert attempt.claim is not None and attempt.claim.number == 0
        thread.join()
