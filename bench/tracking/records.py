"""What a run records, as plain values: no MLflow type is made or read here.

A finished run becomes metric points (``result_metrics``: ``(key, value, step)``, the
per-step curves thinned by ``curve``), its every step as a table (``step_rows``, the
``STEPS_TABLE`` artifact), params (``run_params``) and provenance tags; ``RunRecords``
holds all of it for the writer and the spool. A run read back is a ``RunRecord``. The names
of the metrics and artifacts are ``bench.names``'.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import mask_secrets
from bench.names import (
    BASELINE,
    FACTOR_NAMES,
    FACTORS,
    GIT_COMMIT_TAG,
    GRAD_NORM,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    SPECTRAL_RADIUS,
    STEPS_TO_SOLVE,
    TEST_NORMALIZED,
    TRAIN_LOSS,
    UNCAPPED,
    metric_key,
)
from bench.outcomes import Outcome

if TYPE_CHECKING:  # annotations only: the loop's types would load torch here
    from bench.config import Configuration, SuiteSpec
    from bench.train import TrainResult
    from tasks import Task

MetricPoint = tuple[str, float, int]  # (key, value, step)

# Per-step curves (train/loss, grad/norm) as MLflow metrics are thinned evenly to this many
# points: enough for MLflow's charts, and a metric point costs ~0.1 ms to record, a run's
# largest tracking cost. Every step is kept in the run's ``STEPS_TABLE`` artifact.
MAX_CURVE_POINTS = 200


# ------------------------------------------------------------------------------ metrics


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
    points += [(metric_key(UNCAPPED, f"test_{k}"), float(v), end)
               for k, v in result.test_uncapped.items()]
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
        points += [(f"{FACTORS}/{name}", float(getattr(row, name)), row.step)
                   for name in FACTOR_NAMES]
    steps = diagnostics.steps
    if steps is not None:
        points.append(("grad/nonfinite_steps", float(steps.n_nonfinite), steps.steps))
    return points


def run_description(result: TrainResult, task: Task, *, configuration: str, final: bool,
                    seed: int, number: int) -> str:
    """A trial's or final seed's description on its MLflow run page (``DESCRIPTION_TAG``):
    what it is, how it ended and its score (final seeds: the test metric; trials: the last
    validation one)."""
    what = f"Final seed {seed}" if final else f"Trial {number} (seed {seed})"
    outcome = str(Outcome.of(result))
    if result.diverged_at is not None:
        outcome += f" at step {result.diverged_at}"
    scores = result.test if final else (result.evals[-1] if result.evals else {})
    split = "test" if final else "val"
    score = scores.get(task.metric)
    line = f"{what} of `{configuration}`: {outcome} after {result.steps_done} steps"
    if score is not None:
        line += f"; {split} {task.metric} = {float(score):.4g}"
    if final and result.test:
        line += " (solved)" if result.solved else " (not solved)"
    return line + "."


# ------------------------------------------------------------------------------ params, tags


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


def provenance() -> dict[str, str]:
    """Where and with what a run was made: versions, machine, git commit, command line;
    the commit and the command also as MLflow's own source tags, which fill its runs
    table's Source column and link the run to its commit."""
    # the program and its command (``gradbench run``): MLflow shows the last path part
    words = [Path(sys.argv[0]).name, *sys.argv[1:2]]
    # (a worker of pytest-xdist or ``python -c`` has no program name: call it gradbench)
    command = " ".join(w for w in words if "/" not in w and not w.startswith("-")) or "gradbench"
    commit = _git_commit()
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.node(),
        "cpu_count": str(os.cpu_count()),
        "argv": mask_secrets(" ".join(sys.argv)),
        "git_commit": commit,
        SOURCE_NAME_TAG: command,
        SOURCE_TYPE_TAG: "LOCAL",
    }
    if commit != "unknown":
        info[GIT_COMMIT_TAG] = commit
    for package in ("torch", "numpy", "optuna", "mlflow", "pandas", "rnn-gradbench"):
        try:
            info[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[f"version.{package}"] = "not installed"
    return info


def _git_commit() -> str:
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def best_points(tags: Mapping[str, Any], number: int) -> list[MetricPoint]:
    """A configuration's best trial (its ``best.<name>`` tags) as ``best/<name>`` metrics:
    where MLflow's runs table and charts compare them. Metrics, not params: params are
    immutable, and a resume with more trials can find a better one; each best is a point at
    its trial's ``number`` (a later best has a larger one, so it is the latest value)."""
    return [(f"best/{key.removeprefix('best.')}", float(value), number)
            for key, value in tags.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)]


def runs_view(metrics: Sequence[str], objectives: Sequence[str]) -> str:
    """The runs table's view for a suite's experiment (``RUNS_VIEW_TAG``), as the JSON
    MLflow's UI reads: columns for what a configuration is (task, model, remedies), the
    seeds' summary and each final seed's test score in the tasks' ``metrics``, and the best
    trial's validation score (``objectives``: the keys ``best/val_<objective>``)."""
    columns = [f"tags.`{tag}`" for tag in ("task", "seq_len", "model", "regularization",
                                           "clipping", "state")]
    for metric in dict.fromkeys(metrics):
        columns += [f"metrics.`final/{metric}_mean`", f"metrics.`final/{metric}_std`",
                    f"metrics.`test/{metric}`"]
    columns += ["metrics.`final/solved_rate`", "metrics.`final/diverged_rate`",
                *(f"metrics.`best/val_{key}`" for key in dict.fromkeys(objectives))]
    return json.dumps({"selectedColumns": columns})


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """A tidy table as CSV text (columns from the first row)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ runs


@dataclass
class RunRecords:
    """What a finished run records, as plain values: its params, tags, metric points, files
    (artifact path -> text, or bytes: a figure) and final status (``Tracker.write``).

    In JSON (the spool) a file's bytes are ``{"base64": ...}``; spools written before
    figures existed hold text only and read as before."""

    run_id: str
    params: dict[str, Any]
    tags: dict[str, Any]
    metrics: list[MetricPoint]
    files: dict[str, str | bytes]
    status: str

    def to_json(self) -> str:
        files = {path: {"base64": base64.b64encode(body).decode("ascii")}
                 if isinstance(body, bytes) else body for path, body in self.files.items()}
        return json.dumps({"run_id": self.run_id, "params": self.params, "tags": self.tags,
                           "metrics": self.metrics, "files": files,
                           "status": self.status}, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunRecords:
        data = json.loads(text)
        files = {str(path): base64.b64decode(body["base64"], validate=True)
                 if isinstance(body, dict) else str(body)
                 for path, body in data["files"].items()}
        return cls(str(data["run_id"]), dict(data["params"]), dict(data["tags"]),
                   [(str(k), float(v), int(st)) for k, v, st in data["metrics"]],
                   files, str(data["status"]))


@dataclass(frozen=True)
class RunRecord:
    """One run as read back (``RunReader``): plain values, no MLflow types.

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
