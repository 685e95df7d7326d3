"""A worker: claims tuning trials and final seeds from the storage and runs them.

Workers are separate processes with one torch thread each. Everything they learn goes to
Optuna (the trial's outcome: the commit point) and MLflow (params, curves, diagnostics);
progress goes to the parent process through ``emit``.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

import tasks
from bench import tuning
from bench.config import Configuration, search_space
from bench.diagnostics import GradientDiagnostics, every
from bench.models import ModelSizes, build_model, n_parameters, select_device
from bench.runner import Emit, Suite, parent_tags, recover
from bench.tracking import STEPS_TABLE, Tracker, csv_text, provenance
from bench.train import TrainConfig, TrainResult, configure_torch, train

IDLE_SLEEP_S = 0.5


class Worker:
    """One process's view of the suite: storage, tracker, and its task cache."""

    def __init__(self, suite: Suite, index: int, emit: Emit) -> None:
        configure_torch(1)
        self.suite, self.spec, self.index, self.emit = suite, suite.spec, index, emit
        self.device = select_device(self.spec.device, worker=index)
        self.storage = tuning.open_storage(suite.storage_url, suite.run_dir)
        self.tracker = Tracker(suite.tracking_uri, self.spec.name, run_dir=suite.run_dir)
        self.embedded = suite.embedded
        self._tasks: dict[str, tasks.Task] = {}  # one copy of each task's data per worker
        self._provenance = provenance()
        self._parents: dict[str, str] = {}

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Work until every configuration is done; returns the number of jobs run."""
        jobs = 0
        order = self._order()
        last_recovery = time.monotonic()
        while True:
            if not self.embedded and time.monotonic() - last_recovery > tuning.GRACE_S:
                with self._claim_lock():  # pick up the trials of workers that died
                    recover(self.suite, self.storage, at_start=False, tracker=self.tracker)
                last_recovery = time.monotonic()
            pending = False
            for configuration in self._ranked(order):
                with self._claim_lock():
                    claim, open_work = self._claim(configuration)
                pending = pending or open_work
                if claim is not None:
                    self.execute(configuration, claim)
                    jobs += 1
                    break
            else:
                if not pending:
                    return jobs
                time.sleep(IDLE_SLEEP_S)  # others still run the trials finals wait for

    def _order(self) -> list[Configuration]:
        """Workers start at different configurations to keep out of each other's way."""
        configurations = self.suite.configurations
        shift = (self.index * len(configurations)) // max(1, self.suite.workers)
        return configurations[shift:] + configurations[:shift]

    def _ranked(self, order: list[Configuration]) -> list[Configuration]:
        """Tuning goes breadth-first: configurations with the fewest trials begun come first.

        A worker runs the next trial where the fewest have been asked for, and final seeds
        once no tuning trial is left to start. So a suite's last jobs are final seeds, which
        are independent of each other, and the workers finish together instead of one waiting
        for the trial whose configuration's finals it needs. Among equals each worker keeps
        its own order (the sort is stable). The counts are only a hint: claims re-check.
        """
        begun = tuning.trials_begun(self.storage)
        return sorted(order, key=lambda c: begun.get(tuning.study_name(self.spec, c), 0))

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """Local workers serialise claims with a file lock; remote ones rely on checks."""
        with open(self.suite.run_dir / ".claim.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _claim(self, configuration: Configuration) -> tuple[tuning.Claim | None, bool]:
        """A claim in this configuration, and whether the configuration still has work."""
        study = tuning.load_study(self.storage, self.spec, configuration)
        claim = tuning.claim_tuning(study, self.spec, configuration)
        if claim is not None:
            return claim, True
        trials = study.get_trials(deepcopy=False)
        if not tuning.tuning_done(trials, self.spec.tuning.trials):
            return None, True  # the last trials run elsewhere
        final = tuning.load_study(self.storage, self.spec, configuration, final=True)
        if not final.get_trials(deepcopy=False):
            best = tuning.best_trial(trials)
            if best is None:  # every trial diverged: nothing to re-run
                if self._end_parent(configuration, "FAILED", {"state": "all_trials_diverged"}):
                    self.emit("skipped", {"worker": self.index, "configuration": configuration.name,
                                          "jobs": self.spec.final.seeds})
                return None, False
            tuning.enqueue_finals(final, best.params, tuning.final_seeds(self.spec), best.number)
            self._note_best(configuration, best)
        claim = tuning.claim_final(final)
        if claim is not None:
            return claim, True
        done = tuning.finals_done(final.get_trials(deepcopy=False), self.spec.final.seeds)
        return None, not done

    def _end_parent(self, configuration: Configuration, status: str,
                    tags: dict[str, str]) -> bool:
        """End a configuration's parent run, once: True if this call ended it."""
        parent = self._parent(configuration)
        if self.tracker.client.get_run(parent).info.status != "RUNNING":
            return False
        self.tracker.set_tags(parent, tags)
        self.tracker.end_run(parent, status)
        return True

    def _note_best(self, configuration: Configuration, best: Any) -> None:
        parent = self._parent(configuration)
        tags = {f"best.{k}": v for k, v in best.params.items()}
        tags["best.trial"] = best.number
        if best.value is not None:
            tags["best.val_loss"] = best.value
        self.tracker.set_tags(parent, tags)

    # ------------------------------------------------------------------ one job

    def execute(self, configuration: Configuration, claim: tuning.Claim) -> None:
        """Run one claimed trial or final seed; record it in MLflow, then tell Optuna."""
        trial, started = claim.trial, time.perf_counter()
        if claim.final:
            params = dict(trial.user_attrs["params"])
            seed = trial.suggest_int("seed", 0, 2**31 - 1)
        else:
            params = tuning.suggest(trial, search_space(self.spec, configuration))
            seed = self.spec.seed
        role = "final" if claim.final else "trial"
        name = f"final-seed{seed}" if claim.final else f"trial-{trial.number}"
        opening = time.perf_counter()
        parent = self._parent(configuration)
        run_id = self.tracker.start_run(parent, name, {
            **self._parent_tags(configuration), "configuration": configuration.name,
            "role": role, "study": claim.study.study_name,
            "trial_number": str(trial.number), "seed": str(seed), "worker": str(self.index)})
        opening = time.perf_counter() - opening
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        self.emit("start", {"worker": self.index, "configuration": configuration.name,
                            "role": role, "steps": self.spec.training.steps})
        with self._heartbeat(trial):
            try:
                result, info = self._train(configuration, params, seed, claim)
            except KeyboardInterrupt:
                self._interrupted(claim, run_id)
                raise
        self._tell(claim, result, info)  # the commit point: from here the result is kept
        recording = time.perf_counter()
        self._record(run_id, configuration, params, seed, result, info)
        self.tracker.end_run(run_id, "FAILED" if result.status == "diverged" else "FINISHED")
        done = time.perf_counter()
        self.emit("end", {"worker": self.index, "configuration": configuration.name,
                          "role": role, "outcome": _outcome(result),
                          "steps": result.steps_done, "job_s": done - started,
                          "train_s": result.wall_time,
                          "tracking_s": (done - recording) + opening})
        if claim.final:
            self._maybe_finish_configuration(configuration)

    def _parent(self, configuration: Configuration) -> str:
        """The configuration's parent run id (looked up once per worker)."""
        if configuration.name not in self._parents:
            self._parents[configuration.name] = self.tracker.parent_run(
                configuration.name, self._parent_tags(configuration))
        return self._parents[configuration.name]

    def _task(self, configuration: Configuration) -> tasks.Task:
        key = configuration.name.split("/")[0]
        if key not in self._tasks:
            self._tasks[key] = tasks.build(configuration.task, configuration.task_params,
                                           seed=self.spec.seed, device=self.device)
        return self._tasks[key]

    def _train(self, configuration: Configuration, params: dict[str, Any], seed: int,
               claim: tuning.Claim) -> tuple[TrainResult, dict[str, Any]]:
        task = self._task(configuration)
        sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
        torch.manual_seed(seed)
        size = self.spec.model.size(params)
        model = build_model(configuration.model, sizes, **size).to(self.device)
        training = self.spec.training
        cfg = TrainConfig(
            steps=training.steps, batch_size=int(params.get("batch_size", training.batch_size)),
            lr=params["lr"], optimizer=training.optimizer, eval_every=training.eval_every,
            regularization=configuration.regularization, l2=params.get("l2", 0.0),
            clipping=configuration.clipping, clip=params.get("clip", 1.0), seed=seed)
        observer = GradientDiagnostics(task, every(self.spec.diagnostics.probe_every),
                                       seed=self.spec.seed)
        result = train(cfg, task, model, on_eval=self._on_eval(claim), observer=observer)
        info = {"hidden_size": model.hidden_size, "n_params": n_parameters(model),
                "task": task, "cfg": cfg, "model": model, "final": claim.final}
        return result, info

    def _on_eval(self, claim: tuning.Claim):  # noqa: ANN202
        def on_eval(step: int, metrics: Any) -> bool:
            self.emit("step", {"worker": self.index, "step": step})
            if claim.final or not math.isfinite(metrics["loss"]):
                return False
            claim.trial.report(float(metrics["loss"]), step)
            return bool(claim.trial.should_prune())

        return on_eval

    @contextlib.contextmanager
    def _heartbeat(self, trial: Any) -> Iterator[None]:
        """RDB storages: record a heartbeat while the trial runs (a journal has none)."""
        storage = self.storage
        if self.embedded or not hasattr(storage, "record_heartbeat"):
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(tuning.HEARTBEAT_S):
                with contextlib.suppress(Exception):
                    storage.record_heartbeat(trial._trial_id)

        storage.record_heartbeat(trial._trial_id)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _interrupted(self, claim: tuning.Claim, run_id: str) -> None:
        with contextlib.suppress(Exception):
            claim.trial.set_user_attr("outcome", "interrupted")
            claim.study.tell(claim.trial, state=tuning.TrialState.FAIL)
        with contextlib.suppress(Exception):
            self.tracker.set_tags(run_id, {"state": "interrupted"})
            self.tracker.end_run(run_id, "KILLED")

    # ------------------------------------------------------------------ recording

    def _parent_tags(self, configuration: Configuration) -> dict[str, str]:
        return parent_tags(self.spec, configuration)

    def _record(self, run_id: str, configuration: Configuration, params: dict[str, Any],
                seed: int, result: TrainResult, info: dict[str, Any]) -> None:
        from bench.records import result_metrics, run_params, step_rows

        task = info["task"]
        tags = {"state": _outcome(result), "device": str(self.device),
                "diverged_at": result.diverged_at or "", "reason": result.reason or "",
                "solved": str(result.solved), "metric": task.metric,
                "direction": task.direction, **self._provenance}
        files = {"task.yaml": _task_yaml(task)}
        if result.train_loss:
            files[STEPS_TABLE] = csv_text(step_rows(result))
        if result.diagnostics is not None:
            for table, rows in result.diagnostics.tables().items():
                if rows:
                    files[f"diagnostics/{table}.csv"] = csv_text(rows)
        if info.get("final") and result.status != "diverged" and \
                hasattr(task, "confusion_matrix"):  # HAR: for the report's confusion matrix
            files["test/confusion.csv"] = csv_text(_confusion_rows(task, info["model"]))
        self.tracker.log_run(run_id, params=run_params(configuration, params, seed, info,
                                                       self.spec),
                             tags=tags, metrics=result_metrics(result, task), files=files)

    def _tell(self, claim: tuning.Claim, result: TrainResult, info: dict[str, Any]) -> None:
        trial, task = claim.trial, info["task"]
        trial.set_user_attr("metric", task.metric)
        trial.set_user_attr("wall_time", result.wall_time)
        trial.set_user_attr("steps_done", result.steps_done)
        if result.status == "diverged":
            trial.set_user_attr("outcome", "diverged")
            trial.set_user_attr("diverged_at", result.diverged_at)
            trial.set_user_attr("reason", result.reason)
            claim.study.tell(trial, state=tuning.TrialState.FAIL)
            return
        trial.set_user_attr("test", {k: float(v) for k, v in result.test.items()})
        trial.set_user_attr("solved", bool(result.solved))
        if result.status == "stopped":
            claim.study.tell(trial, state=tuning.TrialState.PRUNED)
        else:
            claim.study.tell(trial, float(result.val["loss"]))

    def _maybe_finish_configuration(self, configuration: Configuration) -> None:
        """After the last final seed: the seeds' summary on the parent run, which ends."""
        from bench.runner import board_row

        study = tuning.load_study(self.storage, self.spec, configuration)
        final = tuning.load_study(self.storage, self.spec, configuration, final=True)
        finals = final.get_trials(deepcopy=False)
        if not tuning.finals_done(finals, self.spec.final.seeds):
            return
        row = board_row(configuration, study.get_trials(deepcopy=False), finals)
        parent = self._parent(configuration)
        metric = row["metric"]
        self.tracker.log_metrics(parent, [
            (f"final/{metric}_mean", row["mean"], 0), (f"final/{metric}_std", row["std"], 0),
            ("final/solved_rate", row["solved_rate"], 0),
            ("final/diverged_rate", row["diverged_rate"], 0)])
        self.tracker.end_run(parent, "FINISHED")


def _outcome(result: TrainResult) -> str:
    return {"completed": "complete", "stopped": "pruned"}.get(result.status, result.status)


@torch.no_grad()
def _confusion_rows(task: Any, model: torch.nn.Module) -> list[dict[str, Any]]:
    """The test confusion matrix of a trained model as tidy rows (true, predicted, count)."""
    from bench.train import EVAL_CHUNK

    x, y = task.split("test")
    was_training = model.training
    model.eval()
    output = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
    model.train(was_training)
    matrix = task.confusion_matrix(output, y)
    names = list(task.describe().get("class_names") or range(len(matrix)))
    return [{"true": names[i], "predicted": names[j], "count": int(n)}
            for i, row in enumerate(matrix) for j, n in enumerate(row)]


def _task_yaml(task: tasks.Task) -> str:
    import yaml

    return yaml.safe_dump(task.describe(), sort_keys=False)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(index: int, inbox: Any, queue: Any) -> None:
    """Entry point of a worker process: waits for the suite and the parent's working
    directory and environment on ``inbox`` (None: stop), then works; progress goes to
    ``queue``."""

    def emit(kind: str, payload: dict[str, Any]) -> None:
        queue.put((kind, payload))

    try:
        message = inbox.get()
        if message is None:
            return
        suite, context = message
        os.chdir(context["cwd"])
        os.environ.clear()
        os.environ.update(context["environ"])
        jobs = Worker(suite, index, emit).run()
        emit("done", {"worker": index, "jobs": jobs, "peak_rss_mb": peak_rss_mb()})
    except KeyboardInterrupt:
        emit("interrupted", {"worker": index})
    except Exception as err:  # reported by the parent, which exits non-zero
        emit("error", {"worker": index, "error": f"{type(err).__name__}: {err}"})
        raise
