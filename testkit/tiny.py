"""Tiny float64 tasks and models for the exact-value tests of the diagnostics: small enough
for explicit Jacobians, moved off special values so that no factor is trivially 0 or 1."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from bench.diagnostics import probe_gradients
from bench.diagnostics.profiles import ProbeGrads
from bench.diagnostics.unrolled import layer_weights
from bench.models import ModelSizes, RecurrentModel, build_model
from tasks import Task, adding, copy, make_generator

CPU = torch.device("cpu")
F64 = torch.float64


def tiny_task(name: str, seq_len: int = 6) -> Task:
    """The adding or copy task at ``seq_len`` with 8 validation and test sequences."""
    build = {"adding": adding.build, "copy": copy.build}[name]
    return build({"seq_len": seq_len, "val_size": 8, "test_size": 8}, seed=0, device=CPU)


def tiny_model(kind: str, task: Task, hidden: int = 5, seed: int = 0) -> RecurrentModel:
    """A float64 model of ``kind`` with every parameter shifted by 0.2 N(0, 1) (the irnn's
    identity and zero biases included)."""
    torch.manual_seed(seed)
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    model = build_model(kind, sizes, hidden_size=hidden).to(F64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=F64))
    return model


def cell_step(model: RecurrentModel, xp: torch.Tensor):  # noqa: ANN201
    """One step of the model's own cell at projected input ``xp``, as a function of its
    (unbatched) state: what ``torch.autograd.functional.jacobian`` differentiates."""
    w = layer_weights(model)

    def step(*state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        new, _ = model.info.cell(xp[None], tuple(s[None] for s in state), w, lambda _, v: v)
        return tuple(s[0] for s in new)

    return step


def tiny_batch(task: Task, size: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed training batch of ``task`` in float64 (integer targets kept)."""
    x, y = task.train_batch(size, make_generator(1, CPU))
    return x.to(F64), (y.to(F64) if y.is_floating_point() else y)


def tiny_grads(model: RecurrentModel, task: Task, size: int = 3) -> ProbeGrads:
    """The probe's gradients of ``model`` on ``tiny_batch``."""
    x, y = tiny_batch(task, size)
    return probe_gradients(model, task.loss, x, y)


def input_projection(model: RecurrentModel, task: Task, size: int = 3) -> torch.Tensor:
    """``W_ih x_t + b_ih`` of ``tiny_batch``: the input ``cell_step`` takes at each step."""
    x, _ = tiny_batch(task, size)
    w = layer_weights(model)
    return F.linear(x, w.w_ih, w.b_ih)
