"""A finished run as tracking records: metric points (``namespace/name``, value, step) and params.

Kept apart from ``tracking`` (which only knows MLflow) and ``train`` (which only trains).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.config import Configuration, SuiteSpec
from bench.train import TrainResult
from tasks import Task

# Per-step curves (train/loss, grad/norm) as MLflow metrics are thinned evenly to this many
# points: enough for MLflow's charts, and a metric point costs ~0.1 ms to record, a run's
# largest tracking cost. Every step is kept in the run's ``tracking.STEPS_TABLE`` artifact.
MAX_CURVE_POINTS = 200
MetricPoint = tuple[str, float, int]


def curve(key: str, values: list[float], max_points: int = MAX_CURVE_POINTS) -> list[MetricPoint]:
    """A per-step series (steps from 1) as metric points, thinned evenly; the last kept."""
    stride = max(1, math.ceil(len(values) / max_points))
    points = [(key, v, i + 1) for i, v in enumerate(values) if i % stride == 0]
    if values and (len(values) - 1) % stride:  # always keep the last step
        points.append((key, values[-1], len(values)))
    return points


def result_metrics(result: TrainResult, task: Task) -> list[MetricPoint]:
    """Every metric of a run with its global step (steps count from 1; 0 = initialisation)."""
    points = curve("train/loss", result.train_loss) + curve("grad/norm", result.grad_norm)
    for row in result.evals:
        step = int(row["step"])
        points += [(f"val/{k}", float(v), step) for k, v in row.items() if k != "step"]
    end = result.steps_done
    points += [(f"test/{k}", float(v), end) for k, v in result.test.items()]
    points += [("grad/clip_rate", result.clip_rate, end),
               ("train/wall_time", result.wall_time, end),
               ("train/steps_done", float(end), end)]
    if result.test:
        points.append(("test/solved", float(result.solved), end))
        points.append(("test/normalized", normalized_score(result.test, task), end))
    if result.diverged_at is not None:
        points.append(("train/diverged_at", float(result.diverged_at), end))
    if result.diagnostics is not None:
        points += diagnostic_metrics(result.diagnostics)
    return points


def step_rows(result: TrainResult) -> list[dict[str, Any]]:
    """Every training step (from 1): task loss, global gradient norm before clipping, and
    whether clipping rescaled it. The ``tracking.STEPS_TABLE`` artifact of a run."""
    return [{"step": i + 1, "train_loss": loss, "grad_norm": norm, "clipped": int(clipped)}
            for i, (loss, norm, clipped) in enumerate(
                zip(result.train_loss, result.grad_norm, result.clipped, strict=True))]


def normalized_score(test: Mapping[str, float], task: Task) -> float:
    """Test loss over the task's baseline loss: 1 = no better than the trivial predictor."""
    return float(test["loss"]) / task.baseline if task.baseline else math.nan


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
                   (f"weights/spectral_radius/{row.block}", row.spectral_radius, row.step)]
        radius[row.step] = max(radius.get(row.step, -math.inf), row.spectral_radius)
    points += [("weights/spectral_radius", value, step) for step, value in radius.items()]
    for row in diagnostics.groups:
        points.append((f"grad/{row.source}/{row.group}", row.norm, row.step))
    for row in diagnostics.saturation:
        points.append((f"act/{row.block}/{row.measure}", row.value, row.step))
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
    return {**params, **fixed}
