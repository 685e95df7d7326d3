"""One run, assembled in one place: the model of a task, its training settings, the loop.

``gradbench train`` (one quick run), the suite's workers (tuning trials and final seeds) and
the examples all build a run here, so that a model is seeded, sized and trained the same
way wherever it runs. Nothing here knows of Optuna or MLflow.

Example:
    >>> import torch
    >>> import tasks
    >>> task = tasks.build("adding", {"seq_len": 10}, seed=0, device=torch.device("cpu"))
    >>> job = Job("lstm", {"hidden_size": 8}, TrainConfig(steps=5, eval_every=5))
    >>> model = build(job, task, torch.device("cpu"))
    >>> result = run_job(job, task, model)
    >>> result.status, model.hidden_size
    ('completed', 8)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from bench.diagnostics import GradientDiagnostics, every
from bench.models import ModelSizes, RecurrentModel, build_model
from bench.registry import remedy
from bench.train import OnEval, TrainConfig, TrainResult, train
from tasks import Task

if TYPE_CHECKING:
    from bench.config import Configuration, SuiteSpec


@dataclass(frozen=True)
class Job:
    """Everything one run depends on besides its task.

    Attributes:
        model: a model name of the registry (or a plugin reference).
        size: ``{"hidden_size": H}`` or ``{"param_budget": N}``.
        train: steps, optimizer, learning rate, remedies and their parameters, seed.
        probe_every: steps between gradient-diagnostics probes; None: no diagnostics.
        data_seed: the suite's seed, which fixes the probe batch (as it fixes the task's
            validation and test sets).
    """

    model: str
    size: Mapping[str, int]
    train: TrainConfig
    probe_every: int | None = None
    data_seed: int = 0


def model_sizes(task: Task) -> ModelSizes:
    """What a model's shape depends on, read from the task."""
    return ModelSizes(task.input_size, task.output_size, task.per_step)


def build(job: Job, task: Task, device: torch.device) -> RecurrentModel:
    """The job's model for ``task``, initialised from the job's seed, on ``device``."""
    torch.manual_seed(job.train.seed)
    return build_model(job.model, model_sizes(task), **dict(job.size)).to(device)


def run_job(
    job: Job, task: Task, model: RecurrentModel, *, on_eval: OnEval | None = None
) -> TrainResult:
    """Train ``model`` (from ``build``) on ``task`` as the job says.

    With ``probe_every`` set, the gradient diagnostics ride along (``result.diagnostics``).
    """
    observer = None
    if job.probe_every is not None:
        observer = GradientDiagnostics(task, every(job.probe_every), seed=job.data_seed)
    return train(job.train, task, model, on_eval=on_eval, observer=observer)


def suite_job(
    spec: SuiteSpec, configuration: Configuration, params: Mapping[str, Any], seed: int,
    *, final: bool = False,
) -> Job:
    """The job of a suite's trial or final seed: the config's budget (the task's ``steps``
    where given) with tuned ``params``; only a ``final`` seed reads the test split.

    ``training.stop_when_solved`` ends tuning trials only: a final seed trains the whole
    budget, so that its test score does not depend on when it stopped (docs/protocol.md)."""
    training = spec.training
    cfg = TrainConfig(
        steps=configuration.budget(spec),
        batch_size=int(params.get("batch_size", training.batch_size)),
        lr=float(params["lr"]), optimizer=training.optimizer, eval_every=training.eval_every,
        regularization=configuration.regularization, clipping=configuration.clipping,
        hparams=remedy_params(configuration, params), seed=seed, test=final,
        warmup_steps=training.warmup_steps,
        stop_when_solved=training.stop_when_solved and not final,
        diverge_factor=training.diverge_factor)
    return Job(configuration.model, spec.model.size(params), cfg,
               probe_every=spec.diagnostics.probe_every, data_seed=spec.seed)


def remedy_params(configuration: Configuration, params: Mapping[str, Any]) -> dict[str, float]:
    """The tuned values the configuration's remedies act with (``{"l2": ..., "clip": ...}``)."""
    found = (remedy(configuration.regularization, "regularization"),
             remedy(configuration.clipping, "clipping"))
    return {name: float(params[name]) for r in found if r is not None for name in r.search}
