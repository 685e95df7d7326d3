"""The sections of a suite: training, tuning, final seeds, diagnostics, the model's size,
and the tasks with their parameters (checked by each task's record)."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.checks import (
    BOOLEAN,
    Invalid,
    KeyPath,
    Rule,
    at_least,
    choice,
    integer,
    known_keys,
    mapping,
    number,
    unique,
)
from bench.config.fields import LENIENT, checked, lookup, registry_name
from bench.registry import TASKS

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SAMPLERS = ("tpe", "random", "grid")  # grid: each point of the ranges' `grid` once
PRUNERS = ("median", "halving", "hyperband", "none")
OBJECTIVES = ("val_loss", "val_metric")  # what tuning optimises (the metric: the task's)
TASK_STEPS = "steps"  # tasks.<name>.steps: that task's budget, overriding training.steps
MODEL_KEYS = ("param_budget", "hidden_size")
DEFAULT_TASKS = ("adding", "copy", "har")
# A run whose final validation loss ends above this many times the trivial predictor's has
# diverged (docs/protocol.md: a run that does not learn stays near 1x, a blown-up one ends far
# above; 10x is an order of magnitude worse than predicting the mean).
DIVERGE_FACTOR = 10.0


def _factor(path: KeyPath, value: Any) -> float:
    factor = number(path, value, 1.0)
    if math.isnan(factor):
        raise Invalid(path, f"expected a number >= 1, got {value}")
    return factor


@dataclass(frozen=True)
class TrainingSpec:
    """The training budget of one trial."""

    steps: int = checked(1000, at_least(1), "optimizer steps of every run (a task's own "
                         "`steps` replaces it; `--steps` sets both)")
    batch_size: int = checked(64, at_least(1), "examples per optimizer step")
    eval_every: int = checked(50, at_least(1), "steps between validation (and pruning) checks")
    optimizer: str = checked("adam", choice(OPTIMIZERS), "the optimizer")
    warmup_steps: int = checked(0, at_least(0), "linear learning-rate warm-up; 0: none")
    stop_when_solved: bool = checked(False, BOOLEAN, "end a tuning trial once its validation "
                                     "metrics stayed solved for 2 evaluations (final seeds "
                                     "train the whole budget)")
    diverge_factor: float = checked(DIVERGE_FACTOR, Rule("number >= 1 (.inf: non-finite "
                                    "losses only)", _factor), "a run whose final validation "
                                    "loss ends above this many times the trivial predictor's "
                                    "has diverged")


@dataclass(frozen=True)
class TuningSpec:
    """The Optuna budget: the same for every configuration."""

    trials: int = checked(8, at_least(1), "trials per configuration")
    sampler: str = checked("tpe", choice(SAMPLERS), "Optuna's sampler (seeded); grid: "
                           "every point of the search ranges' `grid` once (trials: their "
                           "number)")
    pruner: str = checked("median", choice(PRUNERS), "stops poor trials early on the "
                          "objective: median, successive halving, hyperband, or none")
    objective: str = checked("val_loss", choice(OBJECTIVES), "what tuning optimises: the "
                             "validation loss, or the task's metric (val_metric)")
    horizon: bool = checked(False, BOOLEAN, "a T sweep that stops where nothing solves: each "
                            "T waits for the next shorter one and is left out when none of "
                            "its final seeds solved that on validation")


@dataclass(frozen=True)
class FinalSpec:
    """Re-training of the best parameters with fresh seeds, evaluated on the test set."""

    seeds: int = checked(3, at_least(1), "fresh seeds that re-train the best parameters, "
                         "scored on the test set")


@dataclass(frozen=True)
class DiagnosticsSpec:
    """Schedule of the gradient diagnostics."""

    probe_every: int = checked(100, at_least(1), "steps between probe-batch diagnostics")


@dataclass(frozen=True)
class ModelSpec:
    """Model size: a parameter budget shared by all models (fair), or a fixed hidden size."""

    param_budget: int | None = checked(10000, at_least(1), "trainable parameters of every "
                                       "model; each model's hidden size follows from it")
    hidden_size: int | None = checked(None, at_least(1), "a fixed hidden size instead of a "
                                      "parameter budget")

    def to_dict(self) -> dict[str, int]:
        """The one key that is set, as in the YAML."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def size(self, params: Mapping[str, Any]) -> dict[str, int]:
        """``build_model``'s size argument: a tuned size in ``params`` wins over the config's."""
        for key in ("hidden_size", "param_budget"):
            if key in params:
                return {key: int(params[key])}
        if self.hidden_size is not None:
            return {"hidden_size": self.hidden_size}
        return {"param_budget": int(self.param_budget or 10_000)}


def _model(path: KeyPath, value: Any) -> ModelSpec:
    data = mapping(path, value)
    known_keys(path, data, MODEL_KEYS)
    if len(data) != 1:
        raise Invalid(path, f"give exactly one of {' or '.join(MODEL_KEYS)}")
    ((key, item),) = data.items()
    sizes: dict[str, int | None] = dict.fromkeys(MODEL_KEYS)
    sizes[key] = _SIZE_CHECKS[key](path + (key,), item)
    return ModelSpec(**sizes)


_SIZE_CHECKS = {f.name: f.metadata["check"] for f in dataclasses.fields(ModelSpec)}


check_model = Rule(f"mapping: one of {' or '.join(MODEL_KEYS)}", _model)


def _task_params(path: KeyPath, name: Any, value: Any) -> dict[str, Any]:
    """A task's parameters, checked by its record; the shown defaults filled in."""
    info = lookup(path, name, TASKS.get)
    data = mapping(path, value)
    if info is None:  # lenient loading, the plugin is not importable here
        return dict(data)
    given = {}
    for key, item in data.items():
        if key == TASK_STEPS:
            given[key] = integer(path + (key,), item, 1)
            continue
        try:
            given[key] = info.check_param(str(key), item)
        except KeyError:
            raise Invalid(path + (str(key),), f"unknown key; valid keys: "
                          f"{', '.join([*info.params, TASK_STEPS])}") from None
        except ValueError as err:
            raise Invalid(path + (str(key),), str(err)) from None
    return {**copy.deepcopy(info.shown_defaults()), **given}


def _tasks(path: KeyPath, value: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    data = mapping(path, value)
    if not data:
        raise Invalid(path, f"name at least one task, e.g. {', '.join(DEFAULT_TASKS)}")
    out = tuple((str(k), _task_params(path + (str(k),), k, v)) for k, v in data.items())
    if not LENIENT.get():
        unique(path, [registry_name("tasks", name) for name, _ in out])
    return out


check_tasks = Rule("mapping: task name -> its parameters", _tasks)


def default_tasks() -> tuple[tuple[str, dict[str, Any]], ...]:
    """The default grid's tasks, each with the parameters its record shows."""
    return tuple((name, copy.deepcopy(TASKS.get(name).shown_defaults()))
                 for name in DEFAULT_TASKS)


# Keys added after suites were run: shown (and hashed) only when set to something else than
# their default, so that the config hash of a suite that does not use them is unchanged.
NEW_KEYS = ("warmup_steps", "stop_when_solved", "diverge_factor", "objective", "horizon")


def without_defaults(section: Any, keys: Sequence[str]) -> dict[str, Any]:
    """A section as a dict, leaving out those of ``keys`` that are at their default."""
    data = dataclasses.asdict(section)
    defaults = {f.name: f.default for f in dataclasses.fields(section)}
    return {k: v for k, v in data.items() if k not in keys or v != defaults[k]}
