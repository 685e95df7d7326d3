"""Exact values of the split's records, reasons and residual against independent references.

References: autograd's state gradients and the explicit Jacobians of one step of the cell
(``torch.autograd.functional.jacobian``) in float64, hand-built ``Paths`` and ``ProbeGrads``
whose numbers are worked out by hand here, and the documented formulas written out per
sequence and step.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian
from torch.nn import functional as F

from bench.diagnostics import factors, probe, probe_gradients, split_factors, summarize_profile
from bench.diagnostics.paths import (
    Paths,
    _residual,
    log10_mean_factor,
    split_paths,
    unavailable,
)
from bench.diagnostics.profiles import ProbeGrads
from bench.diagnostics.unrolled import layer_weights, unroll
from bench.models import RecurrentModel
from tasks import Task, make_generator
from testkit.tiny import (
    cell_step,
    input_projection,
    tiny_batch,
    tiny_grads,
    tiny_model,
    tiny_task,
)

CPU = torch.device("cpu")
F64 = torch.float64


def _task(name: str, seq_len: int = 5) -> Task:
    return tiny_task(name, seq_len)


def _model(kind: str, task: Task, hidden: int = 4, seed: int = 0) -> RecurrentModel:
    """testkit's tiny model, smaller."""
    return tiny_model(kind, task, hidden, seed)


def _shifted(grads: ProbeGrads, scale: float = 0.05) -> tuple[ProbeGrads, torch.Tensor]:
    """``grads`` with a known offset added to the direct terms (larger at later steps), so
    that every step misses autograd's gradient by exactly that offset."""
    steps = grads.h.shape[1]
    weights = torch.arange(1, steps + 1, dtype=F64).view(1, -1, 1) ** 2
    delta = scale * weights * torch.linspace(-1.0, 1.5, grads.h.shape[-1], dtype=F64)
    delta = delta * torch.tensor([1.0, 0.5, 2.0][: grads.h.shape[0]], dtype=F64).view(-1, 1, 1)
    return dataclasses.replace(grads, direct=grads.direct + delta), delta


def _norm(v: torch.Tensor) -> float:
    return math.sqrt(sum(float(e) ** 2 for e in v.flatten()))


# --------------------------------------------------------------- residual: a known gap


@pytest.mark.parametrize("kind", ["rnn", "irnn", "gru", "lstm"])
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_the_residual_is_the_largest_relative_gap_per_sequence_and_step(
        kind: str, task_name: str) -> None:
    """With the direct terms off by a known delta, the split misses autograd by exactly
    delta at every step: the residual is max ||delta_(t-1)|| / (the sum of the norms of the
    parts), each part taken from the Jacobians of the cell."""
    task = _task(task_name)
    model = _model(kind, task)
    true = tiny_grads(model, task)
    grads, delta = _shifted(true)
    xp, hs = input_projection(model, task), true.states["h"]
    ratios = []
    for b in range(hs.shape[0]):
        cbar = torch.zeros_like(hs[b, 0])
        for s in range(hs.shape[1] - 1, 0, -1):
            g = true.h[b, s]
            injected = grads.direct[b, s - 1]
            gap = _norm(grads.h[b, s - 1] - injected
                        - (true.h[b, s - 1] - true.direct[b, s - 1]))
            assert gap == pytest.approx(_norm(delta[b, s - 1]), rel=1e-9)
            if kind == "lstm":
                cs = true.states["c"]
                (jhh, jhc), (jch, jcc) = jacobian(cell_step(model, xp[b, s]),
                                                  (hs[b, s - 1], cs[b, s - 1]))
                hidden, carry = jhh.T @ g + jch.T @ cbar, jhc.T @ g + jcc.T @ cbar
                o, tanh_c = true.activations["o"][b, s - 1], true.activations["tanh_c"][b, s - 1]
                within = o * (1 - tanh_c**2) * true.h[b, s - 1]
                assert true.c is not None
                parts = [true.h[b, s - 1], injected, hidden, true.c[b, s - 1], within, carry]
                cbar = carry
            else:
                back = jacobian(cell_step(model, xp[b, s]), hs[b, s - 1])[0].T @ g
                if kind == "gru":
                    carry = true.activations["z"][b, s] * g
                    parts = [true.h[b, s - 1], injected, carry, back - carry]
                else:
                    parts = [true.h[b, s - 1], injected, back]
            ratios.append(gap / sum(_norm(p) for p in parts))
    assert split_paths(model, grads).residual == pytest.approx(max(ratios), rel=1e-9)
    assert split_paths(model, true).residual < 1e-13


