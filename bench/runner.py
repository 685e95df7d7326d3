"""A suite: configurations x studies x worker processes, resumable.

``prepare`` expands the config, sets the run directory up, creates every Optuna study
before any worker starts, and recovers what an interrupted run left behind (trials
marked interrupted and queued again; their MLflow runs ended as KILLED). ``WorkerPool``
then starts ``--workers`` processes (one torch thread each) that claim tuning trials and
final seeds through the storage until every configuration is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.config import Configuration, SuiteSpec, expand

PARENT_SETTLE_S = 2.0  # see create_parent_runs
Event = tuple[str, dict[str, Any]]  # (kind, payload) sent from workers to the progress view
Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class Suite:
    """A suite ready to run: where it lives and what it will run."""

    spec: SuiteSpec
    run_dir: Path
    configurations: list[Configuration]
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it was left out
    workers: int = 1

    @property
    def storage_url(self) -> str | None:
        return self.spec.storage

    @property
    def embedded(self) -> bool:
        """Optuna's journal file in the run directory (one ``gradbench run`` at a time, under
        the run lock), not a database shared by machines."""
        return self.storage_url is None or self.storage_url.startswith("journal:")

    @property
    def tracking_uri(self) -> str:
        from bench.tracking import default_tracking_uri

        return self.spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            default_tracking_uri(self.run_dir)

    def jobs_per_configuration(self) -> int:
        return self.spec.tuning.trials + self.spec.final.seeds


def runs_root(runs_dir: str | Path | None) -> Path:
    """``--runs-dir``, else ``$GRADBENCH_HOME``, else ``./runs``."""
    return Path(runs_dir or os.environ.get("GRADBENCH_HOME") or "runs")


def run_dir_for(spec: SuiteSpec, runs_dir: str | Path | None) -> Path:
    return runs_root(runs_dir) / spec.name


# ------------------------------------------------------------------------------ preparation


def check_writable(run_dir: Path) -> None:
    """Fail early, with the path, when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"run directory {run_dir} is not writable: {err.strerror}") from err


def available_configurations(spec: SuiteSpec) -> tuple[list[Configuration], dict[str, str]]:
    """Expand the grid; leave HAR out (with the reason) when no copy of its data exists.

    Only absence at the default location (``tasks.har.data_dir: null``, offline) skips
    HAR. A ``data_dir`` that holds nothing, or an archive that is truncated or tampered
    with, is bad input: its ``HarDataError`` propagates.
    """
    configurations = expand(spec)
    skipped: dict[str, str] = {}
    if any(c.task == "har" for c in configurations):
        import torch

        import tasks
        from tasks.har import HarDataError, find_har

        params = dict(spec.tasks).get("har", {})
        if params.get("data_dir") is None:
            try:
                find_har(None, download=params.get("download", True))
            except HarDataError as err:
                skipped["har"] = str(err)
                return [c for c in configurations if c.task != "har"], skipped
        tasks.build("har", params, seed=spec.seed, device=torch.device("cpu"))
    return configurations, skipped


def prepare(spec: SuiteSpec, runs_dir: str | Path | None) -> Suite:
    """Everything before the workers: directory, resolved config, studies, recovery."""
    from bench import tuning

    run_dir = run_dir_for(spec, runs_dir)
    check_writable(run_dir)
    configurations, skipped = available_configurations(spec)
    if not configurations:
        raise ValueError(f"suite {spec.name!r}: nothing to run (skipped: "
                         f"{', '.join(skipped) or 'none'})")
    suite = Suite(spec, run_dir, configurations, skipped)
    storage = tuning.open_storage(spec.storage, run_dir)  # unreachable: fails before writing
    tracker = _tracker(suite)
    tracker.experiment_id  # noqa: B018 - reaches the tracking store, or fails clearly
    _write_resolved_config(suite)
    tuning.create_studies(storage, spec, configurations)
    create_parent_runs(suite, tracker)
    recover(suite, storage, tracker=tracker)
    return suite


def _tracker(suite: Suite) -> Any:
    """The main process's tracker: fails fast (10 s of retries) when the store is down."""
    from bench.tracking import RETRY_S, Tracker

    return Tracker(suite.tracking_uri, suite.spec.name, run_dir=suite.run_dir,
                   retry_s=min(RETRY_S, 10.0))


