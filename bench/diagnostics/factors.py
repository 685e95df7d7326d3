"""The two factors of the gradient's decay through time, measured at a probe.

The lecture writes ``dh_T/dh_t`` of a plain RNN ``h_t = f(W_hh h_(t-1) + ...)`` as a product of
``T - t`` Jacobians ``diag(f'(u_m)) W_hh``, hence a term ``W_hh^(T-t) * prod f'(u_m)`` in
``dL/dW_hh``, and names the remedies by the factor they act on: the ``W_r^t`` factor (weight
regularization and weight clipping) and the product of ``f'`` (ReLU; the gates of the LSTM
and the GRU, whose cell path multiplies by the gate instead). Per step, in decades (log10):

- ``w_log10_norm``: ``log10 ||W_hh||_2`` of the block on the path (``hh`` of a plain RNN; the
  largest over the gate blocks of a gated cell, whose every block feeds the hidden path), and
  ``w_log10_radius``, ``log10`` of the spectral radius (the long-run growth of ``W^k``);
- ``act_log10``: the mean over the probe batch, the units and the steps of ``log10 f'(u)``
  on the path: ``1 - h^2`` for tanh, ``h (1 - h)`` for a sigmoid, the 0/1 derivative of
  ReLU; for a gated cell the carry gate itself (LSTM ``f_t``: ``dc_t/dc_(t-1) = f_t``; GRU
  ``z_t``). A zero derivative (an inactive ReLU unit, a tanh saturated to float precision)
  closes the path through that unit at that step, and the gradient goes on through the
  others: the mean is over the non-zero entries, and their share is recorded beside it
  (``act_nonzero``). An identity-initialised ReLU RNN therefore scores 0 (its active units
  pass the gradient at gain 1, measured decay 0.000 at initialisation) with about half its
  entries active; with no entry active the factor is NaN beside ``act_nonzero = 0``;
- ``predicted``: their sum per step, ``w_log10_radius + act_log10`` for a plain RNN, the
  carry gate's ``act_log10`` for a gated cell; ``measured``: the slope of ``log10
  ||dL/dh_t||`` against the lag (``summaries.decay_rate``). Side by side they show which factor
  drives the decay for each model and remedy. The sum takes the spectral radius, the rate at
  which ``W^t`` grows in the long run, not the norm, which only bounds a single step: for a
  tanh RNN at PyTorch's initialisation (H = 68, adding T = 100, 3 seeds) ``log10 ||W||_2 =
  +0.033`` but ``log10 rho = -0.217``, and the measured decay is -0.225 decades per step.
  The mean of ``log10 f'`` is a typical value, not a bound, so ``predicted`` need not equal
  ``measured``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from bench.models import RecurrentModel

DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda a: 1.0 - a * a,
    "sigmoid": lambda a: a * (1.0 - a),
    "relu": lambda a: (a > 0).to(a.dtype),
    "identity": torch.ones_like,
}


def log10_mean_factor(values: torch.Tensor) -> tuple[float, float]:
    """``(mean log10 of the non-zero values, their share of all values)``.

    NaN values count as zero; with no non-zero value the mean is NaN.
    """
    flat = values.detach().double().flatten()
    positive = flat > 0  # NaN compares False
    count = int(positive.sum())
    if flat.numel() == 0 or count == 0:
        return math.nan, 0.0
    return float(flat[positive].log10().mean()), count / flat.numel()


def path_values(model: RecurrentModel, activations: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The per-step factor on the derivation's path: the carry gate of a gated cell, else
    ``f'`` of the activation ``h`` (read off the activation value itself)."""
    info = model.info
    if info.carry is not None:
        return activations[info.carry]
    nonlinearity = info.activations.get("h")
    if nonlinearity not in DERIVATIVES:
        raise ValueError(f"model {info.name}: no derivative known for activation h "
                         f"({nonlinearity!r}); valid: {', '.join(DERIVATIVES)}")
    return DERIVATIVES[nonlinearity](activations["h"])


def two_factors(
    model: RecurrentModel,
    activations: Mapping[str, torch.Tensor],
    spectra: list[tuple[str, float, float]],
    measured: float,
) -> dict[str, float]:
    """The factors of one probe (see the module docstring), as a flat mapping.

    Args:
        model: the probed model (its record says which path the derivation follows).
        activations: (B, T, H) per activation name, from the probe's unrolled forward.
        spectra: ``(block, spectral_norm, spectral_radius)`` of every gate block of W_hh.
        measured: the probe's ``decay_rate`` of ``||dL/dh_t||`` (decades per step).
    """
    norm = max((row[1] for row in spectra), default=math.nan)
    radius = max((row[2] for row in spectra), default=math.nan)
    act, nonzero = log10_mean_factor(path_values(model, activations))
    w_norm, w_radius = _log10(norm), _log10(radius)
    predicted = act if model.info.carry is not None else w_radius + act
    return {"w_log10_norm": w_norm, "w_log10_radius": w_radius, "act_log10": act,
            "act_nonzero": nonzero, "predicted": predicted, "measured": measured}


def path_name(model: RecurrentModel) -> str:
    """How the derivation's path is named in tables: ``W_hh, tanh'`` or ``gate f``."""
    info = model.info
    if info.carry is not None:
        return f"gate {info.carry}"
    return f"W_hh, {info.activations.get('h', '?')}'"


def _log10(value: float) -> float:
    return math.log10(value) if math.isfinite(value) and value > 0 else math.nan
