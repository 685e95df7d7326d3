"""The adding problem (the Arjovsky, Shah & Bengio 2016 variant).

Input (T, 2): channel 0 holds values drawn from U[0, 1]; channel 1 is a marker with
exactly two ones, one uniformly in the first half ``[0, T//2)`` and one uniformly in
the second half ``[T//2, T)``. The target is the sum of the two marked values, read
from a single output at the last step. Predicting the constant 1 gives an MSE of
1/6 (the variance of a sum of two U[0, 1]); the task is solved at test MSE < 0.01.

Worked example (T = 6):

    values  0.31 0.90 0.12 0.55 0.78 0.04
    marker  0    1    0    0    1    0        -> target 0.90 + 0.78 = 1.68
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from bench.registry import TaskInfo
from tasks.synthetic import SyntheticTask, synthetic_params

BASELINE_MSE = 1.0 / 6.0
SOLVED_MSE = 0.01


def make_batch(
    batch_size: int, seq_len: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the adding problem: x (B, T, 2) and y (B, 1), built on ``device``."""
    half = seq_len // 2
    values = torch.rand(batch_size, seq_len, generator=generator, device=device)  # (B, T)
    first = torch.randint(0, half, (batch_size,), generator=generator, device=device)
    second = torch.randint(half, seq_len, (batch_size,), generator=generator, device=device)
    marker = torch.zeros(batch_size, seq_len, device=device)
    rows = torch.arange(batch_size, device=device)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = torch.stack([values, marker], dim=-1)  # (B, T, 2)
    y = (values[rows, first] + values[rows, second]).unsqueeze(1)  # (B, 1)
    return x, y


class AddingTask(SyntheticTask):
    name = "adding"
    input_size = 2
    output_size = 1
    per_step = False
    metric = "mse"
    direction = "minimize"

    @property
    def baseline(self) -> float:
        return BASELINE_MSE

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(output, target)

    def trivial_output(self, n: int) -> torch.Tensor:
        return torch.ones(n, 1, device=self.device)  # predict 1: MSE 1/6 in expectation

    def evaluate(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        mse = float(torch.nn.functional.mse_loss(output.float(), target))
        return {"loss": mse, "mse": mse}

    def solved(self, metrics: Mapping[str, float]) -> bool:
        return metrics["mse"] < SOLVED_MSE


def build(params: Mapping[str, Any], *, seed: int, device: torch.device) -> AddingTask:
    """The adding task from its config parameters (``seq_len`` >= 2), checked by ``TASK``."""
    return AddingTask(make_batch, TASK.resolve(params), seed=seed, device=device)


TASK = TaskInfo(
    name="adding", rank=0, build=build, params=synthetic_params(default_seq_len=100),
    min_seq_len=2, metric="mse", direction="minimize", metric_range=(0.0, math.inf),
    solved=f"test MSE < {SOLVED_MSE}", baseline="predict 1: MSE 1/6",
    read_at="The loss is read at the last step, so the gradient flows from right to left.",
    description="the sum of the two marked values of a (T, 2) sequence, read at the last step",
)