def parent_tags(spec: SuiteSpec, configuration: Configuration) -> dict[str, str]:
    return {**configuration.tags(), "config_hash": spec.config_hash(), "suite": spec.name}


def create_parent_runs(suite: Suite, tracker: Any) -> None:
    """One MLflow parent run per configuration, with the resolved config and provenance.

    With a shared storage other machines may be preparing the same suite right now: their
    parent runs get ``PARENT_SETTLE_S`` to become visible before the earliest is chosen
    (an embedded storage has one ``gradbench run`` at a time: no wait).
    """
    from bench.tracking import provenance

    config_text = yaml.safe_dump(suite.spec.public_dict(), sort_keys=False)
    info = provenance()
    parents = tracker.ensure_parent_runs(
        {c.name: parent_tags(suite.spec, c) for c in suite.configurations},
        settle_s=0.0 if suite.embedded else PARENT_SETTLE_S)
    for run_id, created in parents.values():
        if created:
            tracker.set_tags(run_id, info)
            tracker.log_text(run_id, config_text, "config.yaml")


def _write_resolved_config(suite: Suite) -> None:
    target = suite.run_dir / "config.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(suite.spec.public_dict(), sort_keys=False))
    tmp.replace(target)


def recover(suite: Suite, storage: Any, *, at_start: bool = True,
            tracker: Any = None) -> dict[str, int]:
    """Mark trials of dead workers as interrupted, queue them again, end their MLflow runs.

    At start-up on an embedded (journal) storage every RUNNING trial is dead: the run lock
    is held. On an RDB storage only trials whose heartbeat went stale are; workers call
    this now and then (``at_start=False``) to pick up the work of a worker that died.
    """
    from bench import tuning

    found = {"interrupted": 0, "requeued": 0}
    for configuration in suite.configurations:
        for final in (False, True):
            study = tuning.load_study(storage, suite.spec, configuration, final)
            found["interrupted"] += len(
                tuning.fail_stale(study, all_running=suite.embedded and at_start))
            found["requeued"] += len(tuning.requeue_interrupted(study))
    tracker = tracker or _tracker(suite)
    end_orphan_runs(tracker, tuning.trial_outcomes(storage))
    return found


def end_orphan_runs(tracker: Any, outcomes: dict[tuple[str, int], str]) -> int:
    """End nested MLflow runs left RUNNING by a worker that died.

    Its trial was interrupted: KILLED. Its trial finished but the worker died (or lost the
    tracking server) before closing the run: FINISHED / FAILED, tagged ``tracking=incomplete``.
    """
    running = tracker.find_runs("attributes.status = 'RUNNING' and tags.role != 'configuration'")
    ended = 0
    for run in running:
        key = (run.data.tags.get("study", ""), int(run.data.tags.get("trial_number", -1)))
        outcome = outcomes.get(key, "interrupted")
        if outcome in ("running", "waiting"):
            continue
        if outcome in ("complete", "pruned", "diverged"):
            tracker.set_tags(run.info.run_id, {"state": outcome, "tracking": "incomplete"})
            tracker.end_run(run.info.run_id, "FAILED" if outcome == "diverged" else "FINISHED")
        else:
            tracker.set_tags(run.info.run_id, {"state": "interrupted"})
            tracker.end_run(run.info.run_id, "KILLED")
        ended += 1
    return ended


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Only one ``gradbench run`` of a suite at a time on an embedded storage."""
    path = run_dir / ".run.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise RuntimeError(
                f"suite {run_dir.name!r} is already running (pid {pid}); "
                f"wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------ leaderboard


def leaderboard(suite: Suite) -> list[dict[str, Any]]:
    """Per configuration: the final seeds' test metric (mean, std), solved and diverged rates."""
    from bench import tuning

    storage = tuning.open_storage(suite.storage_url, suite.run_dir)
    rows = []
    for configuration in suite.configurations:
        trials = tuning.load_study(storage, suite.spec, configuration).get_trials(deepcopy=False)
        finals = tuning.load_study(storage, suite.spec, configuration, True).get_trials(
            deepcopy=False)
        rows.append(board_row(configuration, trials, finals))
    return rows


