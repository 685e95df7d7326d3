"""Read a suite back from MLflow into tidy pandas frames: the report's only data source.

One ``search_runs`` sweep (pages of 1,000) gives every run of the suite's experiment as one
row of ``Results.runs``: identity from the tags (role, configuration, task, seq_len, model,
regularization, clipping, state, trial_number, seed, ...), the tuned and fixed params, and the
latest value of every metric under its key (``test/mse``, ``val/loss``, ``grad/log10_ratio``,
...). Everything bigger is read on demand, and only for the runs a figure needs:

- ``ResultsSource.histories(run_ids, keys)``: metric histories, long format
  ``(run_id, key, step, value)``;
- ``ResultsSource.steps(run_ids, column, key)``: a per-step series at every step (the
  ``curves.csv`` artifact; the metric of that name is thinned), in the same format;
- ``ResultsSource.tables(run_ids, path)``: a CSV artifact (e.g. ``diagnostics/profiles.csv``)
  of several runs stacked, with a ``run_id`` column.

With this module, ``bench.tracking`` is the only place that imports mlflow.

Example:
    >>> source = ResultsSource("sqlite:///runs/smoke/mlflow.db", "smoke")  # doctest: +SKIP
    >>> results = source.load()  # doctest: +SKIP
    >>> results.runs.query("role == 'final'")[["configuration", "seed", "test/mse"]]  # +SKIP
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import yaml
from mlflow import MlflowClient

from bench.tracking import STEPS_TABLE

PAGE = 1000  # search_runs page size (MLflow's maximum per request)
IDENTITY_TAGS = ("role", "configuration", "task", "model", "regularization", "clipping",
                 "state", "study", "metric", "direction", "solved", "diverged_at", "reason",
                 "suite", "config_hash", "device", "worker")
INT_COLUMNS = ("seq_len", "trial_number", "seed", "n_params", "hidden_size", "steps")
FLOAT_PARAMS = ("lr", "l2", "clip")
PROVENANCE_TAGS = ("git_commit", "python", "platform", "machine", "cpu_count", "argv", "device")
PARENT_RUN_ID = "mlflow.parentRunId"


@dataclass
class Results:
    """A suite as frames.

    Attributes:
        suite: the suite (= MLflow experiment) name.
        runs: one row per run (parents, trials and final seeds), see the module docstring.
        provenance: versions, machine, git commit, argv of the most recent configuration run.
        config: the resolved suite config (``config.yaml`` of a configuration run), or {}.
        config_text: the same as YAML text, for the report's footer.
        tracking_uri: where the runs were read from.
    """

    suite: str
    runs: pd.DataFrame
    provenance: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    tracking_uri: str = ""

    @property
    def parents(self) -> pd.DataFrame:
        return self.runs[self.runs["role"] == "configuration"]

    @property
    def trials(self) -> pd.DataFrame:
        return self.runs[self.runs["role"] == "trial"]

    @property
    def finals(self) -> pd.DataFrame:
        return self.runs[self.runs["role"] == "final"]


class ResultsSource:
    """The runs of one suite in an MLflow tracking store (SQLite, server, ...)."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.uri = tracking_uri
        self.experiment = experiment
        database = tracking_uri.removeprefix("sqlite:///")
        if tracking_uri.startswith("sqlite:///") and not Path(database).exists():
            raise FileNotFoundError(f"no tracking store at {database}")  # don't create one
        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            raise FileNotFoundError(f"no MLflow experiment {experiment!r} at "
                                    f"{_masked(tracking_uri)}; run the suite first")
        self.experiment_id = str(found.experiment_id)
        self._artifact_uri: dict[str, str] = {}

    # ------------------------------------------------------------------ runs

    def search(self) -> list[Any]:
        """Every run of the experiment (all statuses), in pages of 1,000."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], "", max_results=PAGE,
                                           page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def load(self) -> Results:
        """All runs as a frame, plus the provenance and config of the suite."""
        entities = self.search()
        runs = runs_frame(entities)
        self._artifact_uri = dict(zip(runs["run_id"], runs["artifact_uri"], strict=True)) \
            if len(runs) else {}
        results = Results(self.experiment, runs, tracking_uri=_masked(self.uri))
        parents = runs[runs["role"] == "configuration"].sort_values("start_time")
        if len(parents):
            latest = next(e for e in entities if e.info.run_id == parents["run_id"].iloc[-1])
            results.provenance = provenance_of(latest.data.tags)
            text = self.text(latest.info.run_id, "config.yaml")
            if text:
                results.config_text = text
                loaded = yaml.safe_load(text)
                results.config = loaded if isinstance(loaded, dict) else {}
        return results

    # ------------------------------------------------------------------ on demand

    def histories(self, run_ids: Iterable[str], keys: Sequence[str]) -> pd.DataFrame:
        """Metric histories of some runs, long format: run_id, key, step, value."""
        rows = []
        for run_id in dict.fromkeys(run_ids):
            for key in keys:
                for m in self.client.get_metric_history(run_id, key):
                    rows.append((run_id, key, int(m.step), float(m.value)))
        frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])
        return frame.sort_values(["run_id", "key", "step"], ignore_index=True)

    def steps(self, run_ids: Iterable[str], column: str, key: str) -> pd.DataFrame:
        """A per-step series at every step, in the format of ``histories``: ``column`` of
        the runs' ``STEPS_TABLE``, else (runs recorded without one) the metric ``key``."""
        ids = list(dict.fromkeys(run_ids))
        table = self.tables(ids, STEPS_TABLE)
        if column in table:
            table = table[["run_id", "step", column]].rename(columns={column: "value"})
            table.insert(1, "key", key)
        else:
            table = pd.DataFrame(columns=["run_id", "key", "step", "value"])
        found = set(table["run_id"])
        older = self.histories([r for r in ids if r not in found], [key])
        frame = pd.concat([f for f in (table, older) if len(f)] or [older], ignore_index=True)
        frame = frame.astype({"step": int, "value": float})
        return frame.sort_values(["run_id", "key", "step"], ignore_index=True)

    def tables(self, run_ids: Iterable[str], path: str) -> pd.DataFrame:
        """A CSV artifact of several runs stacked, with a ``run_id`` column; runs without it
        are left out."""
        parts = []
        for run_id in dict.fromkeys(run_ids):
            text = self.text(run_id, path)
            if text:
                part = pd.read_csv(io.StringIO(text))
                part.insert(0, "run_id", run_id)
                parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id"])

    def text(self, run_id: str, path: str) -> str | None:
        """An artifact as text, or None when the run has no such artifact."""
        local = _local_dir(self._artifact_uri.get(run_id, ""))
        if local is not None:
            target = local / path
            return target.read_text() if target.is_file() else None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()
            except Exception:  # absent artifact: MlflowException / OSError, by store
                return None


