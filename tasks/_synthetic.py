"""Shared plumbing of the synthetic tasks: seeded streams and fixed evaluation sets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from tasks import make_generator, stream_seed

BatchFn = Callable[[int, int, torch.Generator, torch.device], tuple[torch.Tensor, torch.Tensor]]


def parse_params(
    name: str, params: Mapping[str, Any], *, min_seq_len: int
) -> dict[str, int]:
    """Validate a synthetic task's parameters; returns seq_len, val_size, test_size."""
    allowed = {"seq_len", "val_size", "test_size"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"tasks.{name}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"valid keys: {', '.join(sorted(allowed))}"
        )
    out = {"seq_len": params.get("seq_len", 100), "val_size": params.get("val_size", 1000),
           "test_size": params.get("test_size", 2000)}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"tasks.{name}.{key}: expected an integer, got {value!r}")
    if out["seq_len"] < min_seq_len:
        raise ValueError(
            f"tasks.{name}.seq_len: {out['seq_len']} is too small; "
            f"the {name} task needs seq_len >= {min_seq_len}"
        )
    for key in ("val_size", "test_size"):
        if out[key] < 1:
            raise ValueError(f"tasks.{name}.{key}: must be >= 1, got {out[key]}")
    return out


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
            "task": self.name,
            "seq_len": self.seq_len,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "per_step": self.per_step,
            "metric": self.metric,
            "baseline": self.baseline,
            "val_size": self._sizes["val"],
            "test_size": self._sizes["test"],
            "data_seed": self.seed,
        }

    @property
    def baseline(self) -> float:
        raise NotImplementedError
