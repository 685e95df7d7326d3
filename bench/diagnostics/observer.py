"""``GradientDiagnostics``: the one entry point the training loop calls.

It implements the ``StepObserver`` protocol of ``bench.train``:

- ``on_step(step, model)``, after backward and before clipping: at scheduled steps (step 0 =
  initialisation included) it records the group norms of the raw training gradient and probes
  the model on the fixed probe batch;
- ``on_end(steps_done, model, result)``, once after the last update: a final probe, and the
  summary of the cheap per-step quantities the loop recorded (``result.grad_norm``,
  ``result.clipped``). It returns the ``Diagnostics`` that ``train`` stores in
  ``TrainResult.diagnostics``.

The probe batch is drawn once from the task's training distribution with its own seed stream
(``tasks.stream_seed(seed, "probe")``) and a dedicated generator, so the global random state
and the training stream are untouched; probes use ``torch.autograd.grad``, never
``.backward()``. Training is therefore bit-identical with and without the observer.

Example:
    >>> obs = GradientDiagnostics(task, every(100), probe_size=32)  # doctest: +SKIP
    >>> result = train(cfg, task, model, observer=obs)  # doctest: +SKIP
    >>> result.diagnostics.summaries[0].log10_ratio  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from bench.diagnostics.grad_norms import group_grad_norms
from bench.diagnostics.probing import probe
from bench.diagnostics.records import Diagnostics, GroupRow
from bench.diagnostics.schedules import DEFAULT_SCHEDULE, Schedule
from bench.diagnostics.steps import summarize_steps
from bench.models import RecurrentModel
from tasks import Task, make_generator, stream_seed

if TYPE_CHECKING:
    from bench.train import TrainResult

DEFAULT_PROBE_SIZE = 32


class GradientDiagnostics:
    """Gradient diagnostics of one training run (use a fresh instance per run).

    Args:
        task: the task trained on; supplies the probe batch and the loss.
        schedule: ``step -> bool``, when to probe during training (default: step 0, then
            every 100 steps). A final probe always follows the last update.
        probe_size: examples in the fixed probe batch.
        seed: base seed of the probe batch's stream.
    """

    def __init__(
        self,
        task: Task,
        schedule: Schedule = DEFAULT_SCHEDULE,
        *,
        probe_size: int = DEFAULT_PROBE_SIZE,
        seed: int = 0,
    ) -> None:
        if probe_size < 1:
            raise ValueError(f"probe_size must be >= 1, got {probe_size}")
        self.task = task
        self.schedule = schedule
        self.probe_size = probe_size
        self.seed = seed
        self.diagnostics = Diagnostics()
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def probe_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed probe batch ``(x, y)``, drawn on first use from its own stream."""
        if self._batch is None:
            generator = make_generator(stream_seed(self.seed, "probe"), device)
            self._batch = self.task.train_batch(self.probe_size, generator)
        return self._batch

    def probe(self, step: int, model: RecurrentModel) -> None:
        """Probe ``model`` now and add the rows, tagged ``step``."""
        x, y = self.probe_batch(next(model.parameters()).device)
        memory = getattr(self.task, "memory_loss", None)  # copy: the recall's loss alone
        self.diagnostics.extend(probe(model, self.task.loss, x, y, step=step,
                                      memory_loss=memory))

    def on_step(self, step: int, model: RecurrentModel) -> None:
        """At scheduled steps: the raw training gradient's group norms, then a probe."""
        if not self.schedule(step):
            return
        norms = group_grad_norms((name, p.grad) for name, p in model.named_parameters())
        self.diagnostics.groups.extend(GroupRow(step, g, v, "train") for g, v in norms.items())
        self.probe(step, model)

    def on_end(
        self, step: int, model: RecurrentModel, result: TrainResult | None = None
    ) -> Diagnostics:
        """Final probe after the last update; summary of the loop's per-step records."""
        self.probe(step, model)
        if result is not None:
            self.diagnostics.steps = summarize_steps(result.grad_norm, result.clipped)
        return self.diagnostics
