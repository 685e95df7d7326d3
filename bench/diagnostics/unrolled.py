"""The unrolled twin of a fused recurrent layer: the same cell equations, one step at a time.

The fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` kernels hide the hidden states h_1..h_T inside
one autograd node, so the gradient autograd can give on their *output sequence* is only the
direct gradient from the head at each step (zero before the last step on the adding task).
The twin runs a Python loop over t with explicit cell equations that read the fused module's
own parameters (``model.rnn.weight_ih_l0`` etc.: no copies, so it follows training), and keeps
every h_t (and c_t) as a tensor in the graph that feeds both the next step and the head.
``torch.autograd.grad(loss, hs)`` then yields the total derivative ``dL/dh_t`` through time.

Cell equations (PyTorch's, gate blocks stacked in this order in ``weight_hh_l0``):

- rnn / irnn: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act = tanh / relu.
- lstm (i, f, g, o): ``c' = f * c + i * g``, ``h' = o * tanh(c')``.
- gru (r, z, n): ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

Time indices in this module are 0-based (``hs[0]`` is h_1); the public tables use t = 1..T.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch.nn import functional as F

from bench.models import RecurrentModel

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (B, H)
Activations = dict[str, torch.Tensor]  # name -> (B, H) at one step
Nudge = Callable[[str, torch.Tensor], torch.Tensor]  # ("h" | "c", new state) -> used state
Offsets = Mapping[tuple[str, int], torch.Tensor]  # ("h" | "c", 0-based t) -> (B, H) added


@dataclass(frozen=True)
class Weights:
    """The fused layer's own parameter tensors (not copies), gate blocks stacked by rows."""

    w_ih: torch.Tensor  # (gates * H, I)
    w_hh: torch.Tensor  # (gates * H, H)
    b_ih: torch.Tensor  # (gates * H,)
    b_hh: torch.Tensor  # (gates * H,)


def layer_weights(model: RecurrentModel) -> Weights:
    """The parameters of ``model.rnn`` (a one-layer fused ``nn.RNN``/``LSTM``/``GRU``)."""
    layer = model.rnn
    return Weights(
        cast(torch.Tensor, layer.weight_ih_l0), cast(torch.Tensor, layer.weight_hh_l0),
        cast(torch.Tensor, layer.bias_ih_l0), cast(torch.Tensor, layer.bias_hh_l0),
    )


Cell = Callable[[torch.Tensor, State, Weights, Nudge], tuple[State, Activations]]


@dataclass
class Unrolled:
    """One unrolled forward pass.

    Attributes:
        hs: h_1..h_T, each (B, H); h_t feeds step t + 1 and (through ``hidden``) the head.
        cs: c_1..c_T for the LSTM, each (B, H); empty for the other cells.
        hidden: ``torch.stack(hs, 1)``, (B, T, H): the head's input, as the fused output.
        output: ``model.readout(hidden)``.
        activations: detached (B, T, H) per named activation (``h`` and the gates), for
            saturation statistics.
    """

    hs: list[torch.Tensor]
    cs: list[torch.Tensor]
    hidden: torch.Tensor
    output: torch.Tensor
    activations: dict[str, torch.Tensor]


def _rnn_cell(act: Callable[[torch.Tensor], torch.Tensor]) -> Cell:
    def cell(
        xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
    ) -> tuple[State, Activations]:
        (h,) = state
        a = act(xp + F.linear(h, w.w_hh, w.b_hh))
        return (nudge("h", a),), {"h": a}

    return cell


def _lstm_cell(
    xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
) -> tuple[State, Activations]:
    h, c = state
    gates = xp + F.linear(h, w.w_hh, w.b_hh)  # (B, 4H): i, f, g, o
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = nudge("c", f * c + i * g)  # before h reads it: dL/dc_t includes the path via h_t
    tanh_c = torch.tanh(c)
    a = o * tanh_c
    return (nudge("h", a), c), {"h": a, "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}


def _gru_cell(
    xp: torch.Tensor, state: State, w: Weights, nudge: Nudge
) -> tuple[State, Activations]:
    (h,) = state
    rec = F.linear(h, w.w_hh, w.b_hh)  # (B, 3H): r, z, n
    x_r, x_z, x_n = xp.chunk(3, dim=-1)
    h_r, h_z, h_n = rec.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    a = (1 - z) * n + z * h
    return (nudge("h", a),), {"h": a, "r": r, "z": z, "n": n}


CELLS: dict[str, Cell] = {
    "rnn": _rnn_cell(torch.tanh), "irnn": _rnn_cell(torch.relu), "lstm": _lstm_cell,
    "gru": _gru_cell,
}


def _identity(name: str, value: torch.Tensor) -> torch.Tensor:
    return value


def _nudge(t: int, offsets: Offsets | None) -> Nudge:
    """The state hook of step t: adds ``offsets[(name, t)]`` where there is one."""
    if not offsets or all(key[1] != t for key in offsets):
        return _identity

    def nudge(name: str, value: torch.Tensor) -> torch.Tensor:
        delta = offsets.get((name, t))
        return value if delta is None else value + delta

    return nudge


def unroll(model: RecurrentModel, x: torch.Tensor, *, offsets: Offsets | None = None) -> Unrolled:
    """Run ``model`` step by step on ``x`` (B, T, I), reading the fused layer's parameters.

    Args:
        model: a model of ``bench.models``; its ``rnn`` layer is a one-layer fused module.
        x: the input sequences, in the parameters' dtype.
        offsets: optional perturbations ``{("h" | "c", t): delta}`` added to h_t / c_t
            (0-based t) as soon as they are computed, before anything reads them (the next
            step, the head, and for c_t the LSTM's h_t): the finite-difference reference of
            the tests.

    Returns:
        The states, the head's output (equal to ``model(x)`` up to rounding) and the
        activations.
    """
    w = layer_weights(model)
    cell = CELLS[model.kind]
    xproj = F.linear(x, w.w_ih, w.b_ih)  # (B, T, gates * H), one matmul
    zeros = x.new_zeros(x.shape[0], model.hidden_size)
    state: State = (zeros, zeros) if model.kind == "lstm" else (zeros,)
    hs: list[torch.Tensor] = []
    cs: list[torch.Tensor] = []
    acts: dict[str, list[torch.Tensor]] = {}
    for t, xp in enumerate(xproj.unbind(1)):  # unbind: one backward node, not T selects
        state, step_acts = cell(xp, state, w, _nudge(t, offsets))
        hs.append(state[0])
        cs.extend(state[1:])
        for name, value in step_acts.items():
            acts.setdefault(name, []).append(value.detach())
    hidden = torch.stack(hs, dim=1)  # (B, T, H)
    activations = {name: torch.stack(values, dim=1) for name, values in acts.items()}
    return Unrolled(hs, cs, hidden, model.readout(hidden), activations)
