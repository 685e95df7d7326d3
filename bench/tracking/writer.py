"""Writing a suite's runs: ``Tracker``, MLflow's client behind retries, batched.

Layout (SPEC section 4): one MLflow experiment per suite; a parent run per configuration
(tags: task, seq_len, model, regularization, clipping, config hash); nested runs per trial
(``role=trial``) and per final seed (``role=final``). Metrics are logged in batches with
``MlflowClient.log_batch`` (one call per 1,000 points); tables and files go to artifacts,
sent in parallel to a tracking server (``UPLOADS`` at a time).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from bench.names import RUNS_VIEW_TAG
from bench.tracking import retries
from bench.tracking.reader import download_text, search_runs
from bench.tracking.records import MetricPoint, RunRecords, csv_text
from bench.tracking.retries import RetryingClient, retried
from bench.tracking.store import artifact_root, configure, is_local, mlflow_client

BATCH = 1000  # MLflow accepts at most 1,000 metrics per log_batch call
PARAM_BATCH = 100  # and 100 params
UPLOADS = 8  # a run's files sent to a tracking server at a time (and its metric batches)

Entities = tuple[list[Param], list[RunTag], list[Metric]]  # a run's records, as MLflow's


def _nothing() -> None:
    """No wait before a request."""


class Tracker:
    """MLflow runs of one suite. Cheap to create; one per process.

    Every call to the store retries transient failures (server down, connection refused,
    database locked) with exponential backoff for up to ``retry_s`` seconds (default
    ``retries.RETRY_S``: 60, ``GRADBENCH_TRACKING_RETRY_S``), then raises
    ``TrackingUnavailable``.
    """

    def __init__(self, uri: str, experiment: str, *, run_dir: Path | None = None,
                 retry_s: float | None = None) -> None:
        configure()
        self.uri = uri
        self.retry_s = retries.RETRY_S if retry_s is None else retry_s
        self.client = RetryingClient(mlflow_client(uri), uri, self.retry_s)
        self.experiment_name = experiment
        self._artifacts = artifact_root(run_dir) if run_dir and is_local(uri) else None
        self._experiment_id: str | None = None
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI, runs started here
        self._uploads = _Uploads(uri, self.retry_s)  # a server's: files sent in parallel

    # ----------------------------------------------------------------- experiment and runs

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = _ensure_experiment(self.client, self.experiment_name,
                                                     self._artifacts)
        return self._experiment_id

    def find_runs(self, filter_string: str, max_results: int = 10_000) -> list[Any]:
        """Runs of this suite's experiment matching an MLflow filter string."""
        return list(search_runs(self.client, self.experiment_id, filter_string, max_results))

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

    def tag_parents(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        """Set tags on configurations' parent runs that exist (configuration -> tags)."""
        for name, values in tags.items():
            for run in self._parents(name)[:1]:
                self.set_tags(str(run.info.run_id), values)

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
        items = _params(params)
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(run_id, params=items[i : i + PARAM_BATCH], synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=_tags(tags), synchronous=True)

    def log_metrics(self, run_id: str, points: Iterable[MetricPoint]) -> int:
        """Log (key, value, step) points in batches; non-finite values are skipped."""
        metrics = _metrics(points)
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + BATCH], synchronous=True)
        return len(metrics)

    def log_table(self, run_id: str, rows: Sequence[Mapping[str, Any]], path: str) -> None:
        """A tidy table as a CSV artifact (columns from the first row)."""
        if rows:
            self.client.log_text(run_id, csv_text(rows), path)

    def log_run(self, run_id: str, *, params: Mapping[str, Any], tags: Mapping[str, Any],
                metrics: Sequence[MetricPoint], files: Mapping[str, str | bytes],
                before_each: Callable[[], None] = _nothing) -> None:
        """Everything a finished run records, in as few calls as MLflow allows.

        Params, tags and metrics go in ``log_batch`` calls (``_log_batches``); ``files``
        (artifact path -> text) are written to a temporary folder. Into a local store they
        are copied with one call; to a server each file is a request of its own, so they are
        sent in parallel, beside the batches (``UPLOADS`` at a time): over HTTP a run's
        records then take about as long as its metric batch instead of the batch plus one
        round trip per file. ``before_each`` is called before each request (it may wait: a
        worker lets the opening of a run go first). Returns when everything is written; the
        first error is raised.
        """
        entities = (_params(params), _tags(tags), _metrics(metrics))
        batches = partial(_log_batches, self.client, run_id, entities, before_each) \
            if any(entities) else _nothing
        if not files:
            batches()
            return
        with _staged(files) as folder:
            if is_local(self.uri):
                batches()
                before_each()
                self.client.log_artifacts(run_id, str(folder))
            else:
                self._uploads.send(self._artifact_uri(run_id), folder, list(files), batches,
                                   before_each)

    def _artifact_uri(self, run_id: str) -> str:
        """The run's artifact location, without asking the server when it was started
        here (MLflow's client would fetch the run once per process for it)."""
        return str(self._artifact_uris.get(run_id)
                   or self.client.get_run(run_id).info.artifact_uri)

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

    def set_runs_view(self, view: str) -> None:
        """The runs table's view that the suite's links open (``records.runs_view``)."""
        self.client.set_experiment_tag(self.experiment_id, RUNS_VIEW_TAG, view)

    def log_files(self, run_id: str, files: Mapping[str, str | bytes]) -> None:
        """Artifacts (path -> text or bytes), as ``log_run`` sends them."""
        self.log_run(run_id, params={}, tags={}, metrics=[], files=files)

    def load_table(self, run_id: str, path: str) -> list[dict[str, str]]:
        """Read back a CSV artifact written by ``log_table``."""
        text = download_text(self.client, run_id, path)
        if text is None:
            raise FileNotFoundError(f"run {run_id} has no artifact {path}")
        return list(csv.DictReader(io.StringIO(text)))