def test_a_record_that_misses_autograd_reports_its_residual_exactly() -> None:
    """A tanh cell declared ReLU: the split's propagated part is W_hh^T ([h > 0] * g_t); the
    reason and the residual give the relative gap to autograd's, worked out here."""
    task = _task("adding")
    model = _model("rnn", task)
    model.info = dataclasses.replace(model.info, activations={"h": "relu"})
    grads = tiny_grads(model, task)
    w_hh = layer_weights(model).w_hh.detach()
    hs = grads.states["h"]
    ratios = []
    for b in range(hs.shape[0]):
        for s in range(1, hs.shape[1]):
            wrong = w_hh.T @ ((hs[b, s] > 0).to(F64) * grads.h[b, s])
            injected = grads.direct[b, s - 1]
            gap = _norm(grads.h[b, s - 1] - injected - wrong)
            ratios.append(gap / (_norm(grads.h[b, s - 1]) + _norm(injected) + _norm(wrong)))
    expected = max(ratios)
    assert expected > 0.05
    row, steps = split_factors(model, grads, slope=0.25, step=3)
    assert steps == []
    assert row.residual == pytest.approx(expected, rel=1e-9)
    assert row.reason == (f"the record's split 'plain' misses autograd's gradient by a "
                          f"relative {expected:.3g} (tolerance 0.01): it does not describe "
                          f"the cell")
    assert not row.available and row.split == "plain" and row.path == "W_hh, relu'"
    assert row.step == 3 and row.slope == 0.25
    assert row.steps_used == 0 and row.dropped == 0 and row.injected_steps == 0
    for name in ("fprime_log10", "w_hh_log10", "step_log10_ratio", "carry_share"):
        assert math.isnan(getattr(row, name)), name
    # the typical f' is recorded all the same: mean log10 of [h > 0] over the non-zero ones
    assert row.fprime_all_units == 0.0


# ---------------------------------------------------------------------- reasons, names


def test_every_reason_is_spelled_out() -> None:
    task = _task("adding")
    rnn = _model("rnn", task)
    grads = tiny_grads(rnn, task)
    assert unavailable(rnn, grads) == ""
    rnn.info = dataclasses.replace(rnn.info, split=None)
    assert unavailable(rnn, grads) == (
        "the model's record declares no split (ModelInfo.split): its cell's backward step "
        "is not known")
    rnn.info = dataclasses.replace(rnn.info, split="gru")
    assert unavailable(rnn, grads) == ("split 'gru' needs 3 gate block(s) in W_hh, the record "
                                       "has 1")
    rnn.info = dataclasses.replace(rnn.info, split="plain", activations={"h": "softsign"})
    assert unavailable(rnn, grads) == (
        "split 'plain' needs the derivative of activation h ('softsign'), one of tanh, "
        "sigmoid, relu, identity")
    rnn.info = dataclasses.replace(rnn.info, activations={})
    assert unavailable(rnn, grads) == (
        "split 'plain' needs the derivative of activation h (None), one of tanh, sigmoid, "
        "relu, identity")
    no_state = dataclasses.replace(grads, states={})
    assert unavailable(rnn, no_state) == "split 'plain' needs the cell's state h"
    gru = _model("gru", task)
    gru_grads = tiny_grads(gru, task)
    assert unavailable(gru, gru_grads) == ""
    partial = dataclasses.replace(
        gru_grads, activations={"z": gru_grads.activations["z"]}, states={})
    assert unavailable(gru, partial) == "split 'gru' needs the cell's r, n, state h"
    row, steps = split_factors(gru, partial, slope=-0.5, step=2)
    assert steps == [] and not row.available and row.step == 2 and row.slope == -0.5
    assert row.reason == "split 'gru' needs the cell's r, n, state h"
    assert row.split == "gru" and row.path == "carry z, hidden W_hh"
    assert math.isnan(row.residual) and math.isnan(row.fprime_all_units)
    lstm = _model("lstm", task)
    lstm_grads = tiny_grads(lstm, task)
    assert unavailable(lstm, lstm_grads) == ""
    lstm_partial = dataclasses.replace(
        lstm_grads, activations={k: v for k, v in lstm_grads.activations.items()
                                 if k in ("f", "o")},
        states={"h": lstm_grads.states["h"]})
    assert unavailable(lstm, lstm_partial) == (
        "split 'lstm' needs the cell's i, g, tanh_c, state c")
    lstm.info = dataclasses.replace(lstm.info, carry=None)
    assert split_factors(lstm, lstm_grads, 0.0, 0)[0].path == "carry ?, hidden W_hh"