def board_row(configuration: Configuration, trials: list, finals: list) -> dict[str, Any]:
    from bench import tuning

    metric = str(next((t.user_attrs["metric"] for t in finals if "metric" in t.user_attrs), ""))
    done = [t for t in finals if tuning.outcome(t) in ("complete", "diverged")]
    values = [float(t.user_attrs["test"][metric]) for t in done
              if tuning.outcome(t) == "complete" and metric in t.user_attrs.get("test", {})]
    c = tuning.counts(trials)
    return {
        "configuration": configuration.name,
        "task": configuration.task,
        "seq_len": configuration.seq_len,
        "model": configuration.model,
        "regularization": configuration.regularization,
        "clipping": configuration.clipping,
        "metric": metric,
        "mean": statistics.fmean(values) if values else float("nan"),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else float("nan"),
        "seeds": len(done),
        "solved_rate": _rate(done, lambda t: bool(t.user_attrs.get("solved"))),
        "diverged_rate": _rate(done, lambda t: tuning.outcome(t) == "diverged"),
        "complete": c["complete"], "pruned": c["pruned"], "diverged": c["diverged"],
        "running": c["running"],
    }


def _rate(trials: list, predicate: Callable[[Any], bool]) -> float:
    return sum(1 for t in trials if predicate(t)) / len(trials) if trials else float("nan")


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ------------------------------------------------------------------------------ running


def progress_snapshot(suite: Suite) -> dict[str, int]:
    """Jobs done per configuration (finished tuning trials + finished final seeds)."""
    from bench import tuning

    storage = tuning.open_storage(suite.storage_url, suite.run_dir)
    done = {}
    for configuration in suite.configurations:
        trials = tuning.load_study(storage, suite.spec, configuration).get_trials(deepcopy=False)
        finals = tuning.load_study(storage, suite.spec, configuration, True).get_trials(
            deepcopy=False)
        c, f = tuning.counts(trials), tuning.counts(finals)
        tuned = min(suite.spec.tuning.trials, c["complete"] + c["pruned"] + c["diverged"])
        if tuning.tuning_done(trials, suite.spec.tuning.trials) and \
                tuning.best_trial(trials) is None:
            done[configuration.name] = suite.jobs_per_configuration()  # nothing to re-run
        else:
            done[configuration.name] = tuned + min(suite.spec.final.seeds,
                                                   f["complete"] + f["diverged"])
    return done


def _worker_entry(index: int, inbox: Any, events: Any) -> None:
    """Process target kept in this light module: the parent need not import torch first."""
    from bench.worker import worker_main

    worker_main(index, inbox, events)


def _start_context() -> Any:
    """A fork server with the worker's modules preloaded, else (no fork: Windows) spawn.

    Spawned workers each import torch, MLflow and Optuna: about 3 s of CPU apiece, and on a
    2-core machine N workers' imports compete with ``prepare`` and with each other. The fork
    server imports them once, alongside ``prepare``, and forks each worker with them loaded.
    It forks from a process that has run no torch op and opened no store, so nothing
    fork-unsafe (thread pools, CUDA, connections) is inherited.
    """
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.forkserver"])  # no effect once this process's server runs
    return ctx


