"""The unrolled twin of a fused recurrent layer: the same cell equations, one step at a time.

The fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` kernels hide the hidden states h_1..h_T inside
one autograd node, so the gradient autograd can give on their *output sequence* is only the
direct gradient from the head at each step (zero before the last step on the adding task).
The twin runs a Python loop over t with explicit cell equations that read the fused module's
own parameters (``model.rnn.weight_ih_l0`` etc.: no copies, so it follows training), and keeps
every h_t (and c_t) as a tensor in the graph that feeds both the next step and the head.
``torch.autograd.grad(loss, hs)`` then yields the total derivative ``dL/dh_t`` through time.

The cell equations belong to each model's record (``model.info.cell``; the built-in ones are
in ``bench.models.cells``), and so does the recurrent state (``("h",)`` or ``("h", "c")``).

Time indices in this module are 0-based (``hs[0]`` is h_1); the public tables use t = 1..T.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from bench.models import RecurrentModel, cells
from bench.models.cells import Nudge, State, Weights

Offsets = Mapping[tuple[str, int], torch.Tensor]  # ("h" | "c", 0-based t) -> (B, H) added


def layer_weights(model: RecurrentModel) -> Weights:
    """The parameters of ``model.rnn`` (a one-layer fused ``nn.RNN``/``LSTM``/``GRU``)."""
    return cells.layer_weights(model.rnn)


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
    xproj = F.linear(x, w.w_ih, w.b_ih)  # (B, T, gates * H), one matmul
    zeros = x.new_zeros(x.shape[0], model.hidden_size)
    state: State = tuple(zeros for _ in model.info.state)
    hs: list[torch.Tensor] = []
    cs: list[torch.Tensor] = []
    acts: dict[str, list[torch.Tensor]] = {}
    for t, xp in enumerate(xproj.unbind(1)):  # unbind: one backward node, not T selects
        state, step_acts = model.info.cell(xp, state, w, _nudge(t, offsets))
        hs.append(state[0])
        cs.extend(state[1:])
        for name, value in step_acts.items():
            acts.setdefault(name, []).append(value.detach())
    hidden = torch.stack(hs, dim=1)  # (B, T, H)
    activations = {name: torch.stack(values, dim=1) for name, values in acts.items()}
    return Unrolled(hs, cs, hidden, model.readout(hidden), activations)