def test_path_names() -> None:
    task = _task("adding")
    rnn, irnn = _model("rnn", task), _model("irnn", task)
    assert factors.path_name(rnn) == "W_hh, tanh'"
    assert factors.path_name(irnn) == "W_hh, relu'"
    rnn.info = dataclasses.replace(rnn.info, activations={})
    assert factors.path_name(rnn) == "W_hh, ?'"
    assert factors.path_name(_model("lstm", task)) == "carry f, hidden W_hh"
    rnn.info = dataclasses.replace(rnn.info, split=None)
    assert factors.path_name(rnn) == "not declared"


# ------------------------------------------------------------------------- log10 means


def test_log10_mean_factor_by_hand() -> None:
    values = torch.tensor([[0.0, 1.0, 10.0], [100.0, math.nan, -1.0]])
    assert log10_mean_factor(values) == (1.0, 0.5)  # (0 + 1 + 2) / 3, 3 of 6
    assert log10_mean_factor(torch.tensor([1e-3, 1e-1])) == (pytest.approx(-2.0), 1.0)
    assert log10_mean_factor(torch.tensor([10.0])) == (1.0, 1.0)
    mean, share = log10_mean_factor(torch.zeros(4))
    assert math.isnan(mean) and share == 0.0
    mean, share = log10_mean_factor(torch.zeros(0))
    assert math.isnan(mean) and share == 0.0
    mean, share = log10_mean_factor(torch.tensor([math.nan, -2.0, 0.001]))
    assert mean == pytest.approx(-3.0) and share == pytest.approx(1 / 3)


# ------------------------------------------------------- the factor tables, hand-worked

INF, NAN = math.inf, math.nan


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


def _factor_rows(monkeypatch: pytest.MonkeyPatch, kind: str, paths: Paths, step: int = 4):  # noqa: ANN202
    """split_factors of a real model whose split is replaced by the hand-made ``paths``."""
    task = _task("adding", 4)
    model = _model(kind, task)
    grads = tiny_grads(model, task)
    assert unavailable(model, grads) == ""
    monkeypatch.setattr(factors, "split_paths", lambda m, g: paths)
    return split_factors(model, grads, slope=-0.125, step=step)


