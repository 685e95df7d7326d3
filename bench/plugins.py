"""Checks that a user's task, model or remedy works, run when a config names it.

The registry checks a plugin's record (its type, name and callables). Here it is exercised,
on the CPU and at a tiny size, before anything of a suite is written: a model's layer must
have the fused layer's parameters, as many as the closed formula that sizes models to a
parameter budget counts (``bench.models.param_count``), and the cell of its unrolled twin
must reproduce the layer's outputs (the gradient profiles are only exact if it does); a task
must hand out batches of its declared sizes, and its loss and metrics must accept a model's
output. Each problem is one line naming the plugin (``PluginError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from bench.diagnostics.unrolled import unroll
from bench.errors import error_line
from bench.models import ModelSizes, RecurrentModel, build_model, n_parameters, param_count
from bench.registry import ModelInfo, PluginError, TaskInfo

CPU = torch.device("cpu")


def check_model(info: ModelInfo) -> None:
    """Build the model at H=4, count its parameters, and compare its fused forward with its
    unrolled twin."""
    where = f"model {info.name}"
    sizes = ModelSizes(3, 2, True)
    try:
        torch.manual_seed(0)
        model = RecurrentModel(info.name, sizes, 4).double()
        layer = model.rnn
        shapes = {n: tuple(getattr(layer, n).shape) for n in
                  ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}
    except Exception as err:  # the plugin's own code failed
        raise PluginError(f"{where}: cannot build it: "
                          f"{error_line(err, with_type=True)}") from None
    rows = 4 * len(info.blocks)
    if shapes["weight_hh_l0"] != (rows, 4) or shapes["weight_ih_l0"] != (rows, 3):
        raise PluginError(f"{where}: its layer's weights are {shapes}; with {len(info.blocks)} "
                          f"gate block(s) at H=4 from 3 inputs, W_hh must be ({rows}, 4)")
    count, formula = n_parameters(model), param_count(info.name, sizes, 4)
    if count != formula:
        raise PluginError(f"{where}: it has {count} trainable parameters at H=4 from 3 inputs "
                          f"(head included) where the closed formula of its {len(info.blocks)} "
                          f"gate block(s) counts {formula} (bench.models.param_count); a "
                          "parameter budget would size it wrongly")
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    try:
        with torch.no_grad():
            run = unroll(model, x)
            gap = float((run.output - model(x)).abs().max())
    except Exception as err:
        raise PluginError(f"{where}: its cell fails: "
                          f"{error_line(err, with_type=True)}") from None
    if not gap < 1e-8:
        raise PluginError(f"{where}: its cell does not reproduce its layer (largest output "
                          f"difference {gap:.3g}); the gradient profiles would not be exact")
    missing = sorted(set(info.activations) - set(run.activations))
    bad = sorted(k for k, v in info.activations.items() if v not in ("tanh", "sigmoid", "relu"))
    if missing or bad:
        raise PluginError(f"{where}: activations {missing or bad} are not produced by its cell "
                          f"or not one of tanh, sigmoid, relu")


def check_task(info: TaskInfo, params: Mapping[str, Any]) -> None:
    """Build the task on the CPU, draw a batch, and score a model's output with it."""
    where = f"task {info.name}"
    one = {k: (v[0] if k == "seq_len" and isinstance(v, list) else v) for k, v in params.items()}
    try:
        task = info.build(one, seed=0, device=CPU)
        x, y = task.train_batch(2, task.train_generator(0))
    except ValueError:
        raise  # bad parameters or missing data: the task's own clear message
    except Exception as err:
        raise PluginError(f"{where}: cannot build it or draw a batch: "
                          f"{error_line(err, with_type=True)}") from None
    _check_sizes(where, info, task, x)
    model = build_model("rnn", ModelSizes(task.input_size, task.output_size, task.per_step),
                        hidden_size=4)
    try:
        loss = task.loss(model(x), y)
        metrics = task.evaluate(model(x).detach(), y)
        solved = task.solved(metrics)
    except Exception as err:
        raise PluginError(f"{where}: its loss or metrics fail on a model's output: "
                          f"{error_line(err, with_type=True)}") from None
    if loss.ndim != 0 or not {"loss", info.metric} <= set(metrics) or not isinstance(solved, bool):
        raise PluginError(f"{where}: loss must be a scalar, evaluate() must return 'loss' and "
                          f"{info.metric!r}, solved() a bool; got {list(metrics)}")


def _check_sizes(where: str, info: TaskInfo, task: Any, x: torch.Tensor) -> None:
    declared = (task.metric, task.direction)
    if declared != (info.metric, info.direction):
        raise PluginError(f"{where}: the task says {declared}, its record "
                          f"{(info.metric, info.direction)}")
    if x.ndim != 3 or x.shape[0] != 2 or x.shape[2] != task.input_size:
        raise PluginError(f"{where}: a batch of 2 must be (2, T, {task.input_size}), got "
                          f"{tuple(x.shape)}")
    if info.classes and (len(info.classes) != task.output_size
                         or not callable(getattr(task, "confusion_matrix", None))):
        raise PluginError(f"{where}: with {len(info.classes)} classes it needs output_size "
                          f"{len(info.classes)} and a confusion_matrix(output, target) method")
    if not isinstance(task.baseline, float | int) or not math.isfinite(task.baseline):
        raise PluginError(f"{where}: baseline must be a finite number, got {task.baseline!r}")
