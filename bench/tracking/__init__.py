"""The tracking layer: the only module that imports mlflow.

Layout (SPEC section 4): one MLflow experiment per suite; a parent run per configuration
(tags: task, seq_len, model, regularization, clipping, config hash); nested runs per trial
(``role=trial``) and per final seed (``role=final``). Metrics are ``namespace/name`` with the
global step, logged in batches with ``MlflowClient.log_batch`` (one call per 1,000 points);
tables (gradient profiles, spectra, ...) go to CSV artifacts, and so does every training
step (``STEPS_TABLE``), whose curves are metrics only thinned.

This module owns that layout on both sides: where a suite's store is (``resolve_uri``), the
names of the metrics and artifacts and how a finished run becomes them (``result_metrics``,
``step_rows``, ``run_params``), writing (``Tracker``) and reading back (``RunReader``, plain
``RunRecord`` values: no MLflow type leaves this module on the read side).

Nothing happens at import: ``configure()`` quiets MLflow's loggers and bounds its HTTP
retries (``Tracker`` and ``RunReader`` call it), ``preload()`` imports the stores a fork
server should hold before it forks.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from bench import retry
from bench.errors import error_line, mask_secrets
from bench.locks import locked

if TYPE_CHECKING:
    from bench.config import Configuration, SuiteSpec
    from bench.train import TrainResult
    from tasks import Task

RETRY_S = float(os.environ.get("GRADBENCH_TRACKING_RETRY_S", "60"))
TRANSIENT = ("ConnectionError", "Connection refused", "Max retries", "timed out",
             "Temporary failure", "TEMPORARILY_UNAVAILABLE", "502", "503", "504",
             "database is locked", "RemoteDisconnected", "Connection aborted")
BATCH = 1000  # MLflow accepts at most 1,000 metrics per log_batch call
PARAM_BATCH = 100  # and 100 params
SEND_BACKLOG = 8  # runs whose kept records may wait for the store, per worker
OPENS_LOCK = ".open.lock"  # in a run directory: held shared while a worker opens a run
OPEN_FIRST_S = 2.0  # how long one request of a run's records waits at most for opens
UPLOADS = 8  # a run's files sent to a tracking server at a time (and its metric batches)
PAGE = 1000  # search_runs page size (MLflow's maximum per request)
MetricPoint = tuple[str, float, int]  # (key, value, step)

# Artifacts of a run (paths inside its artifact folder).
STEPS_TABLE = "curves.csv"  # a run's every step: step, train_loss, grad_norm, clipped
CONFIG_FILE = "config.yaml"  # the resolved suite config, on each configuration run
CONFUSION_TABLE = "test/confusion.csv"  # HAR final seeds: true, predicted, count


def diagnostics_table(name: str) -> str:
    """The artifact path of a diagnostics table (``profiles`` -> ``diagnostics/profiles.csv``)."""
    return f"diagnostics/{name}.csv"


PROFILES_TABLE = diagnostics_table("profiles")  # per-time-step gradient norms at probe steps
# A parent run's way to its Optuna study: the study's name, its page on optuna-dashboard, and
# MLflow's description of the run (shown on the run's page).
STUDY_TAG = "optuna.study"
DASHBOARD_TAG = "optuna.dashboard"
DESCRIPTION_TAG = "mlflow.note.content"


# ------------------------------------------------------------------------------ set-up


def configure() -> None:
    """Quiet MLflow's own logging and bound its HTTP retries. Idempotent; called by
    ``Tracker`` and ``RunReader``, and by an entry point before anything else talks to MLflow.

    Table creation and migrations (``mlflow``, ``alembic`` loggers) are not news to a user.
    MLflow's own HTTP retries (7, backoff factor 2) can hang a worker for minutes without a
    word; the tracker retries itself, with a bounded budget, and then fails with a clear
    message. Values the user set in the environment are kept, except one: MLflow's own
    "View run ... at: URL" lines are always off, as they print the tracking URI's password.
    """
    level = logging.INFO if os.environ.get("GRADBENCH_VERBOSE") else logging.WARNING
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(level)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def preload() -> None:
    """Import the tracking stores of sqlite/postgresql URIs, for a process that forks
    workers: each worker then starts with them loaded."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def resolve_uri(configured: str | None, run_dir: Path) -> str:
    """A suite's tracking URI: the configured one, else ``$MLFLOW_TRACKING_URI``, else the
    embedded store in its run directory."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(run_dir)


def default_tracking_uri(run_dir: Path) -> str:
    """The embedded store: a SQLite database in the suite's run directory."""
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def artifact_root(run_dir: Path) -> str:
    return (run_dir / "artifacts").resolve().as_uri()