def _same(got: float, want: float) -> bool:
    return (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_plain_factors_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three sequences (rows), three steps (columns), norms chosen as powers of 10. Step 2:
    two steps all kept; step 3: a zero propagated norm and an infinite received one are
    dropped, one sequence left; step 4: nothing left (zero, NaN, infinite norms)."""
    paths = Paths(
        received=_t([[10, 1, 0], [1, INF, NAN], [100, 1, 1]]),
        propagated=_t([[0.1, 0, 0], [10, 1, 1], [10, 0.01, INF]]),
        injected=_t([[0, 0, 0], [0, 0.5, 0], [0, 0, 0]]),
        through=_t([[1, 1, 0], [1, 1, 1], [10, 0.1, 1]]),
        carry=None, hidden=None, residual=0.004, fprime_all_units=-0.25)
    row, steps = _factor_rows(monkeypatch, "rnn", paths)
    # per sequence (f', W_hh, ratio): step 2: (-1, -1, -2), (0, 1, 1), (-1, 0, -1);
    # step 3: (-1, -1, -2) for the last sequence only
    want = [  # t, sequences, f', W_hh, ratio, received, propagated, injected
        (2, 3, -2 / 3, 0.0, -2 / 3, 37.0, 20.1 / 3, 0.0),
        (3, 1, -1.0, -1.0, -2.0, INF, 1.01 / 3, 0.5 / 3),
        (4, 0, NAN, NAN, NAN, NAN, INF, 0.0),
    ]
    assert len(steps) == 3
    for got, (t, n, fp, wh, ratio, rec, prop, inj) in zip(steps, want, strict=True):
        assert got.step == 4 and got.t == t and got.sequences == n
        for name, value in [("fprime_log10", fp), ("w_hh_log10", wh),
                            ("step_log10_ratio", ratio), ("received_norm", rec),
                            ("propagated_norm", prop), ("injected_norm", inj),
                            ("carry_share", NAN), ("carry_norm", NAN), ("hidden_norm", NAN)]:
            assert _same(getattr(got, name), value), (t, name, getattr(got, name), value)
    assert row.available and row.reason == "" and row.split == "plain"
    assert row.step == 4 and row.slope == -0.125 and row.path == "W_hh, tanh'"
    assert row.steps_used == 2 and row.dropped == 5 and row.injected_steps == 1
    assert row.fprime_log10 == pytest.approx(-5 / 6, abs=1e-12)
    assert row.w_hh_log10 == pytest.approx(-0.5, abs=1e-12)
    assert row.step_log10_ratio == pytest.approx(-4 / 3, abs=1e-12)
    assert math.isnan(row.carry_share)
    assert row.residual == 0.004 and row.fprime_all_units == -0.25


def test_gated_factors_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Carry shares ||carry||^2 / (||carry||^2 + ||hidden||^2): 9/25, 1, 16/25 at step 2;
    at step 3 the second sequence's zero propagated norm is dropped (mean of 1/2 and 1)."""
    paths = Paths(
        received=_t([[1, 1], [10, 1], [1, 2]]),
        propagated=_t([[5, 2], [1, 0], [5, 4]]),
        injected=_t([[0, 0.25], [0, 0], [0, 0]]),
        through=None,
        carry=_t([[3, 1], [1, 0], [4, 4]]),
        hidden=_t([[4, 1], [0, 0], [3, 0]]), residual=0.01)
    row, steps = _factor_rows(monkeypatch, "gru", paths, step=9)
    ratio2 = (math.log10(5) + (-1) + math.log10(5)) / 3
    ratio3 = (math.log10(2) + math.log10(2)) / 2
    want = [  # t, sequences, share, ratio, received, propagated, injected, carry, hidden
        (2, 3, (0.36 + 1 + 0.64) / 3, ratio2, 4.0, 11 / 3, 0.0, 8 / 3, 7 / 3),
        (3, 2, 0.75, ratio3, 4 / 3, 2.0, 0.25 / 3, 5 / 3, 1 / 3),
    ]
    for got, (t, n, share, ratio, rec, prop, inj, carry, hidden) in zip(steps, want,
                                                                          strict=True):
        assert got.step == 9 and got.t == t and got.sequences == n
        for name, value in [("carry_share", share), ("step_log10_ratio", ratio),
                            ("received_norm", rec), ("propagated_norm", prop),
                            ("injected_norm", inj), ("carry_norm", carry),
                            ("hidden_norm", hidden), ("fprime_log10", NAN),
                            ("w_hh_log10", NAN)]:
            assert _same(getattr(got, name), value), (t, name, getattr(got, name), value)
    # a residual of exactly the tolerance is still rounding
    assert row.available and row.reason == "" and row.residual == 0.01
    assert row.path == "carry z, hidden W_hh" and row.split == "gru"
    assert row.steps_used == 2 and row.dropped == 1 and row.injected_steps == 1
    assert row.carry_share == pytest.approx(((0.36 + 1 + 0.64) / 3 + 0.75) / 2, abs=1e-12)
    assert row.step_log10_ratio == pytest.approx((ratio2 + ratio3) / 2, abs=1e-12)
    assert math.isnan(row.fprime_log10) and math.isnan(row.w_hh_log10)
    assert math.isnan(row.fprime_all_units)


def test_nothing_kept_gives_nan_means(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths(received=_t([[0, 1]]), propagated=_t([[0, 0]]), injected=_t([[0, 0]]),
                  through=_t([[0, 1]]), carry=None, hidden=None, residual=0.0)
    row, steps = _factor_rows(monkeypatch, "rnn", paths)
    assert row.available and row.steps_used == 0 and row.dropped == 2
    assert row.injected_steps == 0 and row.residual == 0.0
    assert all(math.isnan(getattr(row, k)) for k in ("fprime_log10", "w_hh_log10",
                                                      "step_log10_ratio", "carry_share"))
    assert [s.sequences for s in steps] == [0, 0]
    assert [s.received_norm for s in steps] == [0.0, 1.0]


# ------------------------------------------------------------ the residual's definition


def test_the_residual_by_hand() -> None:
    """Two gap blocks (the LSTM's h and c halves) and two parts, per (sequence, step): step
    1 gap 5 over scale 10; step 2 a gap whose square overflows (not finite: left out) over a
    finite scale; step 3 a scale of exactly float32's tiny / eps (2^-103: left out)."""
    floor = 2.0**-103
    gaps = [_t([[[3, 0], [1e200, 1e200], [floor, 0]]]), _t([[[0, 4], [0, 0], [0, 0]]])]
    parts = [_t([[[6, 8], [1e153, 0], [floor, 0]]]), _t([[[0, 0], [0, 0], [0, 0]]])]
    assert _residual(gaps, parts, torch.float32) == 0.5
    # a step at the float64 floor or a non-finite scale is left out too; none left: 0
    assert _residual([_t([[[1.0], [1.0]]])], [_t([[[1e-293], [INF]]])], F64) == 0.0
    assert _residual([_t([[[1.0], [2.0]]])], [_t([[[4.0], [1e-291]]])], F64) == pytest.approx(2e291)
    assert _residual([_t([[[1.0, 2.0]], [[2.0, 0.0]]])], [_t([[[2.0, 0.0]], [[0.0, 1.0]]]),
                                                         _t([[[0.0, 3.0]], [[3.0, 0.0]]])],
                     F64) == 0.5  # max(sqrt(5) / 5, 2 / 4)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_tiny_gradients_are_checked_down_to_tiny_over_eps(kind: str) -> None:
    """The split is linear in the gradients. Stored in float32 (tiny / eps = 2^-103, about
    1e-31) and scaled by 1e-25, the residual is the unscaled one to float32 rounding; scaled
    by 1e-35 every scale is below 1e-31 and nothing is checked (0)."""
    task = _task("adding")
    model = _model(kind, task)
    grads, _ = _shifted(tiny_grads(model, task))
    want = split_paths(model, grads).residual
    assert want > 0.1

    def scaled(by: float) -> ProbeGrads:
        return dataclasses.replace(grads, h=(grads.h * by).float(),
                                   direct=(grads.direct * by).float(),
                                   c=None if grads.c is None else (grads.c * by).float())

    assert split_paths(model, scaled(1e-25)).residual == pytest.approx(want, rel=1e-5)
    assert split_paths(model, scaled(1e-35)).residual == 0.0


# ---------------------------------------------------------------- plain paths, by hand


def test_plain_paths_against_the_activation_s_jacobian() -> None:
    """Per sequence and step: through = ||J_f^T g_t|| (J_f the Jacobian of tanh at u_t),
    received ||g_t||, injected ||d_(t-1)||; the typical f' is the mean log10 of the diagonal
    of J_f over every unit, step and sequence."""
    task = _task("copy")
    model = _model("rnn", task)
    grads = tiny_grads(model, task)
    paths = split_paths(model, grads)
    w = layer_weights(model)
    xp, hs = input_projection(model, task), grads.states["h"]
    logs = []
    for b in range(hs.shape[0]):
        for s in range(hs.shape[1]):
            previous = hs[b, s - 1] if s else torch.zeros_like(hs[b, 0])
            j_f = jacobian(torch.tanh, xp[b, s] + F.linear(previous, w.w_hh, w.b_hh))
            logs += [math.log10(float(v)) for v in torch.diagonal(j_f)]
            if s == 0:
                continue
            g = grads.h[b, s]
            assert float(paths.through[b, s - 1]) == pytest.approx(_norm(j_f.T @ g), rel=1e-12)
            assert float(paths.received[b, s - 1]) == pytest.approx(_norm(g), rel=1e-12)
            assert float(paths.injected[b, s - 1]) == pytest.approx(
                _norm(grads.direct[b, s - 1]), rel=1e-12)
    assert paths.carry is None and paths.hidden is None
    assert paths.fprime_all_units == pytest.approx(sum(logs) / len(logs), rel=1e-12)


# --------------------------------------------------------------------- probe, by hand


def test_probe_gradients_casts_the_batch_and_zero_fills_unused_parameters() -> None:
    """x and a floating-point y reach the loss in the parameters' dtype (integer targets
    stay integers); a parameter the loss does not read gets a zero gradient."""
    for name, target_dtype in [("adding", F64), ("copy", torch.int64)]:
        task = _task(name)
        model = _model("rnn", task)
        model.unused = nn.Parameter(torch.ones(2, dtype=F64))
        x, y = task.train_batch(3, make_generator(1, CPU))
        seen: list[tuple[torch.dtype, torch.dtype]] = []

        def loss(output: torch.Tensor, target: torch.Tensor, task: Task = task,
                 seen: list = seen) -> torch.Tensor:
            seen.append((output.dtype, target.dtype))
            return task.loss(output, target)

        grads = probe_gradients(model, loss, x.float(), y.float() if y.is_floating_point()
                                else y)
        assert seen == [(F64, target_dtype)]
        assert torch.equal(grads.params["unused"], torch.zeros(2, dtype=F64))
        y64 = y.to(F64) if y.is_floating_point() else y
        assert grads.loss == float(task.loss(model(x.to(F64)), y64).detach())


def test_probe_rows_carry_the_step_the_loss_and_the_source() -> None:
    """Without ``step`` the rows are tagged 0; every summary (h and c of an LSTM) carries the
    task loss on the probe batch, every group row the source ``probe``."""
    task = _task("adding")
    model = _model("lstm", task)
    x, y = tiny_batch(task)
    out = probe(model, task.loss, x, y)
    loss = float(task.loss(model(x), y).detach())
    assert {s.kind for s in out.summaries} == {"h", "c"}
    assert all(s.loss == pytest.approx(loss, rel=1e-12) for s in out.summaries)
    assert all(isinstance(s.flag, str) and s.flag for s in out.summaries)
    for rows in (out.profiles, out.summaries, out.groups, out.spectra, out.saturation,
                 out.factors, out.factor_steps):
        assert rows and {r.step for r in rows} == {0}
    assert {g.source for g in out.groups} == {"probe"}
    # the group norms: the fused model's own parameter gradients, grouped by hand
    model.zero_grad()
    task.loss(model(x), y).backward()
    grad = {name: p.grad for name, p in model.named_parameters()}
    want = {"input": [grad["rnn.weight_ih_l0"]], "recurrent": [grad["rnn.weight_hh_l0"]],
            "bias": [grad["rnn.bias_ih_l0"], grad["rnn.bias_hh_l0"]],
            "head": [g for name, g in grad.items() if name.startswith("head.")]}
    assert [g.group for g in out.groups] == list(want)
    for row in out.groups:
        norm = math.sqrt(sum(_norm(g) ** 2 for g in want[row.group]))
        assert row.norm == pytest.approx(norm, rel=1e-9), row.group
    # each summary is the summary of its recorded profile
    for row in out.summaries:
        profile = [p.norm for p in out.profiles if p.kind == row.kind]
        s = summarize_profile(profile)
        assert (row.log10_ratio, row.decay_rate, row.flag) == (s.log10_ratio, s.decay_rate,
                                                               s.flag)
        assert _same(row.horizon, s.horizon)


# --------------------------------------------------------------------------- the twin


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_the_cell_starts_from_batch_shaped_zero_states(kind: str) -> None:
    """Every step's cell gets a state of (B, H) tensors: zeros at the first step (a cell of
    the record's own may rely on the shape, e.g. concatenate x and h), then the previous
    step's states."""
    task = _task("adding")
    model = _model(kind, task)
    x, _ = tiny_batch(task)
    seen: list[tuple[torch.Tensor, ...]] = []
    cell = model.info.cell

    def recording(xp, state, w, nudge):  # noqa: ANN001, ANN202
        seen.append(tuple(s.detach().clone() for s in state))
        return cell(xp, state, w, nudge)

    model.info = dataclasses.replace(model.info, cell=recording)
    run = unroll(model, x)
    zeros = torch.zeros(x.shape[0], model.hidden_size, dtype=F64)
    assert len(seen) == x.shape[1] and len(seen[0]) == len(model.info.state)
    assert all(torch.equal(s, zeros) for s in seen[0])
    for t in range(1, x.shape[1]):
        assert torch.equal(seen[t][0], run.hs[t - 1].detach())
        if kind == "lstm":
            assert torch.equal(seen[t][1], run.cs[t - 1].detach())
