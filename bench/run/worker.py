"""A worker: claims tuning trials and final seeds from the storage and runs them.

Workers are separate processes with one torch thread each (``bench.run.pool`` starts them).
A job is: claim (under the claim lock) -> start its MLflow run -> build and train it
(``bench.run.job``) -> tell Optuna (``tuning.tell``: the commit point) -> record it in MLflow
-> end the run. Optuna is reached through ``bench.tuning`` only; progress goes to the
parent process through ``emit``.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import torch

import tasks
from bench import tuning
from bench.config import Configuration
from bench.locks import locked
from bench.models import n_parameters, select_device
from bench.outcomes import BEYOND_HORIZON, MLFLOW_STATUS, Outcome
from bench.registry import TASKS
from bench.run.job import build, run_job, suite_job
from bench.run.suite import Suite, board_row, parent_tags, records, recover
from bench.tracking import (
    CONFUSION_TABLE,
    SEND_BACKLOG,
    STEPS_TABLE,
    BackgroundWriter,
    RunRecords,
    Spool,
    Tracker,
    csv_text,
    diagnostics_table,
    opening,
    opens_first,
    provenance,
)
from bench.train import TrainResult, configure_torch, predict

IDLE_SLEEP_S = 0.2  # between looks for work while others run what it waits for
STALL_CHECKS = 8  # idle passes in a row (1.6 s) with nothing running anywhere: it stops


class Stalled(RuntimeError):
    """Nothing left to claim or wait for, and yet work is pending: never wait forever."""
Emit = Callable[[str, dict[str, Any]], None]  # (kind, payload) to the parent's progress view


class Worker:
    """One process's view of the suite: storage, tracker, and its task cache."""

    def __init__(self, suite: Suite, index: int, emit: Emit) -> None:
        configure_torch(1)
        tuning.configure()
        suite.spec.load_plugins()  # a forked worker imports the grid's plugins itself
        self.suite, self.spec, self.index, self.emit = suite, suite.spec, index, emit
        self.device = select_device(self.spec.device, worker=index)
        self.storage = tuning.open_storage(suite.storage_url, suite.run_dir)
        self.tracker = Tracker(suite.tracking_uri, self.spec.name, run_dir=suite.run_dir)
        # A run's records are built and kept on disk by one thread while the next run trains
        # (at most one run's records only in memory), and sent to the store by another, up
        # to SEND_BACKLOG runs behind (a slow store, e.g. a server over HTTP, holds up no
        # run; what a kill -9 leaves in the spool is written on resume).
        self.spool = Spool(suite.run_dir)
        self.writer = BackgroundWriter()
        self.sender = BackgroundWriter(backlog=SEND_BACKLOG)
        # Runs are opened by a thread of their own: an open never waits behind the previous
        # run's records (over HTTP, several requests), so a short run's MLflow run is open
        # before its training ends; the senders of this machine's workers let it go first.
        self.opener = BackgroundWriter()
        self.times: dict[str, float] = defaultdict(float)  # seconds outside jobs, by kind
        self.embedded = suite.embedded
        self._tasks: dict[str, tasks.Task] = {}  # one copy of each task's data per worker
        self._provenance = provenance()
        self._parents: dict[str, str] = {}
        self._seconds: dict[str, float] = {}  # configuration -> its trials' mean time

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Work until every configuration is done; returns the number of jobs run. The last
        run's records are written before it returns (a failure to write them raises)."""
        writers = (self.writer, self.sender, self.opener)  # in this order: each feeds the next
        try:
            jobs = self._work()
        except BaseException:
            for writer in writers:  # what is written by now stays written, the rest spooled
                with contextlib.suppress(Exception):
                    writer.close()
            raise
        with self._timed("flush_s"):
            for writer in writers:
                writer.close()
        self.spool.close()
        return jobs

    def _work(self) -> int:
        jobs, idle = 0, 0
        order = self._order()
        last_recovery = time.monotonic()
        while True:
            if not self.embedded and time.monotonic() - last_recovery > tuning.GRACE_S:
                with self._timed("recovery_s"), self._claim_lock():  # trials of dead workers
                    tuning.retrying(lambda: recover(self.suite, self.storage, at_start=False,
                                                    tracker=self.tracker))
                last_recovery = time.monotonic()
            pending = False
            with self._timed("claim_s"):
                ranked = tuning.retrying(lambda: self._ranked(order))
            for configuration in ranked:
                with self._timed("claim_s"), self._claim_lock():
                    claim, open_work = tuning.retrying(
                        lambda c=configuration: self._claim(c))
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
    def _timed(self, kind: str) -> Iterator[None]:
        """Count the seconds of the block in ``self.times[kind]`` (time outside jobs)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times[kind] += time.perf_counter() - started

    def _order(self) -> list[Configuration]:
        """Workers start at different configurations to keep out of each other's way."""
        configurations = self.suite.configurations
        shift = (self.index * len(configurations)) // max(1, self.suite.workers)
        return configurations[shift:] + configurations[:shift]

    def _ranked(self, order: list[Configuration]) -> list[Configuration]:
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

        return sorted(order, key=key)

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

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """Local workers serialise claims with a file lock; remote ones rely on checks."""
        with locked(self.suite.run_dir / ".claim.lock"):
            yield

    def _claim(self, configuration: Configuration) -> tuple[tuning.Claim | None, bool]:
        """A claim in this configuration, and whether the configuration still has work."""
        attempt = tuning.claim(self.storage, self.spec, configuration)
        if attempt.exhausted and self._end_parent(configuration, "FAILED",
                                                  {"state": "all_trials_diverged"}):
            self.emit("skipped", {"worker": self.index, "configuration": configuration.name,
                                  "jobs": self.spec.final.seeds})
        if attempt.beyond and self._end_parent(configuration, "FINISHED",
                                               {"state": BEYOND_HORIZON}):
            self.emit("skipped", {"worker": self.index, "configuration": configuration.name,
                                  "jobs": self.suite.jobs_per_configuration()})
        if attempt.queued is not None:
            self._note_best(configuration, attempt.queued)
        return attempt.claim, attempt.pending

    def _end_parent(self, configuration: Configuration, status: str,
                    tags: dict[str, str]) -> bool:
        """End a configuration's parent run, once: True if this call ended it."""
        parent = self._parent(configuration)
        if self.tracker.run_status(parent) != "RUNNING":
            return False
        self.tracker.set_tags(parent, tags)
        self.tracker.end_run(parent, status)
        return True

    def _note_best(self, configuration: Configuration, best: tuning.TrialRecord) -> None:
        tags: dict[str, Any] = {f"best.{k}": v for k, v in best.params.items()}
        tags["best.trial"] = best.number
        if best.value is not None:
            tags[f"best.val_{tuning.objective_key(self.spec, configuration)}"] = best.value
        self._after_records(lambda: self.tracker.set_tags(self._parent(configuration), tags))

    # ------------------------------------------------------------------ one job

    def execute(self, configuration: Configuration, claim: tuning.Claim) -> None:
        """Run one claimed trial or final seed: train it, tell Optuna, record it in MLflow."""
        started = time.perf_counter()
        run = _OpenedRun(claim, self.opener.call(lambda: self._open_run(configuration, claim)))
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
        try:
            outcome = tuning.retrying(lambda: tuning.tell(
                claim, result, metric=task.metric, direction=task.direction))
        except tuning.TrialTaken as taken:  # this worker stalled; another took the trial
            self._abandon(claim, run, Outcome.INTERRUPTED)
            self.emit("note", {"worker": self.index, "message": str(taken)})
            return
        recording = time.perf_counter()  # the result is kept from here on
        self._record(run_id, configuration, claim.params, claim.seed, result, info,
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

    def _open_run(self, configuration: Configuration, claim: tuning.Claim) -> str:
        """``_start_run``, while this machine's senders wait (``tracking.opening``)."""
        with opening(self.suite.run_dir):
            return self._start_run(configuration, claim)

    def _start_run(self, configuration: Configuration, claim: tuning.Claim) -> str:
        """The claim's nested MLflow run under its configuration's parent run."""
        name = f"final-seed{claim.seed}" if claim.final else f"trial-{claim.number}"
        return self.tracker.start_run(self._parent(configuration), name, {
            **self._parent_tags(configuration), "configuration": configuration.name,
            "role": claim.role, "study": claim.study_name,
            "trial_number": str(claim.number), "seed": str(claim.seed),
            "worker": str(self.index)})

    def _parent(self, configuration: Configuration) -> str:
        """The configuration's parent run id (looked up once per worker)."""
        if configuration.name not in self._parents:
            self._parents[configuration.name] = self.tracker.parent_run(
                configuration.name, self._parent_tags(configuration))
        return self._parents[configuration.name]

    def _task(self, configuration: Configuration) -> tasks.Task:
        key = configuration.variant
        if key not in self._tasks:
            self._tasks[key] = tasks.build(configuration.task, configuration.task_params,
                                           seed=self.spec.seed, device=self.device)
        return self._tasks[key]

    def _train_claimed(self, configuration: Configuration, claim: tuning.Claim,
                       run: _OpenedRun) -> tuple[TrainResult, dict[str, Any]]:
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
               run: _OpenedRun) -> tuple[TrainResult, dict[str, Any]]:
        started = time.perf_counter()
        task = self._task(configuration)
        job = suite_job(self.spec, configuration, claim.params, claim.seed, final=claim.final)
        model = build(job, task, self.device)
        built = time.perf_counter() - started
        result = run_job(job, task, model, on_eval=self._on_eval(claim, run))
        info = {"hidden_size": model.hidden_size, "n_params": n_parameters(model),
                "task": task, "cfg": job.train, "model": model, "final": claim.final,
                "build_s": built}
        return result, info

    def _on_eval(self, claim: tuning.Claim,
                 run: _OpenedRun) -> Callable[[int, Mapping[str, float]], bool]:
        should_stop = tuning.pruning_callback(claim)

        def on_eval(step: int, metrics: Mapping[str, float]) -> bool:
            self.emit("step", {"worker": self.index, "step": step})
            run.note(in_loop=True)  # timed with the loop's reports
            return should_stop(step, metrics)

        return on_eval

    def _abandon(self, claim: tuning.Claim, run: _OpenedRun, outcome: Outcome) -> None:
        with contextlib.suppress(Exception):
            tuning.fail(claim, outcome)
        with contextlib.suppress(Exception):
            run_id = run.opened.result(timeout=tuning.GRACE_S)
            self.tracker.set_tags(run_id, {"state": str(outcome)})
            self.tracker.end_run(run_id, MLFLOW_STATUS[outcome])

    # ------------------------------------------------------------------ recording

    def _parent_tags(self, configuration: Configuration) -> dict[str, str]:
        return parent_tags(self.spec, configuration)

    def _record(self, run_id: str, configuration: Configuration, params: dict[str, Any],
                seed: int, result: TrainResult, info: dict[str, Any], *, status: str) -> None:
        """Hand the run's records and its end (``status``) to the background writer, which
        builds them, keeps them in the spool and hands them to the sender (waiting for the
        previous run's to be kept first); only what needs the model (a classification task's
        confusion matrix) is computed here."""
        classes = TASKS.get(configuration.task).classes  # a classification task: HAR
        confusion = None
        if info.get("final") and result.status != "diverged" and classes:
            confusion = csv_text(_confusion_rows(info["task"], info["model"], classes))
        run = {key: value for key, value in info.items() if key != "model"}  # freed now

        def keep() -> None:
            records = self._records(run_id, configuration, params, seed, result, run,
                                    confusion, status)
            kept = self.spool.keep(records)

            def send() -> None:
                self.tracker.write(records, before_each=lambda: opens_first(self.suite.run_dir))
                self.spool.drop(kept)

            self.sender.submit(send)

        self.writer.submit(keep)

    def _after_records(self, write: Callable[[], None]) -> None:
        """``write`` (a parent run's tags or end) once the runs handed over before it are
        in the store."""
        self.writer.submit(lambda: self.sender.submit(write, follows=True), follows=True)

    def _records(self, run_id: str, configuration: Configuration, params: dict[str, Any],
                 seed: int, result: TrainResult, info: dict[str, Any], confusion: str | None,
                 status: str) -> RunRecords:
        """Everything one run records (built in the writer's thread)."""
        from bench.tracking import result_metrics, run_params, step_rows

        task = info["task"]
        tags = {"state": str(Outcome.of(result)), "device": str(self.device),
                "diverged_at": result.diverged_at or "", "reason": result.reason or "",
                "metric": task.metric, "direction": task.direction, **self._provenance}
        if result.test:  # final seeds: whether the test metrics meet the solved rule
            tags.update(solved=str(result.solved), test_from=result.test_from)
        files = {"task.yaml": _task_yaml(task)}
        if result.train_loss:
            files[STEPS_TABLE] = csv_text(step_rows(result))
        if result.diagnostics is not None:
            for table, rows in result.diagnostics.tables().items():
                if rows:
                    files[diagnostics_table(table)] = csv_text(rows)
        if confusion is not None:
            files[CONFUSION_TABLE] = confusion
        return RunRecords(run_id, run_params(configuration, params, seed, info, self.spec),
                          tags, result_metrics(result, task), files, status)

    def _maybe_finish_configuration(self, configuration: Configuration) -> None:
        """After the last final seed: the seeds' summary on the parent run, which ends
        (written in the background, after the seeds' own records)."""
        with self._timed("summary_s"):
            trials, finals = records(self.storage, self.spec, configuration)
        if not tuning.finals_done(finals, self.spec.final.seeds):
            return
        row = board_row(configuration, trials, finals)
        current = {f.number for f in finals}

        def finish() -> None:
            self._mark_superseded(configuration, current)
            parent = self._parent(configuration)
            metric = row["metric"]
            self.tracker.log_metrics(parent, [
                (f"final/{metric}_mean", row["mean"], 0),
                (f"final/{metric}_std", row["std"], 0),
                ("final/solved_rate", row["solved_rate"], 0),
                ("final/diverged_rate", row["diverged_rate"], 0)])
            self.tracker.end_run(parent, "FINISHED")

        self._after_records(finish)


    def _mark_superseded(self, configuration: Configuration, current: set[int]) -> None:
        """Final seeds of parameters that are no longer the best (more tuning found better
        ones) leave the results: their runs' role becomes ``superseded``."""
        study = tuning.study_name(self.spec, configuration, final=True)
        for run in self.tracker.find_runs(f"tags.study = '{study}' and tags.role = 'final'"):
            if int(run.data.tags.get("trial_number", -1)) not in current:
                self.tracker.set_tags(run.info.run_id, {"role": "superseded",
                                                        "superseded": "true"})


