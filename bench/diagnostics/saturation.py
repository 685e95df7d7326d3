"""Saturation of the units on the probe batch: where the derivative of the nonlinearity is ~0.

Measured on the activations of the unrolled forward (every example and step of the probe
batch), per block, as tidy ``(block, measure, value)`` triples:

- tanh units (``h`` of the rnn, ``g`` and ``tanh_c`` of the LSTM, ``n`` of the GRU):
  ``saturated`` = fraction of activations with ``|a| > 0.99``.
- sigmoid gates (``i, f, o`` of the LSTM, ``r, z`` of the GRU): ``low`` = fraction below
  0.01, ``high`` = fraction above 0.99, ``saturated`` = low + high.
- ReLU units (``h`` of the irnn): ``dead`` = fraction of units that are 0 for every example
  and step; ``inactive`` = fraction of activations that are 0.

Values are NaN-free fractions in [0, 1] (a NaN activation counts as not saturated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

SAT = 0.99  # tanh: |a| > SAT; sigmoid: a > SAT
LOW = 0.01  # sigmoid: a < LOW

def _fraction(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 0.0


def _tanh(a: torch.Tensor) -> dict[str, float]:
    return {"saturated": _fraction(a.abs() > SAT)}


def _sigmoid(a: torch.Tensor) -> dict[str, float]:
    low, high = _fraction(a < LOW), _fraction(a > SAT)
    return {"low": low, "high": high, "saturated": low + high}


def _relu(a: torch.Tensor) -> dict[str, float]:
    zero = a == 0  # (B, T, H)
    dead = zero.flatten(0, -2).all(dim=0)  # (H,): zero for every example and step
    return {"dead": _fraction(dead), "inactive": _fraction(zero)}


MEASURES: dict[str, Callable[[torch.Tensor], dict[str, float]]] = {
    "tanh": _tanh, "sigmoid": _sigmoid, "relu": _relu,
}


def saturation_fractions(
    nonlinearities: Mapping[str, str], activations: Mapping[str, torch.Tensor]
) -> list[tuple[str, str, float]]:
    """``(block, measure, value)`` rows from (B, T, H) activations, given each block's
    nonlinearity (a model record's ``activations``)."""
    rows = []
    for block, nonlinearity in nonlinearities.items():
        for measure, value in MEASURES[nonlinearity](activations[block].detach()).items():
            rows.append((block, measure, value))
    return rows
