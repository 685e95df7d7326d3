"""A task of your own: remember the sign of the first input.

Input (T, 1): the first step is +1 or -1, every later step noise from U[-1, 1]. Output: the
sign of the first step, predicted at the last step (two classes, cross-entropy). A model
must carry one bit across T - 1 noisy steps. Predicting either class for everything scores
ln 2 (the baseline); solved: test accuracy >= 0.99.

Worked example (T = 5):

    x  -1.00  0.31 -0.72  0.05  0.88       -> class 0 (the first step is negative)

Use it from a config in the directory that holds this file:

    tasks:
      my_tasks:FIRST_SIGN: {seq_len: [20, 50]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from bench.registry import TaskInfo
from tasks.synthetic import SyntheticTask, synthetic_params


def make_batch(
    batch_size: int, seq_len: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, 1) and y (B,) class indices: 1 where the first step is +1."""
    noise = torch.rand(batch_size, seq_len, 1, generator=generator, device=device) * 2 - 1
    label = torch.randint(0, 2, (batch_size,), generator=generator, device=device)
    noise[:, 0, 0] = label.float() * 2 - 1
    return noise, label


class FirstSignTask(SyntheticTask):
    name = "first-sign"
    input_size = 1
    output_size = 2
    per_step = False
    metric = "acc"
    direction = "maximize"

    @property
    def baseline(self) -> float:
        return math.log(2.0)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)  # output (B, 2) logits at the last step

    def trivial_output(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 2, device=self.device)  # both classes equally likely

    def evaluate(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        acc = float((output.argmax(-1) == target).float().mean())
        return {"loss": float(self.loss(output.float(), target)), "acc": acc}

    def solved(self, metrics: Mapping[str, float]) -> bool:
        return metrics["acc"] >= 0.99


def build(params: Mapping[str, Any], *, seed: int, device: torch.device) -> FirstSignTask:
    return FirstSignTask(make_batch, FIRST_SIGN.resolve(params), seed=seed, device=device)


FIRST_SIGN = TaskInfo(
    name="first-sign", build=build, params=synthetic_params(default_seq_len=20),
    min_seq_len=2, metric="acc", direction="maximize", metric_range=(0.0, 1.0),
    solved="test accuracy >= 0.99", baseline="either class: cross-entropy ln 2",
    read_at="The class is predicted at the last step from the sign of the first.",
    description="the sign of the first of T noisy inputs, predicted at the last step",
)
