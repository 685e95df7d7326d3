"""The theory bound on the gradient profile for the plain RNNs (rnn, irnn, orth-rnn).

For ``h_t = f(W_ih x_t + b + W_hh h_{t-1})`` the Jacobian is ``dh_t/dh_{t-1} = D_t W_hh`` with
``D_t = diag(f'(u_t))`` and ``|f'| <= gamma`` (gamma = 1 for tanh and ReLU). Per example,

    dL/dh_t = d_t + (D_{t+1} W_hh)^T dL/dh_{t+1},

where ``d_t`` is the direct gradient from the head at step t. Hence, per example,

    ||dL/dh_t|| <= b_t = sum_{k >= t} (gamma ||W_hh||_2)^(k - t) ||d_k||       (general form)

computed backwards as ``b_T = ||d_T||``, ``b_t = ||d_t|| + gamma ||W_hh||_2 b_{t+1}``. When the
loss reads the last step only (adding, HAR) every ``d_t`` with t < T is zero and ``d_T`` is
the whole ``dL/dh_T``, so the bound is the textbook one,
``(gamma ||W_hh||_2)^(T - t) ||dL/dh_T||``. With a loss on every step (copy) the direct terms
are needed, and the general form is what is returned.

The bound holds per example, so the batch mean of the norms (the profile) is at most the
batch mean of the per-example bounds: that mean is what ``theory_bound`` returns. (The bound
of the mean norm at step T alone would not be valid in the general form.)
"""

from __future__ import annotations

import torch

from bench.diagnostics.spectra import recurrent_blocks, spectral_norm
from bench.models import RecurrentModel


def recurrent_gain(model: RecurrentModel) -> float | None:
    """``gamma * ||W_hh||_2`` for a plain RNN (its record's ``gain`` is gamma = max |f'|:
    1 for tanh and ReLU); None for the gated cells (no such bound)."""
    gamma = model.info.gain
    if gamma is None:
        return None
    (block,) = recurrent_blocks(model).values()  # a plain RNN: one block
    return gamma * spectral_norm(block)


def theory_bound(direct_norms: torch.Tensor, gain: float) -> torch.Tensor:
    """Batch mean (T,) of the per-example bounds, from the direct-term norms (B, T).

    Args:
        direct_norms: ``||d_t||`` per example and step, t = 1..T.
        gain: ``gamma * ||W_hh||_2`` (``recurrent_gain``).
    """
    norms = direct_norms.detach().to("cpu", torch.float64)
    bound = torch.empty_like(norms)
    acc = torch.zeros(norms.shape[0], dtype=torch.float64)
    for t in range(norms.shape[1] - 1, -1, -1):
        acc = norms[:, t] + gain * acc
        bound[:, t] = acc
    return bound.mean(dim=0)