def relocate_artifacts(uri: str, experiment: str, run_dir: Path) -> str | None:
    """Point a moved or copied run directory's embedded store at its own ``artifacts/``.

    MLflow records an experiment's artifact location, and each run's, as absolute paths:
    after ``mv runs/a runs/b`` new runs' files would go to the old path (created again), and
    the MLflow UI would find none of the old ones; in a copy they would go into the
    original. Only the embedded store of ``run_dir`` (``default_tracking_uri``) is changed:
    a shared store's locations belong to the machine that created them. Returns the old
    location when it was changed, else None.
    """
    if uri != default_tracking_uri(run_dir) or not (run_dir / "mlflow.db").exists():
        return None
    import sqlalchemy

    new = artifact_root(run_dir)
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.begin() as db:
            row = db.execute(sqlalchemy.text(
                "SELECT experiment_id, artifact_location FROM experiments WHERE name = :name"),
                {"name": experiment}).first()
            if row is None or row[1] == new or _local_dir(str(row[1])) is None:
                return None
            old = str(row[1])
            db.execute(sqlalchemy.text(
                "UPDATE experiments SET artifact_location = :new WHERE experiment_id = :id"),
                {"new": new, "id": row[0]})
            db.execute(sqlalchemy.text(
                "UPDATE runs SET artifact_uri = :new || substr(artifact_uri, :cut) "
                "WHERE experiment_id = :id AND substr(artifact_uri, 1, :n) = :old"),
                {"new": new, "cut": len(old) + 1, "id": row[0], "n": len(old) + 1,
                 "old": old + "/"})
    finally:
        engine.dispose()
    logging.getLogger(__name__).warning(
        "run directory %s was moved or copied: its artifacts are now looked for and written "
        "there (were %s)", run_dir, _local_dir(old))
    return old


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "postgresql", "mysql")) or "://" not in uri


def check_reachable(uri: str, retry_s: float = 10.0) -> None:
    """Fail now, in one line, when a tracking server cannot be reached or refuses us; reads
    only. A local store (SQLite, a database URL) is opened later, where it is used.

    Raises:
        TrackingUnavailable: unreachable after ``retry_s`` of retries, or refused.
    """
    if _is_local(uri):
        return
    configure()
    client = _RetryingClient(MlflowClient(tracking_uri=uri), uri, retry_s)
    try:
        client.search_experiments(max_results=1)
    except TrackingUnavailable:
        raise
    except Exception as err:
        hint = ""
        if "Invalid Host header" in str(err):
            hint = ("; the server checks the Host header: start it with "
                    "--allowed-hosts naming the host and port of this URI")
        raise TrackingUnavailable(f"tracking store {mask_secrets(uri)} refused the request: "
                                  f"{error_line(err)}{hint}") from None


def find_experiment_id(uri: str, name: str) -> str | None:
    """The id of the experiment ``name`` in the store at ``uri``, or None (creates nothing)."""
    configure()
    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    return None if found is None else str(found.experiment_id)


# ------------------------------------------------------------------------------ names


# The metrics a report reads back by name (every key is ``namespace/name``).
TRAIN_LOSS = "train/loss"  # task loss per step (thinned; every step in STEPS_TABLE)
GRAD_NORM = "grad/norm"  # global gradient norm before clipping, per step (thinned)
VAL_LOSS = "val/loss"  # validation loss at the evaluation steps
TEST_LOSS = "test/loss"
TEST_NORMALIZED = "test/normalized"  # test loss / the trivial predictor's (same test set)
STEPS_TO_SOLVE = "val/steps_to_solve"  # first evaluation step meeting the solved rule
BASELINE = "baseline"  # namespace of the trivial predictor's metrics: baseline/test_loss, ...
SPECTRAL_RADIUS = "weights/spectral_radius"  # of W_hh, largest over gate blocks
FACTORS = "factors"  # the two factors of the decay per step, at each probe
FACTOR_NAMES = ("w_log10_norm", "w_log10_radius", "act_log10", "act_nonzero", "predicted",
                "measured")

# Per-step curves (train/loss, grad/norm) as MLflow metrics are thinned evenly to this many
# points: enough for MLflow's charts, and a metric point costs ~0.1 ms to record, a run's
# largest tracking cost. Every step is kept in the run's ``STEPS_TABLE`` artifact.
MAX_CURVE_POINTS = 200


def metric_key(namespace: str, name: str) -> str:
    """A metric's key: ``metric_key("test", "mse")`` -> ``test/mse``."""
    return f"{namespace}/{name}"


def curve(key: str, values: list[float], max_points: int = MAX_CURVE_POINTS) -> list[MetricPoint]:
    """A per-step series (steps from 1) as metric points, thinned evenly; the last kept."""
    stride = max(1, math.ceil(len(values) / max_points))
    points = [(key, v, i + 1) for i, v in enumerate(values) if i % stride == 0]
    if values and (len(values) - 1) % stride:  # always keep the last step
        points.append((key, values[-1], len(values)))
    return points


