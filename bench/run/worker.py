"""A worker: claims tuning trials and final seeds from the storage and runs them.

Workers are separate processes with one torch thread each (``bench.run.pool`` starts them).
A job is: claim (under the claim lock) -> start its MLflow run -> build and train it
(``bench.run.job``) -> tell Optuna (``tuning.tell``: the commit point) -> record it in MLflow
-> end the run. Optuna is reached through ``bench.tuning`` only, MLflow through the
worker's ``Recorder`` (``bench.run.records``); where the seconds go is
``bench.run.phases``'s; progress goes to the parent process through ``emit``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tasks
from bench import tuning
from bench.config import Configuration
from bench.locks import locked
from bench.models import n_parameters, select_device
from bench.outcomes import BEYOND_HORIZON, MLFLOW_STATUS, Outcome
from bench.run.job import build, run_job, suite_job
from bench.run.phases import OpenedRun, Stopwatch, job_phases
from bench.run.records import Recorder
from bench.run.suite import Suite, board_row, records, recover
from bench.train import TrainResult, configure_torch

IDLE_SLEEP_S = 0.2  # between looks for work while others run what it waits for
STALL_CHECKS = 8  # idle passes in a row (1.6 s) with nothing running anywhere: it stops


class Stalled(RuntimeError):
    """Nothing left to claim or wait for, and yet work is pending: never wait forever."""


Emit = Callable[[str, dict[str, Any]], None]  # (kind, payload) to the parent's progress view


class Worker:
    """One process's view of the suite: storage, recorder, and its task cache."""

    def __init__(self, suite: Suite, index: int, emit: Emit) -> None:
        configure_torch(1)
        tuning.configure()
        suite.spec.load_plugins()  # a forked worker imports the grid's plugins itself
        self.suite, self.spec, self.index, self.emit = suite, suite.spec, index, emit
        self.device = select_device(self.spec.device, worker=index)
        self.storage = tuning.open_storage(suite.storage_url, suite.run_dir, wait=True)
        self.recorder = Recorder(suite, index, self.device)
        self._timed = Stopwatch()
        self.times = self._timed.times  # seconds outside jobs, by kind
        self.embedded = suite.embedded
        self._tasks: dict[str, tasks.Task] = {}  # one copy of each task's data per worker
        self._order = _Order(self.storage, suite, index)

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Work until every configuration is done; returns the number of jobs run. The last
        run's records are written before it returns (a failure to write them raises)."""
        try:
            jobs = self._work()
        except BaseException:
            self.recorder.abandon()
            raise
        with self._timed("flush_s"):
            self.recorder.flush()
        self.recorder.close()
        return jobs

    def _work(self) -> int:
        jobs, idle = 0, 0
        last_recovery = time.monotonic()
        while True:
            if not self.embedded and time.monotonic() - last_recovery > tuning.GRACE_S:
                with self._timed("recovery_s"), self._claim_lock():  # trials of dead workers
                    tuning.retrying(lambda: recover(self.suite, self.storage, at_start=False,
                                                    tracker=self.recorder.tracker))
                last_recovery = time.monotonic()
            pending = False
            with self._timed("claim_s"):
                ranked = tuning.retrying(self._order.ranked)
            for configuration in ranked:
                with self._timed("claim_s"), self._claim_lock():
                    claim, open_work = tuning.retrying(
                        functools.partial(self._claim, configuration))
                pending = pending or open_work
                if claim is not None:
                    self.execute(configuration, claim)
                    jobs += 1
                    break
            else:
                if not pending:
                    return jobs
                with self._timed("idle_s"):
                    idle = 0 if tuning.retrying(lambda: tuning.active_trials(
                        self.storage, self.spec, self.suite.configurations)) else idle + 1
                    if idle >= STALL_CHECKS:
                        raise Stalled("nothing to claim and no trial running or queued on "
                                      "any machine, yet the suite is not done; `gradbench "
                                      "status` shows where each configuration stands")
                    time.sleep(IDLE_SLEEP_S)  # others still run the trials finals wait for

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """Local workers serialise claims with a file lock; remote ones rely on checks."""
        with locked(self.suite.run_dir / ".claim.lock"):
            yield

    def _claim(self, configuration: Configuration) -> tuple[tuning.Claim | None, bool]:
        """A claim in this configuration, and whether the configuration still has work."""
        attempt = tuning.claim(self.storage, self.spec, configuration)
        if attempt.exhausted and self.recorder.end_parent(configuration, "FAILED",
                                                          {"state": "all_trials_diverged"}):
            self.emit("skipped", {"worker": self.index, "configuration": configuration.name,
                                  "jobs": self.spec.final.seeds})
        if attempt.beyond and self.recorder.end_parent(configuration, "FINISHED",
                                                       {"state": BEYOND_HORIZON}):
            self.emit("skipped", {"worker": self.index, "configuration": configuration.name,
                                  "jobs": self.suite.jobs_per_configuration()})
        if attempt.queued is not None:
            self.recorder.note_best(configuration, attempt.queued)
        return attempt.claim, attempt.pending

    # ------------------------------------------------------------------ one job

    def execute(self, configuration: Configuration, claim: tuning.Claim) -> None:
        """Run one claimed trial or final seed: train it, tell Optuna, record it in MLflow."""
        started = time.perf_counter()
        run = OpenedRun(claim, self.recorder.open_run(configuration, claim))
        opened_s = time.perf_counter() - started
        run.note()  # at once where the run is open already (synchronous), else at an eval
        self.emit("start", {"worker": self.index, "configuration": configuration.name,
                            "role": claim.role, "steps": configuration.budget(self.spec)})
        result, info = self._train_claimed(configuration, claim, run)
        task = info["task"]
        waiting, noted = time.perf_counter(), run.noted_s
        run_id = run.wait()  # open by now, unless one open took longer than the run
        telling = time.perf_counter()
        opened_s += telling - waiting - (run.noted_s - noted)
        try:  # each write of it waits out a database restart, and lands once
            outcome = tuning.tell(claim, result, metric=task.metric, direction=task.direction)
        except tuning.TrialTaken as taken:  # this worker stalled; another took the trial
            self._abandon(claim, run, Outcome.INTERRUPTED)
            self.emit("note", {"worker": self.index, "message": str(taken)})
            return
        recording = time.perf_counter()  # the result is kept from here on
        self.recorder.record(run_id, configuration, claim.params, claim.seed, result, info,
                             status=MLFLOW_STATUS[outcome])
        done = time.perf_counter()
        phases = job_phases(result, build_s=info["build_s"], open_s=opened_s,
                            record_s=done - recording,
                            optuna_s=recording - telling + run.noted_s * (not run.in_loop),
                            job_s=done - started)
        self.emit("end", {"worker": self.index, "configuration": configuration.name,
                          "role": claim.role, "outcome": str(outcome),
                          "steps": result.steps_done, "job_s": done - started,
                          "train_s": result.wall_time,
                          "tracking_s": phases["open_s"] + phases["record_s"],
                          "variant": configuration.variant,
                          "model": configuration.model, "phases": phases})
        if claim.final:
            self._maybe_finish_configuration(configuration)

    def _task(self, configuration: Configuration) -> tasks.Task:
        key = configuration.variant
        if key not in self._tasks:
            self._tasks[key] = tasks.build(configuration.task, configuration.task_params,
                                           seed=self.spec.seed, device=self.device)
        return self._tasks[key]

    def _train_claimed(self, configuration: Configuration, claim: tuning.Claim,
                       run: OpenedRun) -> tuple[TrainResult, dict[str, Any]]:
        """Train under the claim's heartbeat. A claim that ends without a result is told so
        (interrupted: run again; an unexpected error: failed), its run ended, and the
        exception goes on."""
        with tuning.heartbeat(claim):
            try:
                return self._train(configuration, claim, run)
            except KeyboardInterrupt:
                self._abandon(claim, run, Outcome.INTERRUPTED)
                raise
            except Exception:
                self._abandon(claim, run, Outcome.FAILED)
                raise

    def _train(self, configuration: Configuration, claim: tuning.Claim,
               run: OpenedRun) -> tuple[TrainResult, dict[str, Any]]:
        started = time.perf_counter()
        task = self._task(configuration)
        job = suite_job(self.spec, configuration, claim.params, claim.seed, final=claim.final)
        model = build(job, task, self.device)
        built = time.perf_counter() - started
        result = run_job(job, task, model, on_eval=self._on_eval(claim, run))
        info = {"hidden_size": model.hidden_size, "n_params": n_parameters(model),
                "task": task, "cfg": job.train, "model": model, "final": claim.final,
                "number": claim.number, "build_s": built}
        return result, info

    def _on_eval(self, claim: tuning.Claim,
                 run: OpenedRun) -> Callable[[int, Mapping[str, float]], bool]:
        should_stop = tuning.pruning_callback(claim)

        def on_eval(step: int, metrics: Mapping[str, float]) -> bool:
            self.emit("step", {"worker": self.index, "step": step})
            run.note(in_loop=True)  # timed with the loop's reports
            return should_stop(step, metrics)

        return on_eval

    def _abandon(self, claim: tuning.Claim, run: OpenedRun, outcome: Outcome) -> None:
        with contextlib.suppress(Exception):
            tuning.fail(claim, outcome)
        self.recorder.end_abandoned(run.opened, outcome)

    def _maybe_finish_configuration(self, configuration: Configuration) -> None:
        """After the last final seed: the seeds' summary on the parent run, which ends
        (written in the background, after the seeds' own records)."""
        with self._timed("summary_s"):
            trials, finals = tuning.retrying(lambda: records(self.storage, self.spec,
                                                             configuration))
        if not tuning.finals_done(finals, self.spec.final.seeds):
            return
        row = board_row(configuration, trials, finals)
        self.recorder.finish(configuration, row, {f.number for f in finals})


