"""Spectral norm and spectral radius of the recurrent weights ``W_hh``, per gate block.

``weight_hh_l0`` stacks one (H, H) block per gate, named by the model's record
(``model.info.blocks``): one for the plain RNNs (``hh``), four for the LSTM (``i, f, g, o``),
three for the GRU (``r, z, n``). The spectral norm ``||W||_2`` (the
largest singular value) enters the gradient bound; the spectral radius (the largest
``|eigenvalue|``) governs the long-run growth of ``W^k``. Both are computed in float64 on the
CPU; a block holding NaN or inf gives NaN for both instead of raising.
"""

from __future__ import annotations

import math

import torch

from bench.diagnostics.unrolled import layer_weights
from bench.models import RecurrentModel


def recurrent_blocks(model: RecurrentModel) -> dict[str, torch.Tensor]:
    """Block name -> (H, H) recurrent weight block, detached, float64, on the CPU."""
    weight = layer_weights(model).w_hh.detach().to("cpu", torch.float64)  # (gates * H, H)
    names = model.info.blocks
    return dict(zip(names, weight.chunk(len(names), dim=0), strict=True))


def spectral_norm(matrix: torch.Tensor) -> float:
    """The largest singular value; NaN when the matrix is not finite."""
    if not bool(torch.isfinite(matrix).all()):
        return math.nan
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def spectral_radius(matrix: torch.Tensor) -> float:
    """The largest eigenvalue modulus of a square matrix; NaN when it is not finite."""
    if not bool(torch.isfinite(matrix).all()):
        return math.nan
    return float(torch.linalg.eigvals(matrix).abs().max())


def recurrent_spectra(model: RecurrentModel) -> list[tuple[str, float, float]]:
    """``(block, spectral_norm, spectral_radius)`` for every gate block of ``W_hh``."""
    return [
        (name, spectral_norm(block), spectral_radius(block))
        for name, block in recurrent_blocks(model).items()
    ]