def _ensure_experiment(client: Any, name: str, artifacts: str | None) -> str:
    """The id of the experiment ``name``: found, else created (its artifacts in
    ``artifacts``; None: the store's default)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        # experimentKind: MLflow 3's UI shows the runs table, not its GenAI pages
        return str(client.create_experiment(
            name, artifacts, tags={"mlflow.experimentKind": "custom_model_development"}))
    except Exception:  # created meanwhile by another worker: use theirs
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


# ------------------------------------------------------------------------------ batching


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _params(params: Mapping[str, Any]) -> list[Param]:
    return [Param(k, _param_value(v)) for k, v in params.items()]


def _tags(tags: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(k, str(v)) for k, v in tags.items()]


def _metrics(points: Iterable[MetricPoint]) -> list[Metric]:
    """Metric points stamped now; non-finite values are skipped."""
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, int(s)) for k, v, s in points if math.isfinite(v)]


def _log_batches(client: Any, run_id: str, entities: Entities,
                 before_each: Callable[[], None]) -> None:
    """A run's params, tags and metrics in as few ``log_batch`` calls as MLflow allows.

    Params, tags and the first metrics share one call (at most 1,000 entities, 100 params,
    100 tags); the other params and tags follow 100 at a time, the other metrics 1,000 at a
    time. ``before_each`` is called before each request.
    """
    items, labels, points = entities
    room = max(0, BATCH - min(len(items), PARAM_BATCH) - min(len(labels), PARAM_BATCH))
    before_each()
    client.log_batch(run_id, metrics=points[:room], params=items[:PARAM_BATCH],
                     tags=labels[:PARAM_BATCH], synchronous=True)
    for i in range(PARAM_BATCH, max(len(items), len(labels)), PARAM_BATCH):
        before_each()
        client.log_batch(run_id, params=items[i : i + PARAM_BATCH],
                         tags=labels[i : i + PARAM_BATCH], synchronous=True)
    for i in range(room, len(points), BATCH):
        before_each()
        client.log_batch(run_id, metrics=points[i : i + BATCH], synchronous=True)


class _Uploads:
    """A run's files sent to a tracking server: each file is a request of its own, so they
    go in parallel, beside the run's metric batches (``UPLOADS`` at a time), each retried
    as every call to the store."""

    def __init__(self, uri: str, retry_s: float) -> None:
        self.uri, self.retry_s = uri, retry_s
        self._pool: ThreadPoolExecutor | None = None

    def send(self, artifact_uri: str, folder: Path, paths: list[str],
             batches: Callable[[], None], before_each: Callable[[], None]) -> None:
        """``batches()`` and the upload of each file under ``folder``, at the same time."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if self._pool is None:
            self._pool = ThreadPoolExecutor(UPLOADS, thread_name_prefix="gradbench-upload")
        repo = get_artifact_repository(artifact_uri, tracking_uri=self.uri)

        def upload(path: str) -> None:
            into = str(Path(path).parent)
            before_each()
            retried("log_artifact", partial(repo.log_artifact, str(folder / path),
                                            None if into == "." else into),
                    self.uri, self.retry_s)

        jobs = [self._pool.submit(batches)] + [self._pool.submit(upload, p) for p in paths]
        for job in jobs:  # every one ended before the folder is removed; then the first error
            job.exception()
        for job in jobs:
            job.result()


@contextlib.contextmanager
def _staged(files: Mapping[str, str | bytes]) -> Iterator[Path]:
    """``files`` (artifact path -> text or bytes) written into a temporary folder, removed
    after."""
    with tempfile.TemporaryDirectory(prefix="gradbench-artifacts-") as tmp:
        for path, body in files.items():
            target = Path(tmp, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(body, bytes):
                target.write_bytes(body)
            else:
                target.write_text(body)
        yield Path(tmp)