class _OpenedRun:
    """A job's MLflow run, opened by the worker's opener thread while the job trains.

    ``note`` records the run's id on the trial (``tuning.started``) once it is known:
    at once when the opener is synchronous, else at the first evaluation after it opened,
    or after training at the latest (``wait``, which waits for it and returns it).
    """

    def __init__(self, claim: tuning.Claim, opened: Future[str]) -> None:
        self.claim, self.opened = claim, opened
        self.run_id: str | None = None
        self.noted_s = 0.0  # seconds in tuning.started
        self.in_loop = False  # noted at an evaluation: timed with the loop's reports

    def note(self, *, in_loop: bool = False) -> None:
        """Note the run if it is open; a failure to open it waits for ``wait`` (raised
        there, after training: the claim is then left to recovery as interrupted, not
        failed as an error of the training would be)."""
        if self.run_id is None and self.opened.done() and self.opened.exception() is None:
            self._note(in_loop)

    def wait(self) -> str:
        """The run's id, noted on the trial; a failure to open the run is raised here."""
        return self.run_id if self.run_id is not None else self._note(False)

    def _note(self, in_loop: bool) -> str:
        run_id = self.opened.result()
        started = time.perf_counter()
        tuning.started(self.claim, run_id)
        self.noted_s, self.in_loop = time.perf_counter() - started, in_loop
        self.run_id = run_id
        return run_id


