"""The copy-memory task (Arjovsky, Shah & Bengio 2016).

Alphabet of 10 symbols: 0 = blank, 1..8 = data, 9 = delimiter. With delay T the input
has T + 20 steps: 10 random data symbols, T - 1 blanks, the delimiter, 10 blanks
(one-hot, 10 channels). The target is T + 10 blanks followed by the 10 data symbols.
The loss is the mean cross-entropy over all T + 20 steps. A memoryless model that
emits blanks and then guesses uniformly among the 8 data symbols scores
10 ln 8 / (T + 20) (0.1733 at T = 100): the baseline. Also reported: the accuracy on
the 10 recalled symbols; solved at recall accuracy >= 0.99.

Worked example (T = 3, so 23 steps):

    input   5 2 7 7 1 3 8 8 2 4 0 0 9 0 0 0 0 0 0 0 0 0 0
    target  0 0 0 0 0 0 0 0 0 0 0 0 0 5 2 7 7 1 3 8 8 2 4
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from bench.registry import TaskInfo
from tasks.synthetic import SyntheticTask, synthetic_params

N_SYMBOLS = 10
N_DATA = 8  # data symbols are 1..8
MEMORY = 10  # number of symbols to remember
BLANK, DELIMITER = 0, 9
SOLVED_ACC = 0.99


def baseline_loss(seq_len: int) -> float:
    """Cross-entropy of the memoryless strategy: 10 ln 8 / (T + 20)."""
    return MEMORY * math.log(N_DATA) / (seq_len + 2 * MEMORY)


def make_batch(
    batch_size: int, seq_len: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy batch: x (B, T+20, 10) one-hot and y (B, T+20) symbol indices."""
    length = seq_len + 2 * MEMORY
    data = torch.randint(1, N_DATA + 1, (batch_size, MEMORY), generator=generator, device=device)
    symbols = torch.full((batch_size, length), BLANK, dtype=torch.long, device=device)
    symbols[:, :MEMORY] = data
    symbols[:, MEMORY + seq_len - 1] = DELIMITER
    target = torch.full((batch_size, length), BLANK, dtype=torch.long, device=device)
    target[:, -MEMORY:] = data
    x = torch.nn.functional.one_hot(symbols, N_SYMBOLS).float()  # (B, T+20, 10)
    return x, target


class CopyTask(SyntheticTask):
    name = "copy"
    input_size = N_SYMBOLS
    output_size = N_SYMBOLS
    per_step = True
    metric = "recall_acc"
    direction = "maximize"

    @property
    def baseline(self) -> float:
        return baseline_loss(self.seq_len)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # output (B, T+20, 10) logits, target (B, T+20)
        return torch.nn.functional.cross_entropy(output.flatten(0, 1), target.flatten())

    def trivial_output(self, n: int) -> torch.Tensor:
        """Logits of the memoryless strategy: a blank for the first T + 10 steps, then the 8
        data symbols equally likely (its recall, argmax picking the first, is about 1/8)."""
        length = self.seq_len + 2 * MEMORY
        logits = torch.full((n, length, N_SYMBOLS), -1e4, device=self.device)
        logits[:, :-MEMORY, BLANK] = 0.0
        logits[:, -MEMORY:, 1 : N_DATA + 1] = 0.0
        return logits

    def memory_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The recall's cross-entropy alone (the last 10 steps): the part of the loss that
        needs the long memory; the blanks of the other T + 10 steps need none."""
        return torch.nn.functional.cross_entropy(output[:, -MEMORY:].flatten(0, 1),
                                                 target[:, -MEMORY:].flatten())

    def evaluate(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        loss = float(self.loss(output.float(), target))
        recalled = output[:, -MEMORY:].argmax(-1) == target[:, -MEMORY:]
        return {"loss": loss, "recall_acc": float(recalled.float().mean())}

    def solved(self, metrics: Mapping[str, float]) -> bool:
        return metrics["recall_acc"] >= SOLVED_ACC


def build(params: Mapping[str, Any], *, seed: int, device: torch.device) -> CopyTask:
    """The copy task from its config parameters (``seq_len`` is the delay T >= 1)."""
    return CopyTask(make_batch, TASK.resolve(params), seed=seed, device=device)


TASK = TaskInfo(
    name="copy", rank=1, build=build, params=synthetic_params(default_seq_len=50),
    min_seq_len=1, metric="recall_acc", direction="maximize", metric_range=(0.0, 1.0),
    solved=f"recall accuracy >= {SOLVED_ACC}", baseline="memoryless: 10 ln 8 / (T + 20)",
    read_at="The recall that needs memory happens in the last 10 steps and the symbols to "
            "recall are in the first 10, so the gradient that matters flows from right to left.",
    description="recall 10 symbols after a delay of T blanks (T + 20 steps, one-hot)",
)
