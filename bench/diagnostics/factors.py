"""The decay of the gradient through time, split exactly into its factors at a probe.

The lecture writes ``dh_T/dh_t`` of a plain RNN ``h_t = f(u_t)``, ``u_t = W_ih x_t + W_hh
h_(t-1) + b``, as a product of per-step Jacobians ``diag(f'(u_t)) W_hh`` and names the
remedies by the factor they act on (``W_hh``: weight regularization and clipping; ``f'``:
ReLU, the gates). The split below measures both factors along the gradient the model has,
not as typical values: with ``g_t = dL/dh_t`` (the total derivative on the probe batch,
float64) and ``a_t = f'(u_t) * g_t``, the propagated part of ``g_(t-1)`` is ``W_hh^T a_t``
(``bench.diagnostics.paths``), and for every sequence and step t = 2..T

    log ||W_hh^T a_t|| - log ||g_t|| = log(||a_t|| / ||g_t||) + log(||W_hh^T a_t|| / ||a_t||)
    (the per-step log ratio)           (the f' factor)          (the W_hh factor)

Per probe and step (``FactorStepRow``), in log10 (decades per step): ``fprime_log10``,
``w_hh_log10`` and ``step_log10_ratio``, each the mean over the sequences of the
per-sequence values, so that ``fprime_log10 + w_hh_log10 = step_log10_ratio`` at every step
to rounding. A sequence whose norms at a step are 0 (underflow; a ReLU path closed at every
unit) or not finite (a diverged model) is left out of that step's three means, and counted
(``sequences`` kept; the probe's ``dropped``). Where the loss also reads h_(t-1) directly
(copy's every step, a per-step head), ``g_(t-1)`` is the propagated part plus that injected
term; the split is of the propagated part, and the injected term's norm is recorded beside
it (``injected_norm``).

Per probe (``FactorRow``, and the ``factors/...`` metrics): the means over the steps of the
three (steps with no sequence left are left out of all three, so the means add up as well),
and ``slope``, the profile's ``decay_rate``: the least-squares slope of ``log10 ||dL/dh_t||``
(the mean norm over the batch) against the lag ``T - t``. They summarise differently: the
per-step log ratio is the exact one-step change of the propagated part, per sequence, and its
mean over steps times T - 1 is (with no injected term) the mean of the per-sequence
``log10(||g_1|| / ||g_T||)``, the profile's end-to-end ratio; the slope fits a line through
every step of the batch-mean profile (injected terms included), so it weighs the steps
equally and can differ where the decay is not uniform along t or over sequences.

Gated cells have no single f'/W_hh product (the hidden path mixes several gates), so their
steps are split into two paths instead: the carry (LSTM ``f_t * dL/dc_t`` onto c_(t-1); GRU
``z_t * dL/dh_t`` onto h_(t-1)) and the hidden path through ``W_hh`` (``carry_norm``,
``hidden_norm``, per step the mean over the sequences). The carry share is ``||carry||^2 /
(||carry||^2 + ||hidden||^2)`` per sequence, averaged like the factors: for the LSTM the
paths lie in the two halves of the state (h, c), so it is the carry's share of the
propagated gradient's squared norm; for the GRU both land on h_(t-1) and the share ignores
their cross term. ``step_log10_ratio`` is there for gated cells too: the propagated state
gradient's norm over the one the step received (LSTM: ``(dL/dh_t, f_(t+1) * dL/dc_(t+1))``).

What the split needs comes from the model's record (``ModelInfo.split``); a record that does
not declare it, or declares a split its cell's gradients do not follow (``residual`` above
``TOLERANCE``), gets ``available = False`` with the ``reason`` and NaN factors, never a
guess. ``fprime_all_units`` keeps the former averaged estimate for plain cells, under a name
that says what it is: the mean of ``log10 f'`` over every unit, step and sequence (non-zero
entries), a typical f', not the one on the gradient's path.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from bench.diagnostics.paths import Paths, split_paths, unavailable
from bench.diagnostics.profiles import ProbeGrads
from bench.diagnostics.records import FactorRow, FactorStepRow
from bench.models import RecurrentModel

TOLERANCE = 1e-2  # the largest relative gap between the split and autograd that is rounding


def split_factors(model: RecurrentModel, grads: ProbeGrads, slope: float, step: int
                  ) -> tuple[FactorRow, list[FactorStepRow]]:
    """The probe's split (see the module docstring): its summary row and its rows per step.

    Args:
        model: the probed model (its record's ``split`` says how its steps split).
        grads: the probe's gradients (total loss).
        slope: the probe's ``decay_rate`` of ``||dL/dh_t||`` (decades per step).
        step: the training step to tag the rows with.
    """
    nan = math.nan
    info = model.info
    row = FactorRow(step=step, path=path_name(model), split=info.split or "none",
                    available=False, reason=unavailable(model, grads), fprime_log10=nan,
                    w_hh_log10=nan, step_log10_ratio=nan, slope=slope, carry_share=nan,
                    steps_used=0, dropped=0, injected_steps=0, residual=nan,
                    fprime_all_units=nan)
    if row.reason:
        return row, []
    paths = split_paths(model, grads)
    row = replace(row, fprime_all_units=paths.fprime_all_units)
    if not paths.residual <= TOLERANCE:
        return replace(row, residual=paths.residual, reason=(
            f"the record's split {info.split!r} misses autograd's gradient by a relative "
            f"{paths.residual:.3g} (tolerance {TOLERANCE:g}): it does not describe the cell")), []
    columns, keep = _per_sequence(paths)
    count = keep.sum(dim=0)  # sequences kept per step
    means = {name: _step_means(values, keep, count) for name, values in columns.items()}
    table = {k: v.tolist() for k, v in {**means, **_norms(paths)}.items()}
    rows = [_step_row(step, j, {k: v[j] for k, v in table.items()}, n)
            for j, n in enumerate(count.tolist())]
    used = count > 0
    mean = {name: float(values[used].mean()) if bool(used.any()) else nan
            for name, values in means.items()}
    return replace(row, available=True, fprime_log10=mean["fprime_log10"],
                   w_hh_log10=mean["w_hh_log10"], step_log10_ratio=mean["step_log10_ratio"],
                   carry_share=mean["carry_share"], steps_used=int(used.sum()),
                   dropped=int((~keep).sum()), residual=paths.residual,
                   injected_steps=int((paths.injected > 0).any(dim=0).sum())), rows


def _per_sequence(paths: Paths) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(B, T - 1) per-sequence values of each column, and the mask of those kept (every
    norm they are made of finite and positive)."""
    logs = {"received": paths.received, "propagated": paths.propagated}
    if paths.through is not None:
        logs["through"] = paths.through
    keep = torch.ones_like(paths.received, dtype=torch.bool)
    for norm in logs.values():
        keep &= torch.isfinite(norm) & (norm > 0)
    log = {k: torch.log10(torch.where(keep, v, 1.0)) for k, v in logs.items()}  # 0 if left out
    nan = torch.full_like(paths.received, math.nan)
    columns = {"fprime_log10": nan, "w_hh_log10": nan,
               "step_log10_ratio": log["propagated"] - log["received"], "carry_share": nan}
    if paths.through is not None:
        columns["fprime_log10"] = log["through"] - log["received"]
        columns["w_hh_log10"] = log["propagated"] - log["through"]
    if paths.carry is not None and paths.hidden is not None:
        carry, hidden = paths.carry**2, paths.hidden**2
        columns["carry_share"] = carry / torch.where(keep, carry + hidden, 1.0)
    return columns, keep


def _step_row(step: int, j: int, value: dict[str, float], sequences: int) -> FactorStepRow:
    """The row of backward step t = j + 2, from the per-step ``value`` of every column."""
    return FactorStepRow(
        step=step, t=j + 2, fprime_log10=value["fprime_log10"], w_hh_log10=value["w_hh_log10"],
        step_log10_ratio=value["step_log10_ratio"], carry_share=value["carry_share"],
        received_norm=value["received_norm"], propagated_norm=value["propagated_norm"],
        injected_norm=value["injected_norm"], carry_norm=value["carry_norm"],
        hidden_norm=value["hidden_norm"], sequences=sequences)


def _step_means(values: torch.Tensor, keep: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per step: the mean over the kept sequences (NaN where none is kept)."""
    total = torch.where(keep, values, 0.0).sum(dim=0)
    return torch.where(count > 0, total / count.clamp(min=1), math.nan)


def _norms(paths: Paths) -> dict[str, torch.Tensor]:
    """Per step: the mean over every sequence of each part's norm (NaN where absent)."""
    nan = torch.full((paths.received.shape[1],), math.nan, dtype=torch.float64)
    parts = {"received_norm": paths.received, "propagated_norm": paths.propagated,
             "injected_norm": paths.injected, "carry_norm": paths.carry,
             "hidden_norm": paths.hidden}
    return {k: v.mean(dim=0) if v is not None else nan for k, v in parts.items()}


def path_name(model: RecurrentModel) -> str:
    """How the split's paths are named in tables: ``W_hh, tanh'`` for a plain cell, ``carry
    f, hidden W_hh`` for a gated one, ``not declared`` without a split."""
    info = model.info
    if info.split == "plain":
        return f"W_hh, {info.activations.get('h', '?')}'"
    if info.split is not None:
        return f"carry {info.carry or '?'}, hidden W_hh"
    return "not declared"