def result_metrics(result: TrainResult, task: Task) -> list[MetricPoint]:
    """Every metric of a run with its global step (steps count from 1; 0 = initialisation)."""
    points = curve(TRAIN_LOSS, result.train_loss) + curve(GRAD_NORM, result.grad_norm)
    for row in result.evals:
        step = int(row["step"])
        points += [(metric_key("val", k), float(v), step) for k, v in row.items() if k != "step"]
    end = result.steps_done
    points += [(metric_key("test", k), float(v), end) for k, v in result.test.items()]
    points += [("grad/clip_rate", result.clip_rate, end),
               ("train/wall_time", result.wall_time, end),
               ("train/steps_done", float(end), end)]
    for split, metrics in (("val", result.baseline_val), ("test", result.baseline_test)):
        points += [(metric_key(BASELINE, f"{split}_{k}"), float(v), 0) for k, v in metrics.items()]
    if result.solved_at is not None:
        points.append((STEPS_TO_SOLVE, float(result.solved_at), result.solved_at))
    if result.test:
        points.append(("test/solved", float(result.solved), end))
        points.append((TEST_NORMALIZED, normalized_score(result.test, task,
                                                         result.baseline_test), end))
    if result.diverged_at is not None:
        points.append(("train/diverged_at", float(result.diverged_at), end))
    if result.diagnostics is not None:
        points += diagnostic_metrics(result.diagnostics)
    return points


def step_rows(result: TrainResult) -> list[dict[str, Any]]:
    """Every training step (from 1): task loss, global gradient norm before clipping, and
    whether a clipping remedy acted. The ``STEPS_TABLE`` artifact of a run."""
    return [{"step": i + 1, "train_loss": loss, "grad_norm": norm, "clipped": int(clipped)}
            for i, (loss, norm, clipped) in enumerate(
                zip(result.train_loss, result.grad_norm, result.clipped, strict=True))]


def normalized_score(test: Mapping[str, float], task: Task,
                     baseline: Mapping[str, float] | None = None) -> float:
    """Test loss over the trivial predictor's loss on the same test set (the empirical
    baseline; the task's analytic one where there is none): 1 = no better than it."""
    bar = float((baseline or {}).get("loss", task.baseline))
    return float(test["loss"]) / bar if bar else math.nan


def diagnostic_metrics(diagnostics: Any) -> list[MetricPoint]:
    """Summaries of the probe-step tables as metrics; the full tables go to artifacts."""
    points: list[MetricPoint] = []
    for row in diagnostics.summaries:
        prefix = "grad" if row.kind == "h" else f"grad/{row.kind}"
        points += [(f"{prefix}/log10_ratio", row.log10_ratio, row.step),
                   (f"{prefix}/decay_rate", row.decay_rate, row.step),
                   (f"{prefix}/horizon", row.horizon, row.step)]
    radius: dict[int, float] = {}
    for row in diagnostics.spectra:
        points += [(f"weights/spectral_norm/{row.block}", row.spectral_norm, row.step),
                   (f"{SPECTRAL_RADIUS}/{row.block}", row.spectral_radius, row.step)]
        radius[row.step] = max(radius.get(row.step, -math.inf), row.spectral_radius)
    points += [(SPECTRAL_RADIUS, value, step) for step, value in radius.items()]
    for row in diagnostics.groups:
        points.append((f"grad/{row.source}/{row.group}", row.norm, row.step))
    for row in diagnostics.saturation:
        points.append((f"act/{row.block}/{row.measure}", row.value, row.step))
    for row in diagnostics.factors:
        points += [(f"{FACTORS}/{name}", getattr(row, name), row.step) for name in FACTOR_NAMES]
    steps = diagnostics.steps
    if steps is not None:
        points.append(("grad/nonfinite_steps", float(steps.n_nonfinite), steps.steps))
    return points


def run_params(configuration: Configuration, params: Mapping[str, Any], seed: int,
               info: Mapping[str, Any], spec: SuiteSpec) -> dict[str, Any]:
    """The params of a trial or final run: tuned values, then everything fixed."""
    cfg = info["cfg"]
    fixed = {
        "task": configuration.task, "seq_len": configuration.seq_len, "model": configuration.model,
        "regularization": configuration.regularization, "clipping": configuration.clipping,
        "hidden_size": info["hidden_size"], "n_params": info["n_params"], "seed": seed,
        "data_seed": spec.seed, "steps": cfg.steps, "batch_size": cfg.batch_size,
        "optimizer": cfg.optimizer, "eval_every": cfg.eval_every,
        "probe_every": spec.diagnostics.probe_every,
    }
    optional = {"warmup_steps": cfg.warmup_steps, "stop_when_solved": cfg.stop_when_solved}
    fixed.update({k: v for k, v in optional.items() if v})  # recorded where they are set
    return {**params, **fixed}