class WorkerPool:
    """Worker processes (one torch thread each), started before the suite is ready.

    A worker costs seconds of imports (torch, MLflow, Optuna); starting them first lets
    that overlap with ``prepare`` in the parent. Each worker then waits for the prepared
    suite (``run``), or for ``cancel``. With the suite it gets the parent's working
    directory and environment as they are then: a forked worker would otherwise have the
    fork server's, which can be older (a server lives as long as the process that started
    it, and serves every pool of that process).
    """

    def __init__(self, workers: int) -> None:
        import threading

        ctx = _start_context()
        self.events: Any = ctx.Queue()
        self.inbox: Any = ctx.Queue()
        self.procs = [ctx.Process(target=_worker_entry, args=(i, self.inbox, self.events),
                                  name=f"gradbench-w{i}") for i in range(workers)]
        self._start_error: BaseException | None = None
        # A fork server answers once its imports are done: start the workers from a thread,
        # so that this process prepares the suite meanwhile.
        self._starter = threading.Thread(target=self._start, name="gradbench-start",
                                         daemon=True)
        self._starter.start()

    def _start(self) -> None:
        try:
            for proc in self.procs:
                proc.start()
        except BaseException as err:  # raised in the caller's thread by _started
            self._start_error = err

    def _started(self) -> None:
        self._starter.join()
        if self._start_error is not None:
            raise RuntimeError(f"could not start the worker processes: "
                               f"{self._start_error}") from self._start_error

    def cancel(self) -> None:
        """Stop the workers before they got a suite (bad input found meanwhile); the error
        being reported is the caller's, not a failed start."""
        self._starter.join()
        for proc in self.procs:
            if proc.pid is not None:
                self.inbox.put(None)
        self._join()

    def run(self, suite: Suite, on_event: Callable[[str, dict[str, Any]], None]) -> list[str]:
        """Hand the suite out and run to the end; returns the workers' error messages.

        ``on_event(kind, payload)`` receives the workers' progress in this process. Ctrl-C
        reaches the workers too (same process group): each marks its trial interrupted.
        """
        import queue as queue_module

        self._started()
        context = {"cwd": os.getcwd(), "environ": dict(os.environ)}
        for _ in self.procs:
            self.inbox.put((suite, context))
        errors: list[str] = []
        try:
            while any(p.is_alive() for p in self.procs) or not self.events.empty():
                try:
                    kind, payload = self.events.get(timeout=0.2)
                except queue_module.Empty:
                    continue
                if kind == "error":
                    errors.append(f"worker {payload['worker']}: {payload['error']}")
                on_event(kind, payload)
        except KeyboardInterrupt:
            for proc in self.procs:
                proc.join(timeout=30)
            raise
        finally:
            self._join()
        errors += [f"worker {i} exited with code {p.exitcode}"
                   for i, p in enumerate(self.procs) if p.exitcode not in (0, None)
                   and not any(e.startswith(f"worker {i}:") for e in errors)]
        return errors

    def _join(self) -> None:
        for proc in self.procs:
            if proc.pid is None:  # never started
                continue
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


class RunStats:
    """What the workers report as they go: steps trained, time in tracking, memory."""

    def __init__(self) -> None:
        self.jobs = 0
        self.steps = 0
        self.job_s = 0.0
        self.tracking_s = 0.0
        self.peak_rss_mb: dict[int, float] = {}

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "end":
            self.jobs += 1
            self.steps += int(payload.get("steps", 0))
            self.job_s += float(payload.get("job_s", 0.0))
            self.tracking_s += float(payload.get("tracking_s", 0.0))
        elif kind == "done":
            self.peak_rss_mb[payload["worker"]] = float(payload.get("peak_rss_mb", 0.0))

    def summary(self) -> str:
        if not self.jobs:
            return "no runs this time"
        share = self.tracking_s / self.job_s if self.job_s else 0.0
        memory = ", ".join(f"{v:.0f}" for _, v in sorted(self.peak_rss_mb.items())) or "-"
        return (f"{self.jobs} runs, {self.steps} training steps; tracking took "
                f"{self.tracking_s:.1f} s of {self.job_s:.0f} s of run time ({share:.1%}); "
                f"peak memory per worker: {memory} MiB")


# ------------------------------------------------------------------------------ status


def status_rows(spec: SuiteSpec, run_dir: Path) -> list[dict[str, Any]]:
    """Per configuration: trials by outcome, best validation loss, final seeds done."""
    import optuna

    from bench import tuning

    if spec.storage is None and not (run_dir / "optuna.journal").exists():
        return []
    storage = tuning.open_storage(spec.storage, run_dir)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    rows = []
    for configuration in expand(spec):
        if tuning.study_name(spec, configuration) not in existing:
            continue
        trials = tuning.load_study(storage, spec, configuration).get_trials(deepcopy=False)
        finals = tuning.load_study(storage, spec, configuration, True).get_trials(deepcopy=False)
        best = tuning.best_trial(trials)
        f = tuning.counts(finals)
        rows.append({"configuration": configuration.name, **tuning.counts(trials),
                     "best": best.value if best is not None and best.value is not None
                     else float("nan"),
                     "finals": f"{f['complete'] + f['diverged']}/{spec.final.seeds}"})
    return rows
