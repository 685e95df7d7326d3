"""Every profile a probe records, against a reference computed here without the product's
unrolled twin or its norm helpers.

The reference for ``dL/dh_t`` (and ``dL/dc_t``) runs the FUSED layer in two pieces: the steps
up to t, then the rest started from the state at t made a leaf; autograd of the loss with
respect to that leaf is the total derivative through time (for ``c_t``, plus the path
through ``h_t = o_t tanh(c_t)``, with ``o_t`` from the layer's weights). The theory bound's
reference takes the direct terms as autograd of the loss with respect to the head's input,
the gain as ``||W_hh||_2`` (tanh and ReLU: |f'| <= 1) and sums the geometric series per
example.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from bench.diagnostics import probe
from bench.models import ModelSizes, RecurrentModel, build_model
from bench.registry import MODELS
from tasks import Task, adding, copy, make_generator

CPU = torch.device("cpu")
F64 = torch.float64
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _task(name: str) -> Task:
    module = {"adding": adding, "copy": copy}[name]
    return module.build({"seq_len": 5, "val_size": 8, "test_size": 8}, seed=0, device=CPU)


def _model(kind: str, task: Task) -> RecurrentModel:
    torch.manual_seed(3)
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    model = build_model(kind, sizes, hidden_size=6).to(F64)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():  # off the special initial values (irnn: identity, zero biases)
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=F64))
    return model


def _state_grads(model: RecurrentModel, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor,
                 t: int) -> list[torch.Tensor]:
    """[dL/dh_t] (and dL/dc_t for an LSTM), each (B, H), t counted from 0: the fused layer
    run to t, then from a leaf copy of its state at t to the end."""
    head, state = model.rnn(x[:, : t + 1])
    states = list(state) if isinstance(state, tuple) else [state]
    leaves = [s.detach().requires_grad_(True) for s in states]
    pieces = [head[:, :t].detach(), leaves[0][0].unsqueeze(1)]
    if t + 1 < x.shape[1]:
        rest, _ = model.rnn(x[:, t + 1 :], tuple(leaves) if len(leaves) > 1 else leaves[0])
        pieces.append(rest)
    loss = loss_fn(model.readout(torch.cat(pieces, dim=1)), y)
    grads = [g[0] for g in torch.autograd.grad(loss, leaves, allow_unused=True,
                                                materialize_grads=True)]
    if len(grads) == 2:  # h_t = o_t tanh(c_t) reads c_t too: add that path
        previous = head[:, t - 1] if t else torch.zeros_like(head[:, 0])
        out_gate = _lstm_output_gate(model.rnn, x[:, t], previous.detach())
        tanh_c = torch.tanh(states[1][0].detach())
        grads[1] = grads[1] + grads[0] * out_gate * (1 - tanh_c**2)
    return grads


def _lstm_output_gate(layer: nn.Module, x_t: torch.Tensor, h_prev: torch.Tensor
                      ) -> torch.Tensor:
    """o_t = sigmoid(W_io x_t + b_io + W_ho h_(t-1) + b_ho): PyTorch stacks the gates i, f,
    g, o."""
    w_ih, w_hh = layer.weight_ih_l0.detach(), layer.weight_hh_l0.detach()
    b_ih, b_hh = layer.bias_ih_l0.detach(), layer.bias_hh_l0.detach()
    size = w_hh.shape[1]
    rows = slice(3 * size, 4 * size)
    return torch.sigmoid(x_t @ w_ih[rows].T + b_ih[rows] + h_prev @ w_hh[rows].T + b_hh[rows])


def _mean_norm(per_step: list[torch.Tensor]) -> list[float]:
    """Per step: the mean over the batch of each example's Euclidean norm."""
    return [float(g.square().sum(dim=-1).sqrt().mean()) for g in per_step]


def _bound(model: RecurrentModel, loss_fn: LossFn, x: torch.Tensor,
           y: torch.Tensor) -> list[float]:
    """Batch mean of b_t = sum_{k >= t} ||W_hh||_2^(k - t) ||d_k|| (d_k: the direct term)."""
    hidden, _ = model.rnn(x)
    leaf = hidden.detach().requires_grad_(True)
    (direct,) = torch.autograd.grad(loss_fn(model.readout(leaf), y), leaf)
    gain = float(torch.linalg.matrix_norm(model.rnn.weight_hh_l0.detach(), ord=2))
    norms = direct.square().sum(dim=-1).sqrt()  # (B, T)
    steps = x.shape[1]
    return [float(sum(gain ** (k - t) * norms[:, k] for k in range(t, steps)).mean())
            for t in range(steps)]


def _reference(model: RecurrentModel, losses: dict[str, LossFn], x: torch.Tensor,
               y: torch.Tensor) -> dict[str, list[float]]:
    """kind -> profile over t = 1..T, for every kind a probe must record."""
    out: dict[str, list[float]] = {}
    for suffix, loss_fn in losses.items():
        grads = [_state_grads(model, loss_fn, x, y, t) for t in range(x.shape[1])]
        out[f"h{suffix}"] = _mean_norm([g[0] for g in grads])
        if isinstance(model.rnn, nn.LSTM) and not suffix:
            out["c"] = _mean_norm([g[1] for g in grads])
        if isinstance(model.rnn, nn.RNN):  # the plain cells: the theory bound too
            out[f"bound{suffix}"] = _bound(model, loss_fn, x, y)
    return out


@pytest.mark.parametrize("kind", MODELS.names())
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_every_recorded_profile_equals_the_reference(kind: str, task_name: str) -> None:
    task = _task(task_name)
    model = _model(kind, task)
    x, y = task.train_batch(4, make_generator(1, CPU))
    x = x.to(F64)
    y = y.to(F64) if y.is_floating_point() else y
    memory = getattr(task, "memory_loss", None)
    losses = {"": task.loss, **({"_memory": memory} if memory is not None else {})}
    out = probe(model, task.loss, x, y, step=7, memory_loss=memory)
    recorded: dict[str, list[tuple[int, float]]] = {}
    for row in out.profiles:
        assert row.step == 7
        recorded.setdefault(row.kind, []).append((row.t, row.norm))
    expected = _reference(model, losses, x, y)
    assert sorted(recorded) == sorted(expected)  # a kind without a reference fails here
    for name, norms in expected.items():
        assert [t for t, _ in recorded[name]] == list(range(1, x.shape[1] + 1)), name
        assert [v for _, v in recorded[name]] == pytest.approx(norms, rel=1e-9, abs=0), name
        assert max(norms) > 0, name  # a scaled profile shows
