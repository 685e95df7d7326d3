"""A worker's MLflow side: its runs opened, their records written, its parent runs ended.

One ``Recorder`` per worker (``bench.run.worker``), which hands it each job's run: the
run is opened by a thread of its own while the job trains, its records are built and kept
on disk by another while the next job trains, and sent to the store by a third. A
configuration's parent run (looked up once per worker) gets its tags and its end after the
runs handed over before them. MLflow is reached through ``bench.tracking`` only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch
import yaml

import tasks
from bench import tuning
from bench.config import Configuration
from bench.names import CONFUSION_TABLE, DESCRIPTION_TAG, STEPS_TABLE, diagnostics_table
from bench.outcomes import MLFLOW_STATUS, Outcome
from bench.registry import TASKS
from bench.run.suite import Suite, parent_tags
from bench.tracking import (
    SEND_BACKLOG,
    BackgroundWriter,
    RunRecords,
    Spool,
    Tracker,
    best_points,
    csv_text,
    log_dataset,
    log_flow,
    opening,
    opens_first,
    provenance,
    result_metrics,
    run_description,
    run_figures,
    run_params,
    step_rows,
)
from bench.train import TrainResult, predict


class Recorder:
    """One worker's tracker, its background writers and spool, and its parent runs."""

    def __init__(self, suite: Suite, index: int, device: torch.device) -> None:
        self.suite, self.spec, self.index, self.device = suite, suite.spec, index, device
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
        self._provenance = provenance()
        self._parents: dict[str, str] = {}

    @property
    def _writers(self) -> tuple[BackgroundWriter, ...]:
        return self.writer, self.sender, self.opener  # in this order: each feeds the next

    def flush(self) -> None:
        """Write what is left, each writer in turn (a failure to write raises)."""
        for writer in self._writers:
            writer.close()

    def abandon(self) -> None:
        """After a failure: what is written by now stays written, the rest spooled."""
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.close()

    def close(self) -> None:
        self.spool.close()

    # ------------------------------------------------------------------ a job's run

    def open_run(self, configuration: Configuration, claim: tuning.Claim) -> Future[str]:
        """The claim's run, opened by the opener thread (``_start_run``)."""
        return self.opener.call(lambda: self._open_run(configuration, claim))

    def _open_run(self, configuration: Configuration, claim: tuning.Claim) -> str:
        """``_start_run``, while this machine's senders wait (``tracking.opening``)."""
        with opening(self.suite.run_dir):
            return self._start_run(configuration, claim)

    def _start_run(self, configuration: Configuration, claim: tuning.Claim) -> str:
        """The claim's nested MLflow run under its configuration's parent run."""
        name = f"final-seed{claim.seed}" if claim.final else f"trial-{claim.number}"
        return self.tracker.start_run(self.parent(configuration), name, {
            **self._parent_tags(configuration), "configuration": configuration.name,
            "role": claim.role, "study": claim.study_name,
            "trial_number": str(claim.number), "seed": str(claim.seed),
            "worker": str(self.index)})

    def end_abandoned(self, opened: Future[str], outcome: Outcome) -> None:
        """End the run of a claim that ended without a result (once it is open)."""
        with contextlib.suppress(Exception):
            run_id = opened.result(timeout=tuning.GRACE_S)
            self.tracker.set_tags(run_id, {"state": str(outcome)})
            self.tracker.end_run(run_id, MLFLOW_STATUS[outcome])

    def record(self, run_id: str, configuration: Configuration, params: dict[str, Any],
               seed: int, result: TrainResult, info: dict[str, Any], *, status: str) -> None:
        """Hand the run's records and its end (``status``) to the background writer, which
        builds them, keeps them in the spool and hands them to the sender (waiting for the
        previous run's to be kept first); only what needs the model (a classification task's
        confusion matrix) is computed here."""
        classes = TASKS.get(configuration.task).classes  # a classification task: HAR
        confusion = None
        if info.get("final") and result.status != "diverged" and classes:
            confusion = csv_text(confusion_rows(info["task"], info["model"], classes))
        run = {key: value for key, value in info.items() if key != "model"}  # freed now

        def keep() -> None:
            records = self._records(run_id, configuration, params, seed, result, run,
                                    confusion, status)
            kept = self.spool.keep(records)

            def send() -> None:
                self.tracker.write(records, before_each=self._opens_first)
                self.spool.drop(kept)

            self.sender.submit(send)

        self.writer.submit(keep)
        data: Any = getattr(info["task"], "data", None)  # a task read from files (HAR)
        if hasattr(data, "x_train"):
            self._after_records(functools.partial(log_dataset, self.tracker, run_id, info[
                "task"].name, data.x_train, data.y_train, str(data.source)))

    def _opens_first(self) -> None:
        """Before each request that sends records: a run being opened here goes first."""
        opens_first(self.suite.run_dir)

    def _records(self, run_id: str, configuration: Configuration, params: dict[str, Any],
                 seed: int, result: TrainResult, info: dict[str, Any], confusion: str | None,
                 status: str) -> RunRecords:
        """Everything one run records (built in the writer's thread)."""
        task = info["task"]
        tags = {"state": str(Outcome.of(result)), "device": str(self.device),
                "diverged_at": result.diverged_at or "", "reason": result.reason or "",
                "metric": task.metric, "direction": task.direction, **self._provenance}
        if result.test:  # final seeds: whether the test metrics meet the solved rule
            tags.update(solved=str(result.solved), test_from=result.test_from)
        files: dict[str, str | bytes] = {"task.yaml": _task_yaml(task)}
        if result.train_loss:
            files[STEPS_TABLE] = csv_text(step_rows(result))
        if result.diagnostics is not None:
            for table, rows in result.diagnostics.tables().items():
                if rows:
                    files[diagnostics_table(table)] = csv_text(rows)
        if confusion is not None:
            files[CONFUSION_TABLE] = confusion
        if info.get("final"):  # the pictures the MLflow UI previews, drawn here
            tables = result.diagnostics.tables() if result.diagnostics is not None else {}
            files.update(run_figures(step_rows(result), result.evals, tables, task.metric))
        tags[DESCRIPTION_TAG] = run_description(
            result, task, configuration=configuration.name, final=bool(info.get("final")),
            seed=seed, number=int(info.get("number", -1)))
        return RunRecords(run_id, run_params(configuration, params, seed, info, self.spec),
                          tags, result_metrics(result, task), files, status)

    # ------------------------------------------------------------------ parent runs

    def _parent_tags(self, configuration: Configuration) -> dict[str, str]:
        return parent_tags(self.spec, configuration)

    def parent(self, configuration: Configuration) -> str:
        """The configuration's parent run id (looked up once per worker)."""
        if configuration.name not in self._parents:
            self._parents[configuration.name] = self.tracker.parent_run(
                configuration.name, self._parent_tags(configuration))
        return self._parents[configuration.name]

    def end_parent(self, configuration: Configuration, status: str,
                   tags: dict[str, str]) -> bool:
        """End a configuration's parent run, once: True if this call ended it."""
        parent = self.parent(configuration)
        if self.tracker.run_status(parent) != "RUNNING":
            return False
        self.tracker.set_tags(parent, tags)
        self.tracker.end_run(parent, status)
        return True

    def note_best(self, configuration: Configuration, best: tuning.TrialRecord) -> None:
        """The best trial on the parent run: ``best.<name>`` tags (the report's) and
        ``best/<name>`` metrics (``tracking.best_points``), which MLflow compares."""
        tags: dict[str, Any] = {f"best.{k}": v for k, v in best.params.items()}
        tags["best.trial"] = best.number
        if best.value is not None:
            tags[f"best.val_{tuning.objective_key(self.spec, configuration)}"] = best.value
        self._after_records(lambda: self.tracker.log_run(  # in one batch
            self.parent(configuration), params={}, tags=tags,
            metrics=best_points(tags, best.number), files={}))

    def finish(self, configuration: Configuration, row: dict[str, Any],
               current: set[int]) -> None:
        """The seeds' summary (``row``, the configuration's leaderboard row) on the parent
        run, which ends (written in the background, after the seeds' own records)."""

        def finish() -> None:
            seeds = self._mark_superseded(configuration, current)
            parent = self.parent(configuration)
            if seeds:  # the first final seed's heatmap, as the report shows it
                log_flow(self.tracker, parent, seeds[min(seeds)],
                         f"{configuration.name}, final seed {min(seeds)}")
            metric = row["metric"]
            self.tracker.log_metrics(parent, [
                (f"final/{metric}_mean", row["mean"], 0),
                (f"final/{metric}_std", row["std"], 0),
                ("final/solved_rate", row["solved_rate"], 0),
                ("final/diverged_rate", row["diverged_rate"], 0)])
            self.tracker.end_run(parent, "FINISHED")

        self._after_records(finish)

    def _after_records(self, write: Callable[[], None]) -> None:
        """``write`` (a parent run's tags or end) once the runs handed over before it are
        in the store."""
        self.writer.submit(lambda: self.sender.submit(write, follows=True), follows=True)

    def _mark_superseded(self, configuration: Configuration,
                         current: set[int]) -> dict[int, str]:
        """Final seeds of parameters that are no longer the best (more tuning found better
        ones) leave the results: their runs' role becomes ``superseded``. Returns the
        current ones: seed -> run id."""
        study = tuning.study_name(self.spec, configuration, final=True)
        seeds = {}
        for run in self.tracker.find_runs(f"tags.study = '{study}' and tags.role = 'final'"):
            if int(run.data.tags.get("trial_number", -1)) not in current:
                self.tracker.set_tags(run.info.run_id, {"role": "superseded",
                                                        "superseded": "true"})
            else:
                seeds[int(run.data.tags.get("seed", -1))] = str(run.info.run_id)
        return seeds


def confusion_rows(task: Any, model: torch.nn.Module,
                   classes: Sequence[str]) -> list[dict[str, Any]]:
    """The test confusion matrix of a trained model as tidy rows (true, predicted, count);
    the task computes the matrix (``confusion_matrix``), its record names the classes."""
    x, y = task.split("test")
    matrix = task.confusion_matrix(predict(model, x), y)
    return [{"true": classes[i], "predicted": classes[j], "count": int(n)}
            for i, row in enumerate(matrix) for j, n in enumerate(row)]


def _task_yaml(task: tasks.Task) -> str:
    return yaml.safe_dump(task.describe(), sort_keys=False)
