"""One backward step of each cell, split into its paths: what the exact split measures.

Step t (t = 2..T) takes the gradient the state at t receives back to the state at t - 1.
Every quantity here is per sequence and step, a (B, T - 1) tensor of norms in float64 on the
CPU whose column j is step t = j + 2. With ``g_t = dL/dh_t`` (the total derivative,
``ProbeGrads.h``) and ``d_t`` the direct term (the loss's own read of h_t,
``ProbeGrads.direct``), autograd's ``g_(t-1) = d_(t-1) + (the propagated part)``, and the
propagated part is, by the record's ``split``:

- ``plain`` (``h_t = f(u_t)``, ``u_t = W_ih x_t + W_hh h_(t-1) + b``): ``W_hh^T a_t`` with
  ``a_t = f'(u_t) * g_t`` (``through`` = ||a_t||; f' read off h_t itself);
- ``lstm`` (state (h, c)): h_(t-1) gets the hidden path ``W_hh^T delta_t`` (delta_t: the
  gradient on the four gates' pre-activations) and c_(t-1) the carry ``f_t * dL/dc_t``
  (``dL/dc_t`` including the path through h_t); the gradient the step receives is
  ``(g_t, cbar_t)`` with ``cbar_t = f_(t+1) * dL/dc_(t+1)`` (0 at T), the part of
  ``dL/dc_t`` that does not go through h_t; the two paths lie in the two halves of the state,
  so their squared norms add up;
- ``gru``: both land on h_(t-1): the carry ``z_t * g_t`` (PyTorch's convention ``h_t = (1 -
  z_t) n_t + z_t h_(t-1)``) and the hidden path ``W_hh^T delta_t`` through r, z and n.

``residual`` checks the split against autograd: the largest relative gap, over sequences and
steps, between the split's propagated part plus the direct term and autograd's gradient on
the earlier state (for the LSTM's c: ``dL/dc_(t-1)`` less its path through h_(t-1)),
relative to the sum of the norms involved. It is rounding (about 1e-7 in float32) when the
record's ``split`` describes its cell, order 1 when it does not. Steps whose norms are below
``tiny / eps`` of the probe's dtype (float32: about 1e-31) are not checked: there autograd's
own values are subnormal and have lost their digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.diagnostics.profiles import ProbeGrads
from bench.diagnostics.unrolled import layer_weights
from bench.models import RecurrentModel
from bench.models.cells import Weights

# f' as a function of the activation's value a = f(u)
DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda a: 1.0 - a * a,
    "sigmoid": lambda a: a * (1.0 - a),
    "relu": lambda a: (a > 0).to(a.dtype),
    "identity": torch.ones_like,
}
NEEDS = {  # split -> (gate blocks of W_hh, activations of the cell, states)
    "plain": (1, (), ("h",)),
    "lstm": (4, ("i", "f", "g", "o", "tanh_c"), ("h", "c")),
    "gru": (3, ("r", "z", "n"), ("h",)),
}


@dataclass(frozen=True)
class Paths:
    """The parts of every backward step, as (B, T - 1) norms (see the module docstring).

    Attributes:
        received: the gradient the step receives (``||g_t||``; LSTM ``||(g_t, cbar_t)||``).
        propagated: its part on the state at t - 1 (plain ``||W_hh^T a_t||``).
        injected: ``||d_(t-1)||``, the loss's direct read of h_(t-1), kept apart.
        through: plain cells: ``||a_t||`` = ``||f'(u_t) * g_t||``; else None.
        carry: gated cells: the carry path's norm; else None.
        hidden: gated cells: the hidden path's norm (through W_hh); else None.
        residual: the largest relative gap between the split and autograd (0 when nothing
            could be compared).
        fprime_all_units: plain cells: the mean ``log10 f'`` over every unit, step and
            sequence (non-zero entries; ``log10_mean_factor``), a typical f', not the one on
            the gradient's path; else NaN.
    """

    received: torch.Tensor
    propagated: torch.Tensor
    injected: torch.Tensor
    through: torch.Tensor | None
    carry: torch.Tensor | None
    hidden: torch.Tensor | None
    residual: float
    fprime_all_units: float = math.nan


def unavailable(model: RecurrentModel, grads: ProbeGrads) -> str:
    """Why the split is not available for ``model`` ('' when it is): a record that does not
    declare it, or declares what its cell does not have."""
    info = model.info
    if info.split is None:
        return ("the model's record declares no split (ModelInfo.split): its cell's backward "
                "step is not known")
    blocks, activations, states = NEEDS[info.split]
    if len(info.blocks) != blocks:
        return f"split {info.split!r} needs {blocks} gate block(s) in W_hh, the record has " \
               f"{len(info.blocks)}"
    missing = [k for k in activations if k not in grads.activations]
    missing += [f"state {k}" for k in states if k not in grads.states]
    if missing:
        return f"split {info.split!r} needs the cell's {', '.join(missing)}"
    nonlinearity = info.activations.get("h")
    if info.split == "plain" and nonlinearity not in DERIVATIVES:
        return (f"split 'plain' needs the derivative of activation h ({nonlinearity!r}), "
                f"one of {', '.join(DERIVATIVES)}")
    return ""


def split_paths(model: RecurrentModel, grads: ProbeGrads) -> Paths:
    """Every backward step of ``model`` on the probe batch, split into its paths (float64).

    Call ``unavailable`` first: this assumes the record's split is declared and usable.
    """
    info = model.info
    assert info.split is not None
    return SPLITTERS[info.split](grads, layer_weights(model), info.activations.get("h", ""))


def _f64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().double()


def _norm(vectors: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(vectors, dim=-1).cpu()


def _residual(gaps: list[torch.Tensor], parts: list[torch.Tensor], dtype: torch.dtype) -> float:
    """max over (sequence, step) of ``||gaps|| / sum ||parts||`` (a norm over the
    concatenation of ``gaps``) where that sum is finite and above ``tiny / eps`` of the
    probe's ``dtype``: below it autograd's own values are subnormal or on their way there
    (float32: 1e-31; a trained tanh RNN's gradient gets there within 50 steps) and have lost
    the digits a relative gap needs."""
    gap = torch.linalg.vector_norm(torch.cat(gaps, dim=-1), dim=-1)
    scale = sum(torch.linalg.vector_norm(p, dim=-1) for p in parts)
    assert isinstance(scale, torch.Tensor)
    floor = torch.finfo(dtype).tiny / torch.finfo(dtype).eps
    ok = torch.isfinite(gap) & torch.isfinite(scale) & (scale > floor)
    return float((gap[ok] / scale[ok]).max()) if bool(ok.any()) else 0.0


def _plain(grads: ProbeGrads, w: Weights, nonlinearity: str) -> Paths:
    g, h, direct = _f64(grads.h), _f64(grads.states["h"]), _f64(grads.direct)
    fprime = DERIVATIVES[nonlinearity](h)  # f'(u_t), t = 1..T
    a = fprime[:, 1:] * g[:, 1:]  # f'(u_t) * g_t, t = 2..T
    propagated = a @ _f64(w.w_hh)  # W_hh^T a_t, as rows
    injected = direct[:, :-1]
    residual = _residual([g[:, :-1] - injected - propagated], [g[:, :-1], injected, propagated],
                         grads.h.dtype)
    return Paths(_norm(g[:, 1:]), _norm(propagated), _norm(injected), _norm(a), None, None,
                 residual, log10_mean_factor(fprime)[0])


def log10_mean_factor(values: torch.Tensor) -> tuple[float, float]:
    """``(mean log10 of the non-zero values, their share of all values)``.

    NaN values count as zero; with no non-zero value the mean is NaN.
    """
    flat = values.detach().double().flatten()
    positive = flat > 0  # NaN compares False
    count = int(positive.sum())
    if flat.numel() == 0 or count == 0:
        return math.nan, 0.0
    logs = torch.where(positive, flat, 1.0).log10()  # log10 1 = 0 where left out
    return float(logs.sum()) / count, count / flat.numel()


def _lstm(grads: ProbeGrads, w: Weights, nonlinearity: str) -> Paths:
    assert grads.c is not None
    gh, gc, direct = _f64(grads.h), _f64(grads.c), _f64(grads.direct)
    i, f, g, o, tanh_c = (_f64(grads.activations[k]) for k in ("i", "f", "g", "o", "tanh_c"))
    c_before = _f64(grads.states["c"])[:, :-1]
    later = slice(1, None)
    dc = gc[:, later]  # dL/dc_t, through h_t included
    gates = torch.cat([dc * g[:, later] * i[:, later] * (1 - i[:, later]),
                       dc * c_before * f[:, later] * (1 - f[:, later]),
                       dc * i[:, later] * (1 - g[:, later] ** 2),
                       gh[:, later] * tanh_c[:, later] * o[:, later] * (1 - o[:, later])],
                      dim=-1)  # the gradient on the pre-activations of i, f, g, o
    hidden = gates @ _f64(w.w_hh)
    carry = f[:, later] * dc
    carried = torch.cat([carry[:, 1:], torch.zeros_like(carry[:, :1])], dim=1)  # cbar_t
    injected = direct[:, :-1]
    within = o[:, :-1] * (1 - tanh_c[:, :-1] ** 2) * gh[:, :-1]  # c_(t-1) -> h_(t-1)
    residual = _residual([gh[:, :-1] - injected - hidden, gc[:, :-1] - within - carry],
                         [gh[:, :-1], injected, hidden, gc[:, :-1], within, carry],
                         grads.h.dtype)
    received = torch.cat([gh[:, later], carried], dim=-1)
    propagated = torch.cat([hidden, carry], dim=-1)
    return Paths(_norm(received), _norm(propagated), _norm(injected), None, _norm(carry),
                 _norm(hidden), residual)


def _gru(grads: ProbeGrads, w: Weights, nonlinearity: str) -> Paths:
    g_all, direct = _f64(grads.h), _f64(grads.direct)
    g, h_before = g_all[:, 1:], _f64(grads.states["h"])[:, :-1]
    r, z, n = (_f64(grads.activations[k])[:, 1:] for k in ("r", "z", "n"))
    w_hh, b_hh = _f64(w.w_hh), _f64(w.b_hh)
    size = g.shape[-1]
    h_n = h_before @ w_hh[2 * size :].T + b_hh[2 * size :]  # W_hn h_(t-1) + b_hn
    dn = g * (1 - z) * (1 - n**2)  # the gradient on n's pre-activation
    gates = torch.cat([dn * h_n * r * (1 - r), g * (h_before - n) * z * (1 - z), dn * r],
                      dim=-1)  # on the pre-activations of r, z and on W_hn h + b_hn
    hidden = gates @ w_hh
    carry = z * g
    propagated = carry + hidden
    injected = direct[:, :-1]
    residual = _residual([g_all[:, :-1] - injected - propagated],
                         [g_all[:, :-1], injected, carry, hidden], grads.h.dtype)
    return Paths(_norm(g), _norm(propagated), _norm(injected), None, _norm(carry),
                 _norm(hidden), residual)


# the record's split -> its backward step (the third argument: the nonlinearity of h)
SPLITTERS: dict[str, Callable[[ProbeGrads, Weights, str], Paths]] = {
    "plain": _plain, "lstm": _lstm, "gru": _gru}
