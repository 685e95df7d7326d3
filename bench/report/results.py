"""Read a suite back from MLflow into tidy pandas frames: the report's only data source.

One ``search_runs`` sweep (pages of 1,000) gives every run of the suite's experiment as one
row of ``Results.runs``: identity from the tags (role, configuration, task, seq_len, model,
regularization, clipping, state, trial_number, seed, ...), the tuned and fixed params, and the
latest value of every metric under its key (``test/mse``, ``val/loss``, ``grad/log10_ratio``,
...). Everything bigger is read on demand, and only for the runs a figure needs:

- ``ResultsSource.histories(run_ids, keys)``: metric histories, long format
  ``(run_id, key, step, value)``;
- ``ResultsSource.steps(run_ids, column, key)``: a per-step series at every step (the
  ``tracking.STEPS_TABLE`` artifact; the metric of that name is thinned), in the same format;
- ``ResultsSource.tables(run_ids, path)``: a CSV artifact (e.g. ``diagnostics/profiles.csv``)
  of several runs stacked, with a ``run_id`` column.

MLflow itself stays behind ``bench.tracking.RunReader`` (the only module that imports mlflow):
this module turns its plain ``RunRecord`` values into frames.

Example:
    >>> source = ResultsSource("sqlite:///runs/smoke/mlflow.db", "smoke")  # doctest: +SKIP
    >>> results = source.load()  # doctest: +SKIP
    >>> results.runs.query("role == 'final'")[["configuration", "seed", "test/mse"]]  # +SKIP
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from bench import tracking
from bench.errors import mask_secrets
from bench.names import CONFIG_FILE, STEPS_TABLE
from bench.registry import REMEDIES
from bench.tracking import RunRecord

IDENTITY_TAGS = ("role", "configuration", "task", "model", "regularization", "clipping",
                 "state", "study", "metric", "direction", "solved", "diverged_at", "reason",
                 "suite", "config_hash", "device", "worker")
INT_COLUMNS = ("seq_len", "trial_number", "seed", "n_params", "hidden_size", "steps")
PROVENANCE_TAGS = ("git_commit", "python", "platform", "machine", "cpu_count", "argv", "device")


def float_params() -> tuple[str, ...]:
    """The tuned float params: the learning rate and every built-in remedy's parameters."""
    return ("lr", *dict.fromkeys(p for r in REMEDIES for p in r.search))


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
    """The runs of one suite in an MLflow tracking store (SQLite, server, ...).

    Raises:
        FileNotFoundError: no such store, or no experiment of that name in it.
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.uri = tracking_uri
        self.experiment = experiment
        self.reader = tracking.RunReader(tracking_uri, experiment)
        self.experiment_id = self.reader.experiment_id

    # ------------------------------------------------------------------ runs

    def search(self) -> list[RunRecord]:
        """Every run of the experiment (all statuses)."""
        return self.reader.runs()

    def load(self) -> Results:
        """All runs as a frame, plus the provenance and config of the suite."""
        records = self.search()
        runs = runs_frame(records)
        results = Results(self.experiment, runs, tracking_uri=mask_secrets(self.uri))
        parents = runs[runs["role"] == "configuration"].sort_values("start_time")
        if len(parents):
            latest = next(r for r in records if r.run_id == parents["run_id"].iloc[-1])
            results.provenance = provenance_of(latest.tags)
            text = self.text(latest.run_id, CONFIG_FILE)
            if text:
                results.config_text = text
                loaded = yaml.safe_load(text)
                results.config = loaded if isinstance(loaded, dict) else {}
        return results

    # ------------------------------------------------------------------ on demand

    def histories(self, run_ids: Iterable[str], keys: Sequence[str]) -> pd.DataFrame:
        """Metric histories of some runs, long format: run_id, key, step, value."""
        rows = [(run_id, key, step, value) for run_id in dict.fromkeys(run_ids) for key in keys
                for step, value in self.reader.metric_history(run_id, key)]
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
        return self.reader.text(run_id, path)


# ------------------------------------------------------------------------------ frames


def run_row(run: RunRecord) -> dict[str, Any]:
    """One run as a flat row (identity tags, then params, then metrics under their keys)."""
    tags = run.tags
    row: dict[str, Any] = {
        "run_id": run.run_id, "parent_id": run.parent_id, "status": run.status,
        "artifact_uri": run.artifact_uri, "start_time": run.start_time,
        "end_time": run.end_time, "name": run.name,
    }
    for key in IDENTITY_TAGS + ("seq_len", "trial_number", "seed"):
        row[key] = tags.get(key, "")
    for key, value in tags.items():
        if key.startswith("best."):
            row[key] = value
    for key, value in run.params.items():
        row.setdefault(key, value)
    row.update(run.metrics)
    return row


def runs_frame(runs: Sequence[RunRecord]) -> pd.DataFrame:
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
    for column in float_params():
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


def provenance_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The provenance tags of a run: versions, machine, git commit, argv."""
    out = {k: tags[k] for k in PROVENANCE_TAGS if k in tags}
    out.update({k: v for k, v in sorted(tags.items()) if k.startswith("version.")})
    return out
