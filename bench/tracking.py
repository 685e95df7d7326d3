"""The tracking layer: the only module that imports mlflow.

Layout (SPEC section 4): one MLflow experiment per suite; a parent run per configuration
(tags: task, seq_len, model, regularization, clipping, config hash); nested runs per trial
(``role=trial``) and per final seed (``role=final``). Metrics are ``namespace/name`` with the
global step, logged in batches with ``MlflowClient.log_batch`` (one call per 1,000 points);
tables (gradient profiles, spectra, ...) go to CSV artifacts, and so does every training
step (``STEPS_TABLE``), whose curves are metrics only thinned.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

for _noisy in ("mlflow", "alembic"):  # table creation and migrations are not news to a user
    logging.getLogger(_noisy).setLevel(logging.WARNING)

# MLflow's own HTTP retries (7, backoff factor 2) can hang a worker for minutes without a word;
# the tracker retries itself, with a bounded budget, and then fails with a clear message.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

RETRY_S = float(os.environ.get("GRADBENCH_TRACKING_RETRY_S", "60"))
TRANSIENT = ("ConnectionError", "Connection refused", "Max retries", "timed out",
             "Temporary failure", "TEMPORARILY_UNAVAILABLE", "502", "503", "504",
             "database is locked", "RemoteDisconnected", "Connection aborted")
BATCH = 1000  # MLflow accepts at most 1,000 metrics per log_batch call
PARAM_BATCH = 100  # and 100 params
MetricPoint = tuple[str, float, int]  # (key, value, step)
STEPS_TABLE = "curves.csv"  # a run's every step: step, train_loss, grad_norm, clipped


def default_tracking_uri(run_dir: Path) -> str:
    """The embedded store: a SQLite database in the suite's run directory."""
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def artifact_root(run_dir: Path) -> str:
    return (run_dir / "artifacts").resolve().as_uri()


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "postgresql", "mysql")) or "://" not in uri


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable through every retry."""


def _transient(err: BaseException) -> bool:
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(err).__name__}: {err}"
    return any(marker in text for marker in TRANSIENT)


class _RetryingClient:
    """``MlflowClient`` whose calls retry transient failures with exponential backoff."""

    def __init__(self, client: MlflowClient, uri: str, retry_s: float) -> None:
        self._client, self._uri, self._retry_s = client, uri, retry_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            deadline, delay, attempts = time.monotonic() + self._retry_s, 0.5, 0
            while True:
                attempts += 1
                try:
                    return method(*args, **kwargs)
                except Exception as err:
                    if not _transient(err):
                        raise
                    if time.monotonic() + delay > deadline:
                        raise TrackingUnavailable(
                            f"tracking store {mask_url(self._uri)} unreachable: {name} failed "
                            f"{attempts} times over {self._retry_s:.0f} s; last error: "
                            f"{_first_line(err)}") from err
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)

        return call


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return mask_url(text[0] if text else type(err).__name__)[:300]


def mask_url(text: str) -> str:
    """Hide passwords in URLs (``scheme://user:secret@host`` -> ``scheme://user:***@host``)."""
    from bench.config import mask_secrets

    return mask_secrets(text)


class Tracker:
    """MLflow runs of one suite. Cheap to create; one per process.

    Every call to the store retries transient failures (server down, connection refused,
    database locked) with exponential backoff for up to ``retry_s`` seconds (default 60,
    ``GRADBENCH_TRACKING_RETRY_S``), then raises ``TrackingUnavailable``.
    """

    def __init__(self, uri: str, experiment: str, *, run_dir: Path | None = None,
                 retry_s: float | None = None) -> None:
        self.uri = uri
        self.client = _RetryingClient(MlflowClient(tracking_uri=uri), uri,
                                      RETRY_S if retry_s is None else retry_s)
        self.experiment_name = experiment
        self._artifacts = artifact_root(run_dir) if run_dir and _is_local(uri) else None
        self._experiment_id: str | None = None

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
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string,
                                           max_results=min(max_results, 1000), page_token=token)
            runs.extend(page)
            token = page.token
            if not token or len(runs) >= max_results:
                return runs

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
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """``status``: FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status=status)

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
                metrics: Sequence[MetricPoint], files: Mapping[str, str]) -> None:
        """Everything a finished run records, in as few calls as MLflow allows.

        Params, tags and the first metrics share one ``log_batch`` (at most 1,000 entities,
        100 params, 100 tags); the other metrics follow 1,000 at a time; ``files`` (artifact
        path -> text) are written to a temporary folder and uploaded with one call.
        """
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        labels = [RunTag(k, str(v)) for k, v in tags.items()]
        now = int(time.time() * 1000)
        points = [Metric(k, float(v), now, int(st)) for k, v, st in metrics if math.isfinite(v)]
        room = max(0, BATCH - min(len(items), PARAM_BATCH) - min(len(labels), PARAM_BATCH))
        self.client.log_batch(run_id, metrics=points[:room], params=items[:PARAM_BATCH],
                              tags=labels[:PARAM_BATCH], synchronous=True)
        for i in range(PARAM_BATCH, max(len(items), len(labels)), PARAM_BATCH):
            self.client.log_batch(run_id, params=items[i : i + PARAM_BATCH],
                                  tags=labels[i : i + PARAM_BATCH], synchronous=True)
        for i in range(room, len(points), BATCH):
            self.client.log_batch(run_id, metrics=points[i : i + BATCH], synchronous=True)
        if files:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="gradbench-artifacts-") as tmp:
                for path, text in files.items():
                    target = Path(tmp, path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
                self.client.log_artifacts(run_id, tmp)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def load_table(self, run_id: str, path: str) -> list[dict[str, str]]:
        """Read back a CSV artifact written by ``log_table``."""
        return list(csv.DictReader(io.StringIO(_load_text(self.client, run_id, path))))


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """A tidy table as CSV text (columns from the first row)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _load_text(client: MlflowClient, run_id: str, path: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_text()


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
        "argv": mask_url(" ".join(sys.argv)),
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
