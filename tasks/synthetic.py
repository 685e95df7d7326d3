"""Shared plumbing of the synthetic tasks: parameters, seeded streams, fixed evaluation sets.

A synthetic task supplies ``make_batch(batch_size, seq_len, generator, device) -> (x, y)``
and subclasses ``SyntheticTask`` for its loss, metrics and baseline; its module declares a
``TASK`` record whose parameters are ``synthetic_params(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from bench.registry import TaskParam, integer
from tasks import make_generator, pinned, stream_seed

HELPER = True  # shared code, no task: the registry's scan skips it (bench.registry)

BatchFn = Callable[[int, int, torch.Generator, torch.device], tuple[torch.Tensor, torch.Tensor]]


def synthetic_params(*, default_seq_len: int) -> dict[str, TaskParam]:
    """The parameter schema of a synthetic task: the swept ``seq_len`` and the sizes of the
    fixed validation and test sets."""
    return {
        "seq_len": TaskParam([default_seq_len], integer(), "T, one or a list to sweep",
                             shown=True),
        "val_size": TaskParam(1000, integer(1), "examples in the fixed validation set"),
        "test_size": TaskParam(2000, integer(1), "examples in the fixed test set"),
    }


class SyntheticTask:
    """Generated on the fly from a seeded generator; val and test sets fixed per seed."""

    name = ""
    input_size = 0
    output_size = 0
    per_step = False
    metric = ""
    direction = "minimize"

    def __init__(
        self, make_batch: BatchFn, params: Mapping[str, int], *, seed: int, device: torch.device
    ) -> None:
        self.seq_len = int(params["seq_len"])
        self.device = device
        self.seed = seed
        self._make_batch = make_batch
        self._sizes = {"val": int(params["val_size"]), "test": int(params["test_size"])}
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def train_generator(self, seed: int) -> torch.Generator:
        return make_generator(stream_seed(seed, "train"), self.device)

    def train_batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._make_batch(batch_size, self.seq_len, generator, self.device)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._sizes:
            raise ValueError(f"unknown split {name!r}; valid: val, test")
        if name not in self._splits:  # built lazily, once, from the task's own seed
            gen = make_generator(stream_seed(self.seed, name), self.device)
            self._splits[name] = self._make_batch(self._sizes[name], self.seq_len, gen, self.device)
        return self._splits[name]

    def describe(self) -> dict[str, Any]:
        return {
            **pinned(self),
            "val_size": self._sizes["val"],
            "test_size": self._sizes["test"],
            "data_seed": self.seed,
        }

    @property
    def baseline(self) -> float:
        raise NotImplementedError