# ------------------------------------------------------------------------------ writing


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable through every retry."""


def _transient(err: BaseException) -> bool:
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(err).__name__}: {err}"
    return any(marker in text for marker in TRANSIENT)


def _retrying(name: str, fn: Callable[[], Any], uri: str, retry_s: float) -> Any:
    """``fn()``, retried on transient failures with exponential backoff for up to
    ``retry_s`` seconds; then ``TrackingUnavailable`` naming the store and the call."""

    def give_up(err: BaseException, attempts: int) -> BaseException:
        return TrackingUnavailable(
            f"tracking store {mask_secrets(uri)} unreachable: {name} failed "
            f"{attempts} times over {retry_s:.0f} s; last error: {error_line(err)}")

    return retry.retrying(fn, transient=_transient, limit_s=retry_s, give_up=give_up)


class _RetryingClient:
    """``MlflowClient`` whose calls retry transient failures with exponential backoff."""

    def __init__(self, client: MlflowClient, uri: str, retry_s: float) -> None:
        self._client, self._uri, self._retry_s = client, uri, retry_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return _retrying(name, lambda: method(*args, **kwargs), self._uri, self._retry_s)

        return call


def _nothing() -> None:
    """No wait before a request."""


class Tracker:
    """MLflow runs of one suite. Cheap to create; one per process.

    Every call to the store retries transient failures (server down, connection refused,
    database locked) with exponential backoff for up to ``retry_s`` seconds (default 60,
    ``GRADBENCH_TRACKING_RETRY_S``), then raises ``TrackingUnavailable``.
    """

    def __init__(self, uri: str, experiment: str, *, run_dir: Path | None = None,
                 retry_s: float | None = None) -> None:
        configure()
        self.uri = uri
        self.retry_s = RETRY_S if retry_s is None else retry_s
        self.client = _RetryingClient(MlflowClient(tracking_uri=uri), uri, self.retry_s)
        self.experiment_name = experiment
        self._artifacts = artifact_root(run_dir) if run_dir and _is_local(uri) else None
        self._experiment_id: str | None = None
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI, runs started here
        self._uploads: ThreadPoolExecutor | None = None  # a server's: files sent in parallel

    # ----------------------------------------------------------------- experiment and runs

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return str(found.experiment_id)
        try:
            # experimentKind: MLflow 3's UI shows the runs table, not its GenAI pages
            return str(self.client.create_experiment(
                self.experiment_name, self._artifacts,
                tags={"mlflow.experimentKind": "custom_model_development"}))
        except Exception:  # created meanwhile by another worker: use theirs
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return str(found.experiment_id)

    def find_runs(self, filter_string: str, max_results: int = 10_000) -> list[Any]:
        """Runs of this suite's experiment matching an MLflow filter string."""
        return list(_search(self.client, self.experiment_id, filter_string, max_results))

    def parent_run(self, name: str, tags: Mapping[str, str]) -> str:
        """The configuration's parent run: found by its ``configuration`` tag, or created."""
        return self.ensure_parent_run(name, tags)[0]

    def _parents(self, name: str) -> list[Any]:
        found = self.find_runs(f"tags.configuration = '{name}' and tags.role = 'configuration'")
        return sorted(found, key=lambda r: (r.info.start_time, r.info.run_id))

    def ensure_parent_run(self, name: str, tags: Mapping[str, str]) -> tuple[str, bool]:
        """(run id, created now?) of the configuration's parent run."""
        return self.ensure_parent_runs({name: tags})[name]

    def ensure_parent_runs(self, wanted: Mapping[str, Mapping[str, str]],
                           settle_s: float = 0.0) -> dict[str, tuple[str, bool]]:
        """Per configuration name: (run id, created now?) of its parent run.

        Processes on several machines may create the same parent at the same moment. Each
        creates those it does not find, waits ``settle_s`` so that the runs created meanwhile
        elsewhere are visible, then takes the earliest (start time, run id) as everyone
        does, and deletes its own run if it lost. The start time is the creating client's
        clock: a run stamped earlier may become visible later, which is what the wait
        covers (without it two machines each kept their own parent).
        """
        found: dict[str, tuple[str, bool]] = {}
        created: dict[str, str] = {}
        for name, tags in wanted.items():
            existing = self._parents(name)
            if existing:
                found[name] = (str(existing[0].info.run_id), False)
                continue
            all_tags = {**tags, "configuration": name, "role": "configuration",
                        MLFLOW_RUN_NAME: name}
            created[name] = str(self.client.create_run(self.experiment_id, tags=all_tags,
                                                       run_name=name).info.run_id)
        if created and settle_s > 0:
            time.sleep(settle_s)
        for name, run_id in created.items():
            winner = str(self._parents(name)[0].info.run_id)
            if winner != run_id:
                self.client.delete_run(run_id)
            found[name] = (winner, winner == run_id)
        return found

    def start_run(self, parent_id: str, name: str, tags: Mapping[str, str]) -> str:
        """A nested run (a trial or a final seed) under a configuration's parent run."""
        all_tags = {**tags, MLFLOW_PARENT_RUN_ID: parent_id, MLFLOW_RUN_NAME: name}
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        self._artifact_uris[str(run.info.run_id)] = str(run.info.artifact_uri)
        return str(run.info.run_id)

    def run_status(self, run_id: str) -> str:
        """RUNNING, FINISHED, FAILED or KILLED."""
        return str(self.client.get_run(run_id).info.status)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """``status``: FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status=status)
        self._artifact_uris.pop(run_id, None)

    # ----------------------------------------------------------------- logging, batched

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(run_id, params=items[i : i + PARAM_BATCH], synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self.client.log_batch(run_id, tags=items, synchronous=True)

    def log_metrics(self, run_id: str, points: Iterable[MetricPoint]) -> int:
        """Log (key, value, step) points in batches; non-finite values are skipped."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(s)) for k, v, s in points if math.isfinite(v)]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + BATCH], synchronous=True)
        return len(metrics)

    def log_table(self, run_id: str, rows: Sequence[Mapping[str, Any]], path: str) -> None:
        """A tidy table as a CSV artifact (columns from the first row)."""
        if rows:
            self.client.log_text(run_id, csv_text(rows), path)

    def log_run(self, run_id: str, *, params: Mapping[str, Any], tags: Mapping[str, Any],
                metrics: Sequence[MetricPoint], files: Mapping[str, str],
                before_each: Callable[[], None] = _nothing) -> None:
        """Everything a finished run records, in as few calls as MLflow allows.

        Params, tags and the first metrics share one ``log_batch`` (at most 1,000 entities,
        100 params, 100 tags); the other metrics follow 1,000 at a time; ``files`` (artifact
        path -> text) are written to a temporary folder. Into a local store they are copied
        with one call; to a server each file is a request of its own, so they are sent in
        parallel, beside the batches (``UPLOADS`` at a time): over HTTP a run's records then
        take about as long as its metric batch instead of the batch plus one round trip
        per file. ``before_each`` is called before each request (it may wait: a worker
        lets the opening of a run go first). Returns when everything is written; the first
        error is raised.
        """
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        labels = [RunTag(k, str(v)) for k, v in tags.items()]
        now = int(time.time() * 1000)
        points = [Metric(k, float(v), now, int(st)) for k, v, st in metrics if math.isfinite(v)]
        room = max(0, BATCH - min(len(items), PARAM_BATCH) - min(len(labels), PARAM_BATCH))

        def batches() -> None:
            before_each()
            self.client.log_batch(run_id, metrics=points[:room], params=items[:PARAM_BATCH],
                                  tags=labels[:PARAM_BATCH], synchronous=True)
            for i in range(PARAM_BATCH, max(len(items), len(labels)), PARAM_BATCH):
                before_each()
                self.client.log_batch(run_id, params=items[i : i + PARAM_BATCH],
                                      tags=labels[i : i + PARAM_BATCH], synchronous=True)
            for i in range(room, len(points), BATCH):
                before_each()
                self.client.log_batch(run_id, metrics=points[i : i + BATCH], synchronous=True)

        if not files:
            batches()
            return
        with tempfile.TemporaryDirectory(prefix="gradbench-artifacts-") as tmp:
            for path, text in files.items():
                target = Path(tmp, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            if _is_local(self.uri):
                batches()
                before_each()
                self.client.log_artifacts(run_id, tmp)
            else:
                self._send_in_parallel(run_id, Path(tmp), list(files), batches, before_each)

    def _send_in_parallel(self, run_id: str, folder: Path, paths: list[str],
                          batches: Callable[[], None], before_each: Callable[[], None]) -> None:
        """``batches()`` and the upload of each file under ``folder``, at the same time."""
        if self._uploads is None:
            self._uploads = ThreadPoolExecutor(UPLOADS, thread_name_prefix="gradbench-upload")
        repo = self._artifact_repo(run_id)

        def upload(path: str) -> None:
            into = str(Path(path).parent)
            before_each()
            _retrying("log_artifact", partial(repo.log_artifact, str(folder / path),
                                              None if into == "." else into),
                      self.uri, self.retry_s)

        jobs = [self._uploads.submit(batches)] + [self._uploads.submit(upload, p) for p in paths]
        for job in jobs:  # every one ended before the folder is removed; then the first error
            job.exception()
        for job in jobs:
            job.result()

    def _artifact_repo(self, run_id: str) -> Any:
        """The run's artifact repository, without asking the server when it was started
        here (MLflow's client would fetch the run once per process for it)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        return get_artifact_repository(uri, tracking_uri=self.uri)

    def write(self, records: RunRecords, before_each: Callable[[], None] = _nothing) -> None:
        """A finished run's records, then its end (its status says the records are whole);
        ``before_each`` as in ``log_run``."""
        self.log_run(records.run_id, params=records.params, tags=records.tags,
                     metrics=records.metrics, files=records.files, before_each=before_each)
        before_each()
        self.end_run(records.run_id, records.status)

    def replay(self, records: RunRecords) -> bool:
        """Write records kept in a spool whose process died before the store had them all;
        True if anything was written. A run already ended with its records is left alone.
        A run that has metrics got its first batch (the store writes a batch's params,
        then its metrics, then its tags): its metrics are not sent again, so no point is
        recorded twice; params (the same values) and tags, files and the end are."""
        run = self.client.get_run(records.run_id)
        repaired = run.data.tags.get("tracking") == "incomplete"  # ended by recovery
        if run.info.status != "RUNNING" and not repaired:
            return False
        landed = bool(run.data.metrics)
        self.log_run(records.run_id, params=records.params, tags=records.tags,
                     metrics=[] if landed else records.metrics, files=records.files)
        if repaired:
            self.client.delete_tag(records.run_id, "tracking")
        self.end_run(records.run_id, records.status)
        return True

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def load_table(self, run_id: str, path: str) -> list[dict[str, str]]:
        """Read back a CSV artifact written by ``log_table``."""
        text = _download_text(self.client, run_id, path)
        if text is None:
            raise FileNotFoundError(f"run {run_id} has no artifact {path}")
        return list(csv.DictReader(io.StringIO(text)))


@dataclass
class RunRecords:
    """What a finished run records, as plain values: its params, tags, metric points, files
    (artifact path -> text) and final status (``Tracker.write``)."""

    run_id: str
    params: dict[str, Any]
    tags: dict[str, Any]
    metrics: list[MetricPoint]
    files: dict[str, str]
    status: str

    def to_json(self) -> str:
        return json.dumps({"run_id": self.run_id, "params": self.params, "tags": self.tags,
                           "metrics": self.metrics, "files": self.files,
                           "status": self.status}, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunRecords:
        data = json.loads(text)
        return cls(str(data["run_id"]), dict(data["params"]), dict(data["tags"]),
                   [(str(k), float(v), int(st)) for k, v, st in data["metrics"]],
                   dict(data["files"]), str(data["status"]))


class Spool:
    """Run records on disk from the moment they are built until the store has them all.

    A process keeps its records in ``<run dir>/spool/<pid>/`` (one JSON file per run,
    written whole and then renamed), so that a ``kill -9`` loses none that were handed over:
    ``replay_spooled`` writes what dead processes left, before recovery ends their runs as
    incomplete. JSON, not pickle: reading a run directory runs no code.
    """

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "spool" / str(os.getpid())
        self._count = 0

    def keep(self, records: RunRecords) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        path = self.folder / f"{self._count:08d}-{records.run_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(records.to_json())
        tmp.replace(path)
        return path

    @staticmethod
    def drop(path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove this process's folder once everything in it was sent (and the spool
        folder, when no other process has one)."""
        for folder in (self.folder, self.folder.parent):
            with contextlib.suppress(OSError):  # not there, or not empty: kept
                folder.rmdir()


@contextlib.contextmanager
def opening(run_dir: Path) -> Iterator[None]:
    """Held while a worker opens a run: the senders of the workers of this machine (of this
    run directory) wait before their next request (``opens_first``). A worker waits for its
    run's open after training and nothing waits for records, so the store should answer
    opens first: over one server on the workers' two cores, opens behind the other workers'
    records took 150-190 ms on average, and a 60-step run trains for 0.2-0.5 s. A lock file
    held shared (opens do not wait for each other) and released by the kernel with a
    process that dies."""
    with locked(run_dir / OPENS_LOCK, shared=True):
        yield


def opens_first(run_dir: Path, limit_s: float = OPEN_FIRST_S) -> float:
    """Wait while a run is being opened on this machine (``opening``), at most ``limit_s``
    (opens that never pause hold up no record for long); returns the seconds waited."""
    started = time.monotonic()
    while True:
        try:
            with locked(run_dir / OPENS_LOCK, wait=False):
                break
        except BlockingIOError:
            if time.monotonic() - started >= limit_s:
                break
            time.sleep(0.005)
    return time.monotonic() - started


def replay_spooled(run_dir: Path, tracker: Tracker) -> int:
    """Write the records that processes which no longer exist left in the run directory's
    spool (in the order they were kept), and remove them; returns the runs written. A file
    that cannot be read or written (its run deleted from the store, say) is left where it
    is and named in a warning; its run is then ended as incomplete by recovery, as without
    a spool. A store that does not answer raises ``TrackingUnavailable``."""
    from bench.processes import process_alive

    root = run_dir / "spool"
    written = 0
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        if not folder.name.isdigit() or process_alive(int(folder.name)):
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                records = RunRecords.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as err:
                logging.getLogger(__name__).warning("spooled records %s unreadable: %s",
                                                    path, err)
                continue
            try:
                written += tracker.replay(records)
            except TrackingUnavailable:
                raise
            except Exception as err:  # the run deleted from the store meanwhile, say
                logging.getLogger(__name__).warning(
                    "spooled records %s not written (kept): %s", path, error_line(err))
                continue
            path.unlink()
        for leftover in folder.glob("*.tmp"):  # never renamed: not handed over
            leftover.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    return written


class BackgroundWriter:
    """Writes to the tracking store from a thread, in the order things were handed over.

    ``submit(write)`` hands over a callable that records one run and returns at once: the
    worker trains its next job meanwhile. It waits only while ``backlog`` runs handed over
    before are not yet written (1: the previous one). ``submit(write, follows=True)`` is a
    small write that goes with what was handed over last (a parent run's tags or end):
    queued after it, without waiting. ``call(fn)`` runs ``fn`` in turn and gives its result
    as a future (a worker opens its runs through ``call`` on a writer of its own, so that an
    open never queues behind records).

    A worker hands a run to two writers (``bench.run.worker``): the first builds its records
    and keeps them in a ``Spool`` (backlog 1: at most one run's records exist only in
    memory, so a ``kill -9`` loses no more than that run's, whose trial, told to Optuna
    before, is repaired on resume as any run whose worker died: ``suite.end_orphan_runs``);
    the second sends them to the store, up to ``SEND_BACKLOG`` runs behind, since what a
    dead process left in the spool is written on resume (``replay_spooled``).

    ``flush`` waits for everything handed over; an error the thread met
    (``TrackingUnavailable`` after the tracker's own retries, or any other) is raised by the
    next ``submit`` that waits, ``flush`` or ``close`` in the caller's thread, never dropped;
    after it, only ``call`` still runs. ``waited_s`` sums the seconds callers spent waiting.

    ``synchronous=True`` (or ``GRADBENCH_TRACKING_SYNC=1`` in the environment) writes in
    the caller's thread instead, as before, for comparison.
    """

    def __init__(self, *, synchronous: bool | None = None, backlog: int = 1) -> None:
        import queue
        import threading

        if synchronous is None:
            synchronous = os.environ.get("GRADBENCH_TRACKING_SYNC", "") not in ("", "0")
        self.synchronous = synchronous
        self.waited_s = 0.0
        self._error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(backlog)  # runs handed over, not yet written
        self._queue: queue.Queue[tuple[Callable[[], Any], bool] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if not synchronous:
            self._thread = threading.Thread(target=self._work, name="gradbench-tracking",
                                            daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                write, holds_slot = item
                try:
                    if self._error is None or getattr(write, "answers", False):
                        write()  # after a failure no more records (it is raised); calls answer
                except BaseException as err:  # handed to the caller's thread
                    self._error = err
                finally:
                    if holds_slot:
                        self._slots.release()
            finally:
                self._queue.task_done()

    def submit(self, write: Callable[[], None], *, follows: bool = False) -> None:
        """Write one run's records in the background; waits while ``backlog`` earlier runs'
        are not yet written. ``follows``: a small write that goes with what was handed
        over last, queued without waiting."""
        started = time.perf_counter()
        try:
            if self._thread is None:
                write()
                return
            if not follows:
                self._slots.acquire()
                if self._error is not None:
                    self._slots.release()
                    self._raise()
            self._queue.put((write, not follows))
        finally:
            self.waited_s += time.perf_counter() - started

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """``fn()`` in the writer's thread, in turn; its result or error in the future."""
        future: Future[Any] = Future()

        def answer() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as err:  # raised by future.result() in the caller
                    future.set_exception(err)

        answer.answers = True  # type: ignore[attr-defined]
        if self._thread is None:
            answer()
        else:
            self._queue.put((answer, False))
        return future

    def flush(self) -> None:
        """Wait until everything handed over is written; raise what writing raised."""
        started = time.perf_counter()
        try:
            if self._thread is not None:
                self._queue.join()
            if self._error is not None:
                self._raise()
        finally:
            self.waited_s += time.perf_counter() - started

    def _raise(self) -> None:
        error, self._error = self._error, None
        assert error is not None
        raise error

    def close(self) -> None:
        """Flush, then stop the thread (also when the flush raises)."""
        try:
            self.flush()
        finally:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=5)
            self._thread = None


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class RunRecord:
    """One run as read back: plain values, no MLflow types.

    ``start_time`` and ``end_time`` are in ms since the epoch (None: not set); ``metrics``
    holds the latest value of every metric key.
    """

    run_id: str
    parent_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED or KILLED
    artifact_uri: str
    start_time: int | None
    end_time: int | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]


def _record(run: Any) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(run_id=str(info.run_id), parent_id=data.tags.get(MLFLOW_PARENT_RUN_ID, ""),
                     name=data.tags.get(MLFLOW_RUN_NAME, ""), status=str(info.status),
                     artifact_uri=info.artifact_uri or "", start_time=info.start_time,
                     end_time=info.end_time, tags=dict(data.tags), params=dict(data.params),
                     metrics=dict(data.metrics))


class RunReader:
    """The runs of one suite's experiment, read and never written (nothing is created).

    Raises:
        FileNotFoundError: an embedded (SQLite) store that does not exist, or no experiment
            of that name in the store.
    """

    def __init__(self, uri: str, experiment: str) -> None:
        configure()
        self.uri, self.experiment = uri, experiment
        database = uri.removeprefix("sqlite:///")
        if uri.startswith("sqlite:///") and not Path(database).exists():
            raise FileNotFoundError(f"no tracking store at {database}")  # don't create one
        self._client = MlflowClient(tracking_uri=uri)
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            raise FileNotFoundError(f"no MLflow experiment {experiment!r} at "
                                    f"{mask_secrets(uri)}; run the suite first")
        self.experiment_id = str(found.experiment_id)
        self._artifact_uri: dict[str, str] = {}
        # an embedded store's artifacts sit beside it (``artifact_root``), where they are
        # looked for when the run directory was moved or copied since they were written
        self._beside = Path(database).parent / "artifacts" if uri.startswith("sqlite:///") \
            else None

    def runs(self) -> list[RunRecord]:
        """Every run of the experiment (all statuses), in pages of 1,000."""
        records = [_record(run) for run in _search(self._client, self.experiment_id)]
        self._artifact_uri.update((r.run_id, r.artifact_uri) for r in records)
        return records

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every logged (step, value) of one metric of a run, in logging order."""
        return [(int(m.step), float(m.value))
                for m in self._client.get_metric_history(run_id, key)]

    def text(self, run_id: str, path: str) -> str | None:
        """An artifact as text, or None when the run has no such artifact. Artifacts in a
        local folder are read directly (much faster than a download)."""
        local = _local_dir(self._artifact_uri.get(run_id, ""))
        if local is not None:
            if not local.exists() and self._beside is not None:
                local = self._beside.joinpath(*local.parts[-2:])  # <run id>/artifacts
            target = local / path
            return target.read_text() if target.is_file() else None
        return _download_text(self._client, run_id, path)


def _local_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file://`` artifact location."""
    if artifact_uri.startswith("file:"):
        return Path(unquote(urlparse(artifact_uri).path))
    if artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


# ------------------------------------------------------------------------------ helpers


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """A tidy table as CSV text (columns from the first row)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _search(client: Any, experiment_id: str, filter_string: str = "",
            max_results: int | None = None) -> Iterator[Any]:
    """The runs of an experiment matching a filter (all of them: ``max_results`` None), in
    pages of up to 1,000 (MLflow's maximum per request)."""
    token, count = None, 0
    while True:
        size = PAGE if max_results is None else min(max_results, PAGE)
        page = client.search_runs([experiment_id], filter_string, max_results=size,
                                  page_token=token)
        yield from page
        count += len(page)
        token = page.token
        if not token or (max_results is not None and count >= max_results):
            return


def _download_text(client: Any, run_id: str, path: str) -> str | None:
    """An artifact of a run as text, or None when the run has no such artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return Path(client.download_artifacts(run_id, path, tmp)).read_text()
        except TrackingUnavailable:
            raise
        except Exception:  # absent artifact: MlflowException / OSError, by store
            return None


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def provenance() -> dict[str, str]:
    """Where and with what a run was made: versions, machine, git commit, command line."""
    import platform
    import sys
    from importlib import metadata

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.node(),
        "cpu_count": str(os.cpu_count()),
        "argv": mask_secrets(" ".join(sys.argv)),
        "git_commit": _git_commit(),
    }
    for package in ("torch", "numpy", "optuna", "mlflow", "pandas", "rnn-gradbench"):
        try:
            info[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[f"version.{package}"] = "not installed"
    return info


def _git_commit() -> str:
    import subprocess

    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"