class _Order:
    """Which configuration a worker looks at first, and which next."""

    def __init__(self, storage: Any, suite: Suite, index: int) -> None:
        """Workers start at different configurations to keep out of each other's way."""
        self.storage, self.spec = storage, suite.spec
        configurations = suite.configurations
        shift = (index * len(configurations)) // max(1, suite.workers)
        self.order = configurations[shift:] + configurations[:shift]
        self._seconds: dict[str, float] = {}  # configuration -> its trials' mean time

    def ranked(self) -> list[Configuration]:
        """Interrupted trials queued again come first (they wait for nothing); then tuning
        goes breadth-first: configurations with the fewest trials begun come first.

        A worker runs the next trial where the fewest have been asked for, and final seeds
        once no tuning trial is left to start. So a suite's last jobs are final seeds, which
        are independent of each other, and the workers finish together instead of one waiting
        for the trial whose configuration's finals it needs. Final seeds go longest first
        (by their configuration's mean trial time), so that the suite ends on its shortest
        jobs. Among equals each worker keeps its own order (the sort is stable). The counts
        are only a hint: claims re-check.
        """
        begun = tuning.trials_begun(self.storage)
        retries = tuning.retries_queued(self.storage)
        budget = self.spec.tuning.trials

        def key(configuration: Configuration) -> tuple[bool, int, float]:
            name = tuning.study_name(self.spec, configuration)
            asked = begun.get(name, 0)
            longest = -self._trial_seconds(configuration) if asked >= budget else 0.0
            return name not in retries, asked, longest

        return sorted(self.order, key=key)

    def _trial_seconds(self, configuration: Configuration) -> float:
        """Mean training time of a configuration's finished trials (0: none yet); read
        once per configuration when some are finished (a hint for the order of finals)."""
        if configuration.name in self._seconds:
            return self._seconds[configuration.name]
        times = [float(t.attrs["wall_time"])
                 for t in tuning.trial_records(self.storage, self.spec, configuration)
                 if "wall_time" in t.attrs]
        if not times:
            return 0.0
        self._seconds[configuration.name] = sum(times) / len(times)
        return self._seconds[configuration.name]