def job_phases(result: TrainResult, *, build_s: float, open_s: float, record_s: float,
               optuna_s: float, job_s: float) -> dict[str, float]:
    """Where one job's seconds went, by kind: building its task (once per worker) and model,
    the training steps proper, evaluation, gradient probes, Optuna (the pruner's reports,
    ``tell``, noting the run on the trial), the tracking calls on the worker's path (opening
    the MLflow run; handing its records to the writer, which waits until the previous run's
    are kept on disk),
    and the rest (``other_s``)."""
    inside = result.eval_s + result.probe_s + result.report_s
    phases = {"build_s": build_s, "steps_s": max(0.0, result.wall_time - inside),
              "eval_s": result.eval_s, "probe_s": result.probe_s,
              "optuna_s": optuna_s + result.report_s, "open_s": open_s, "record_s": record_s}
    phases["other_s"] = max(0.0, job_s - sum(phases.values()))
    return phases


def _confusion_rows(task: Any, model: torch.nn.Module,
                    classes: Sequence[str]) -> list[dict[str, Any]]:
    """The test confusion matrix of a trained model as tidy rows (true, predicted, count);
    the task computes the matrix (``confusion_matrix``), its record names the classes."""
    x, y = task.split("test")
    matrix = task.confusion_matrix(predict(model, x), y)
    return [{"true": classes[i], "predicted": classes[j], "count": int(n)}
            for i, row in enumerate(matrix) for j, n in enumerate(row)]


def _task_yaml(task: tasks.Task) -> str:
    import yaml

    return yaml.safe_dump(task.describe(), sort_keys=False)
