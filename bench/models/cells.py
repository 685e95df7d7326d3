"""The cell equations of the unrolled twin, one step at a time, on the fused layer's weights.

A model's record (``bench.registry.ModelInfo``) names its cell here (or brings its own). A
cell reads the fused module's own parameter tensors (``Weights``: no copies, so it follows
training) and returns the new state and the step's activations. PyTorch's equations, gate
blocks stacked by rows in ``weight_hh_l0`` in the order of the record's ``blocks``:

- plain RNN: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.
- LSTM (i, f, g, o): ``c' = f * c + i * g``, ``h' = o * tanh(c')``.
- GRU (r, z, n): ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

``x_proj`` is ``W_ih x_t + b_ih`` (B, gates * H), computed for all steps in one matmul by the
caller. ``nudge(name, value)`` must be applied to each new state tensor before anything reads
it: the finite-difference reference of the tests adds its perturbations there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

HELPER = True  # shared code, no model: the registry's scan skips it (bench.registry)

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (B, H)
Activations = dict[str, torch.Tensor]  # name -> (B, H) at one step
Nudge = Callable[[str, torch.Tensor], torch.Tensor]  # ("h" | "c", new state) -> used state


@dataclass(frozen=True)
class Weights:
    """The fused layer's own parameter tensors (not copies), gate blocks stacked by rows."""

    w_ih: torch.Tensor  # (gates * H, I)
    w_hh: torch.Tensor  # (gates * H, H)
    b_ih: torch.Tensor  # (gates * H,)
    b_hh: torch.Tensor  # (gates * H,)


def layer_weights(layer: nn.Module) -> Weights:
    """The parameters of a one-layer fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``."""
    return Weights(
        cast(torch.Tensor, layer.weight_ih_l0), cast(torch.Tensor, layer.weight_hh_l0),
        cast(torch.Tensor, layer.bias_ih_l0), cast(torch.Tensor, layer.bias_hh_l0),
    )


Cell = Callable[[torch.Tensor, State, Weights, Nudge], tuple[State, Activations]]


def rnn_cell(act: Callable[[torch.Tensor], torch.Tensor]) -> Cell:
    """The plain RNN step with nonlinearity ``act``; its activation is ``h``."""

    def cell(
        xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
    ) -> tuple[State, Activations]:
        (h,) = state
        a = act(xp + F.linear(h, w.w_hh, w.b_hh))
        return (nudge("h", a),), {"h": a}

    return cell


def lstm_cell(
    xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
) -> tuple[State, Activations]:
    """The LSTM step; activations: the gates i, f, g, o, tanh(c) and h."""
    h, c = state
    gates = xp + F.linear(h, w.w_hh, w.b_hh)  # (B, 4H): i, f, g, o
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = nudge("c", f * c + i * g)  # before h reads it: dL/dc_t includes the path via h_t
    tanh_c = torch.tanh(c)
    a = o * tanh_c
    return (nudge("h", a), c), {"h": a, "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}


def gru_cell(
    xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
) -> tuple[State, Activations]:
    """The GRU step; activations: the gates r, z, the candidate n and h."""
    (h,) = state
    rec = F.linear(h, w.w_hh, w.b_hh)  # (B, 3H): r, z, n
    x_r, x_z, x_n = xp.chunk(3, dim=-1)
    h_r, h_z, h_n = rec.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    a = (1 - z) * n + z * h
    return (nudge("h", a),), {"h": a, "r": r, "z": z, "n": n}


def plain_rnn(nonlinearity: str) -> Callable[[int, int], nn.Module]:
    """A fused one-layer ``nn.RNN`` factory with ``nonlinearity`` (tanh or relu)."""

    def make(input_size: int, hidden_size: int) -> nn.Module:
        return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)

    return make


def keep_default(layer: nn.Module) -> None:
    """Keep PyTorch's default initialisation, uniform(-1/sqrt(H), 1/sqrt(H))."""