def _local_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file://`` artifact location (read directly: much faster)."""
    if artifact_uri.startswith("file:"):
        return Path(unquote(urlparse(artifact_uri).path))
    if artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def _masked(uri: str) -> str:
    from bench.config import mask_secrets

    return mask_secrets(uri)


# ------------------------------------------------------------------------------ frames


def run_row(run: Any) -> dict[str, Any]:
    """One MLflow run as a flat row (tags, then params, then metrics under their keys)."""
    info, data = run.info, run.data
    tags = data.tags
    row: dict[str, Any] = {
        "run_id": info.run_id, "parent_id": tags.get(PARENT_RUN_ID, ""),
        "status": info.status, "artifact_uri": info.artifact_uri or "",
        "start_time": info.start_time, "end_time": info.end_time,
        "name": tags.get("mlflow.runName", ""),
    }
    for key in IDENTITY_TAGS + ("seq_len", "trial_number", "seed"):
        row[key] = tags.get(key, "")
    for key, value in tags.items():
        if key.startswith("best."):
            row[key] = value
    for key, value in data.params.items():
        row.setdefault(key, value)
    row.update(data.metrics)
    return row


def runs_frame(runs: Sequence[Any]) -> pd.DataFrame:
    """Rows of ``run_row`` as a typed frame: ints, floats, times (s), a derived ``state``."""
    frame = pd.DataFrame([run_row(r) for r in runs])
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "parent_id", "role", "configuration", "task",
                                     "seq_len", "model", "regularization", "clipping", "state",
                                     "status", "start_time", "end_time", "duration_s",
                                     "artifact_uri"])
    for column in INT_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in FLOAT_PARAMS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    now_ms = time.time() * 1000
    start = pd.to_numeric(frame["start_time"], errors="coerce")
    end = pd.to_numeric(frame["end_time"], errors="coerce")
    frame["duration_s"] = (end.fillna(now_ms) - start) / 1000.0
    frame["start_time"] = pd.to_datetime(start, unit="ms", utc=True)
    frame["end_time"] = pd.to_datetime(end, unit="ms", utc=True)
    frame["state"] = [_state(s, st) for s, st in zip(frame["state"], frame["status"], strict=True)]
    frame["solved"] = frame["solved"].map({"True": True, "False": False})
    return frame


def _state(tag: str, status: str) -> str:
    """The run's outcome: the worker's ``state`` tag, else what MLflow's status implies."""
    if tag:
        return str(tag)
    return {"RUNNING": "running", "SCHEDULED": "running", "KILLED": "interrupted",
            "FAILED": "failed"}.get(status, "unknown")


def provenance_of(tags: dict[str, str]) -> dict[str, str]:
    """The provenance tags of a run: versions, machine, git commit, argv."""
    out = {k: tags[k] for k in PROVENANCE_TAGS if k in tags}
    out.update({k: v for k, v in sorted(tags.items()) if k.startswith("version.")})
    return out
