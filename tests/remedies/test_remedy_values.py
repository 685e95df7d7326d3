"""The remedies' hooks on small hand-worked inputs: the exact values they write and the flag
they return, at and around their thresholds (``norm``, ``weight``, ``orth-margin``), the
non-finite entries ``weight`` ignores, the dtype of the blocks ``weight`` and ``orth-margin``
return, and the rounding tolerance of ``orth-margin``. Reference values are worked by hand or
computed independently in float64 (``torch.linalg.matrix_norm`` / ``svdvals``)."""

from __future__ import annotations

import pytest
import torch

from bench.models import ModelSizes, RecurrentModel, build_model
from bench.remedies import decay, norm, orth_margin, weight

ADDING = ModelSizes(2, 1, False)
F32_EPS = torch.finfo(torch.float32).eps
F64_EPS = torch.finfo(torch.float64).eps


def _model(kind: str, hidden: int, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    return build_model(kind, ADDING, hidden_size=hidden)


def _weights(model: RecurrentModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _diag(*values: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A diagonal block: its singular values are the |values|, exactly."""
    return torch.diag(torch.tensor(values, dtype=dtype))


def _ulps(x: float, n: int, dtype: torch.dtype = torch.float32) -> float:
    """``x`` moved by ``n`` representable steps of ``dtype`` (up for n > 0, down for n < 0)."""
    value = torch.tensor(x, dtype=dtype)
    target = torch.tensor(float("inf") if n > 0 else float("-inf"), dtype=dtype)
    for _ in range(abs(n)):
        value = torch.nextafter(value, target)
    return float(value)


# --------------------------------------------------------------------------- decay


def test_decay_multiplies_w_hh_by_one_minus_lr_times_lambda() -> None:
    """lr 0.1, lambda 2: W_hh times 0.8 (not 1 - lr / lambda = 0.95); nothing else moves."""
    model = _model("rnn", 4)
    before = _weights(model)
    with torch.no_grad():
        decay.decay(model, {"decay": 2.0}, 0.1)
    for name, p in model.named_parameters():
        expected = before[name] * 0.8 if name == "rnn.weight_hh_l0" else before[name]
        assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=0.0), name


# --------------------------------------------------------------------------- norm


def test_norm_clipping_at_exactly_tau_is_not_counted() -> None:
    """Gradients (3, 0) and (0, 4), global norm 5, tau 5: the norm does not exceed tau, so
    the step is not clipped; the gradients are scaled by min(1, 5 / (5 + 1e-6))."""
    grads = [torch.tensor([3.0, 0.0], dtype=torch.float64),
             torch.tensor([[0.0], [4.0]], dtype=torch.float64)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clipped = norm.clip(params, torch.tensor(5.0, dtype=torch.float64), {"clip": 5.0})
    assert not bool(clipped)
    for p, g in zip(params, grads, strict=True):
        assert torch.allclose(p.grad, g * (5.0 / (5.0 + 1e-6)), rtol=1e-15, atol=0.0)


# --------------------------------------------------------------------------- weight


def test_spectral_norms_below_one_and_in_the_blocks_dtype() -> None:
    """diag(0.5, 0.25, 0.125) has spectral norm 0.5, diag(2, 1, 0.5) has 2 (exact)."""
    blocks = torch.stack([_diag(0.5, 0.25, 0.125), _diag(2.0, 1.0, -0.5)])
    sigma = weight.spectral_norms(blocks)
    assert sigma.dtype == torch.float32
    assert sigma.tolist() == [0.5, 2.0]
    small = weight.spectral_norms(blocks.double() * 1e-3)
    assert small.dtype == torch.float64
    assert torch.allclose(small, torch.tensor([5e-4, 2e-3], dtype=torch.float64),
                          rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_spectral_norms_count_non_finite_entries_as_zero(bad: float) -> None:
    """A block with one non-finite entry has the spectral norm of the block with that entry
    set to 0 (float64 ``matrix_norm`` of that block); the other blocks are unaffected."""
    generator = torch.Generator().manual_seed(5)
    blocks = torch.randn(3, 5, 5, generator=generator) * 0.3
    blocks[1] = _diag(2.0, 1.0, 0.5, 0.25, 0.125)
    zeroed = blocks.double().clone()
    blocks[0, 1, 3] = bad
    blocks[1, 0, 1] = bad
    blocks[2, 4, 4] = bad
    zeroed[0, 1, 3] = 0.0
    zeroed[1, 0, 1] = 0.0
    zeroed[2, 4, 4] = 0.0
    expected = torch.linalg.matrix_norm(zeroed, ord=2)
    sigma = weight.spectral_norms(blocks)
    assert torch.isfinite(sigma).all()
    assert torch.allclose(sigma.double(), expected, rtol=1e-6, atol=0.0)
    assert float(sigma[1]) == 2.0  # the diagonal block, whatever its (zeroed) off-diagonal


def test_weight_clipping_at_exactly_tau_changes_nothing_and_is_not_counted() -> None:
    """W_hh = diag(2, 1, 0.5, 0.25): spectral norm exactly 2. At tau 2 it does not exceed tau:
    not counted, nothing changed. At tau 1 it is halved and counted."""
    model = _model("rnn", 4)
    with torch.no_grad():
        model.recurrent_weight().copy_(_diag(2.0, 1.0, 0.5, 0.25))
    before = _weights(model)
    with torch.no_grad():
        flag = weight.project(model, {"w_max": 2.0}, 1e-3)
    assert not bool(flag)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name
    with torch.no_grad():
        flag = weight.project(model, {"w_max": 1.0}, 1e-3)
    assert bool(flag)
    assert torch.equal(model.recurrent_weight().detach(), _diag(1.0, 0.5, 0.25, 0.125))


def test_weight_clipping_rescales_each_gate_block_by_its_own_factor() -> None:
    """LSTM, H = 3, blocks of spectral norm 4, 0.5, 2, 1 at tau 1: factors 1/4, 1, 1/2, 1."""
    model = _model("lstm", 3)
    blocks = [_diag(4.0, 1.0, 2.0), _diag(0.5, 0.25, 0.5), _diag(1.0, 2.0, 0.5),
              _diag(1.0, 0.5, 0.25)]
    with torch.no_grad():
        model.recurrent_weight().copy_(torch.cat(blocks))
    with torch.no_grad():
        flag = weight.project(model, {"w_max": 1.0}, 1e-3)
    assert bool(flag)
    expected = torch.cat([b * f for b, f in zip(blocks, (0.25, 1.0, 0.5, 1.0), strict=True)])
    assert torch.equal(model.recurrent_weight().detach(), expected)


# --------------------------------------------------------------------------- orth-margin


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_projection_returns_the_blocks_dtype(dtype: torch.dtype) -> None:
    blocks = torch.stack([_diag(3.0, 1.0, 0.2, dtype=dtype), _diag(1.0, 1.0, 1.0, dtype=dtype)])
    clamped, outside = orth_margin.clamp_singular_values(blocks, 0.5)
    assert clamped.dtype == dtype
    assert outside.tolist() == [True, False]
    assert torch.equal(clamped[0], _diag(1.5, 1.0, 0.5, dtype=dtype))  # diag: exact
    assert torch.equal(clamped[1], blocks[1])


def test_only_the_blocks_outside_are_flagged() -> None:
    """One block far outside, one inside: the flags are per block, the inside one is kept."""
    inside = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(1)))[0]
    blocks = torch.stack([3.0 * torch.eye(6), inside.float()])
    clamped, outside = orth_margin.clamp_singular_values(blocks, 0.1)
    assert outside.tolist() == [True, False]
    assert torch.equal(clamped[1], blocks[1])
    assert torch.allclose(clamped[0], 1.1 * torch.eye(6), rtol=0.0, atol=1e-6)


def test_singular_values_on_the_bounds_are_inside() -> None:
    """Singular values exactly 1 - m or 1 + m (m = 0: the identity; m = 0.5: 0.5 and 1.5)."""
    blocks = torch.stack([torch.eye(4), _diag(0.5, 1.5, 1.5, 0.5)])
    for margin, block in ((0.0, blocks[:1]), (0.5, blocks[1:])):
        clamped, outside = orth_margin.clamp_singular_values(block, margin)
        assert outside.tolist() == [False]
        assert torch.equal(clamped, block)


def test_the_rounding_tolerance_is_eps_times_sqrt_h_times_one_plus_m() -> None:
    """float32, H = 4, m = 0.5: tol = eps * 2 * 1.5 = 3.58e-7. A singular value 2.38e-7 beyond
    either bound (2 float32 steps above 1.5, 8 below 0.5) is inside; 4.77e-7 above 1.5 and
    4.17e-7 below 0.5 (4 and 14 steps) are outside."""
    tol = F32_EPS * 2 * 1.5
    near_high, near_low = _ulps(1.5, 2), _ulps(0.5, -8)
    far_high, far_low = _ulps(1.5, 4), _ulps(0.5, -14)
    assert near_high - 1.5 < tol < far_high - 1.5
    assert 0.5 - near_low < tol < 0.5 - far_low
    blocks = torch.stack([_diag(near_high, 1.0, 1.0, 1.0), _diag(1.0, near_low, 1.0, 1.0),
                          _diag(far_high, 1.0, 1.0, 1.0), _diag(1.0, 1.0, far_low, 1.0)])
    clamped, outside = orth_margin.clamp_singular_values(blocks, 0.5)
    assert outside.tolist() == [False, False, True, True]
    assert torch.equal(clamped[:2], blocks[:2])
    assert torch.equal(clamped[2], _diag(1.5, 1.0, 1.0, 1.0))
    assert torch.equal(clamped[3], _diag(1.0, 1.0, 0.5, 1.0))


def test_the_tolerance_boundary_itself_is_inside() -> None:
    """float64 1 x 1 blocks, m = 0.25: tol = eps64 * 1 * 1.25. A singular value of exactly
    0.75 - tol or 1.25 + tol is inside; the next float64 beyond either is outside."""
    margin = 0.25
    tol = F64_EPS * 1.0 * 1.25
    low_edge, high_edge = 0.75 - tol, 1.25 + tol
    values = [low_edge, high_edge, _ulps(low_edge, -1, torch.float64),
              _ulps(high_edge, 1, torch.float64)]
    blocks = torch.tensor(values, dtype=torch.float64).view(4, 1, 1)
    assert torch.linalg.svdvals(blocks).flatten().tolist() == values  # 1 x 1: exact
    clamped, outside = orth_margin.clamp_singular_values(blocks, margin)
    assert outside.tolist() == [False, False, True, True]
    assert torch.equal(clamped[:2], blocks[:2])
    assert clamped[2:].flatten().tolist() == [0.75, 1.25]
