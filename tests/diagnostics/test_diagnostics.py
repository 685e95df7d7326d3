"""Gradient diagnostics against independent references and invariants.

References: the fused layer's forward (the twin), central finite differences on h_t / c_t in
float64 (the profile), the fused layer's parameter gradients (the group norms), hand-made
profiles (the summaries), known matrices (the spectra) and hand-set models (saturation).
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.diagnostics import (
    Diagnostics,
    GradientDiagnostics,
    every,
    group_grad_norms,
    log_spaced,
    never,
    probe,
    probe_gradients,
    profile,
    recurrent_gain,
    recurrent_spectra,
    saturation_fractions,
    spectral_norm,
    spectral_radius,
    summarize_profile,
    summarize_steps,
    theory_bound,
    unroll,
)
from bench.diagnostics.profiles import example_norms
from bench.models import ModelSizes, RecurrentModel, build_model
from bench.registry import MODELS
from bench.train import TrainConfig, train
from tasks import Task, adding, copy, make_generator

torch.set_num_threads(1)
CPU = torch.device("cpu")
KINDS = MODELS.names()  # every built-in model
F64 = torch.float64


def adding_task(seq_len: int = 10) -> Task:
    return adding.build({"seq_len": seq_len, "val_size": 16, "test_size": 16}, seed=0, device=CPU)


def copy_task(seq_len: int = 4) -> Task:
    return copy.build({"seq_len": seq_len, "val_size": 16, "test_size": 16}, seed=0, device=CPU)


def make_model(
    kind: str, task: Task, *, hidden: int = 8, seed: int = 0, dtype: torch.dtype = F64
) -> RecurrentModel:
    torch.manual_seed(seed)
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    return build_model(kind, sizes, hidden_size=hidden).to(dtype)


def jitter(model: RecurrentModel, scale: float = 0.1, seed: int = 0) -> RecurrentModel:
    """Move the weights off special initial values (irnn: identity, zero biases)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def batch(
    task: Task, size: int = 5, *, seed: int = 1, dtype: torch.dtype = F64
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = task.train_batch(size, make_generator(seed, CPU))
    return x.to(dtype), (y.to(dtype) if y.is_floating_point() else y)


# ----------------------------------------------------------------------------- the twin


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_task", [adding_task, copy_task], ids=["adding", "copy"])
def test_twin_outputs_equal_fused_outputs(kind: str, make_task) -> None:
    task = make_task()
    model = make_model(kind, task, hidden=16, dtype=torch.float32)
    x, _ = batch(task, dtype=torch.float32)
    run = unroll(model, x)
    fused_hidden, _ = model.rnn(x)
    torch.testing.assert_close(run.hidden, fused_hidden, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(run.output, model(x), rtol=1e-5, atol=1e-6)
    assert len(run.hs) == x.shape[1]
    assert len(run.cs) == (x.shape[1] if kind == "lstm" else 0)


def test_twin_shares_parameters_with_the_fused_layer() -> None:
    task = adding_task()
    model = make_model("gru", task)
    x, _ = batch(task)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(1.7)  # the twin must see the change: no copies
    torch.testing.assert_close(unroll(model, x).output, model(x))


# ----------------------------------------------------------------------- profile vs FD


def _directional_fd(model, task, x, y, name: str, t: int, v: torch.Tensor) -> float:
    eps = 1e-5

    def loss(sign: float) -> float:
        run = unroll(model, x, offsets={(name, t): sign * eps * v})
        return float(task.loss(run.output, y).detach())

    return (loss(1.0) - loss(-1.0)) / (2 * eps)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_task", [adding_task, copy_task], ids=["adding", "copy"])
def test_profile_matches_finite_differences(kind: str, make_task) -> None:
    task = make_task()
    model = jitter(make_model(kind, task))
    x, y = batch(task)
    grads = probe_gradients(model, task.loss, x, y)
    gen = torch.Generator().manual_seed(5)
    states = {"h": grads.h, "c": grads.c}
    for name in model.info.state:
        total = states[name]
        assert total is not None
        for t in (0, x.shape[1] // 2, x.shape[1] - 1):
            v = torch.randn(x.shape[0], model.hidden_size, generator=gen, dtype=F64)
            analytic = float((total[:, t] * v).sum())
            numeric = _directional_fd(model, task, x, y, name, t, v)
            assert numeric == pytest.approx(analytic, rel=1e-5, abs=1e-11), (name, t)


def test_profile_is_mean_over_examples_of_per_example_norms() -> None:
    task = adding_task()
    model = make_model("lstm", task)
    x, y = batch(task)
    grads = probe_gradients(model, task.loss, x, y)
    expected = torch.stack([grads.h[b].norm(dim=-1) for b in range(x.shape[0])]).mean(0)
    torch.testing.assert_close(profile(grads.h), expected)


# ------------------------------------------------------------------- the adding trap


@pytest.mark.parametrize("kind", KINDS)
def test_adding_profile_nonzero_where_fused_output_gradient_is_zero(kind: str) -> None:
    """The trap: the gradient on a fused layer's output sequence is only the direct term.

    On the adding task the loss reads the last step only, so that gradient is exactly zero
    for every t < T, while the total derivative through time is not.
    """
    task = adding_task(seq_len=20)
    model = make_model(kind, task, hidden=16, dtype=torch.float32)
    x, y = batch(task, 8, dtype=torch.float32)
    hidden, _ = model.rnn(x)
    (naive,) = torch.autograd.grad(task.loss(model.readout(hidden), y), hidden)
    assert bool((naive[:, :-1] == 0).all())
    assert bool((naive[:, -1] != 0).any())
    norms = profile(probe_gradients(model, task.loss, x, y).h)
    assert bool((norms > 0).all()), norms


# ----------------------------------------------------------------------- the bound


def _scaled(model: RecurrentModel, factor: float) -> RecurrentModel:
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(factor)
    return model


@pytest.mark.parametrize("kind", [m.name for m in MODELS if m.gain is not None])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("factor", [1.0, 3.0])
@pytest.mark.parametrize("make_task", [adding_task, copy_task], ids=["adding", "copy"])
def test_measured_profile_never_exceeds_theory_bound(kind, seed, factor, make_task) -> None:
    task = make_task()
    model = _scaled(jitter(make_model(kind, task, seed=seed), 0.05, seed), factor)
    x, y = batch(task, seed=seed + 10)
    grads = probe_gradients(model, task.loss, x, y)
    gain = recurrent_gain(model)
    assert gain is not None
    bound = theory_bound(example_norms(grads.direct), gain)
    measured = profile(grads.h)
    assert bool((measured <= bound * (1 + 1e-9)).all())
    # Per example too, where the bound is derived.
    per_example = example_norms(grads.h)
    for b in range(x.shape[0]):
        single = theory_bound(example_norms(grads.direct)[b : b + 1], gain)
        assert bool((per_example[b] <= single * (1 + 1e-9)).all())
    if not task.per_step:  # last-step loss: the textbook bound, exact at t = T
        assert float(bound[-1]) == pytest.approx(float(measured[-1]), rel=1e-12)
        lags = torch.arange(x.shape[1] - 1, -1, -1, dtype=F64)
        torch.testing.assert_close(bound, gain**lags * measured[-1])


def test_bound_is_tight_for_a_scaled_identity_with_active_units() -> None:
    """irnn with W_hh = a I and positive pre-activations: every Jacobian is a I."""
    task = adding_task()
    model = make_model("irnn", task)
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(1.3 * torch.eye(model.hidden_size, dtype=F64))
        model.rnn.bias_hh_l0.fill_(1.0)  # keeps every unit active
    x, y = batch(task)
    grads = probe_gradients(model, task.loss, x, y)
    gain = recurrent_gain(model)
    assert gain == pytest.approx(1.3)
    torch.testing.assert_close(profile(grads.h), theory_bound(example_norms(grads.direct), gain))


def test_no_bound_for_gated_cells() -> None:
    assert recurrent_gain(make_model("lstm", adding_task())) is None
    assert recurrent_gain(make_model("gru", adding_task())) is None


# -------------------------------------------------------------------- the summaries


def test_summary_of_exact_geometric_decay() -> None:
    steps, rate = 20, 0.5
    norms = [rate ** (steps - 1 - i) for i in range(steps)]  # lag 0 at the end
    s = summarize_profile(norms)
    assert s.flag == "ok"
    assert s.decay_rate == pytest.approx(math.log10(rate))
    assert s.log10_ratio == pytest.approx((steps - 1) * math.log10(rate))
    assert s.horizon == 9  # 0.5**9 = 2e-3 > 1e-3 > 0.5**10


def test_summary_of_exploding_profile() -> None:
    norms = [2.0 ** (9 - i) for i in range(10)]
    s = summarize_profile(norms)
    assert s.decay_rate == pytest.approx(math.log10(2.0))
    assert s.log10_ratio == pytest.approx(9 * math.log10(2.0))
    assert s.horizon == 9


def test_summary_with_zeros_and_nonfinite_values() -> None:
    s = summarize_profile([0.0, 0.0, 1e-2, 1.0])
    assert s.flag == "has_zeros" and math.isnan(s.log10_ratio)
    assert s.decay_rate == pytest.approx(-2.0)  # fit on the two non-zero points
    assert s.horizon == 1
    for norms, flag in [([0.0, 0.0], "all_zero"), ([1.0, math.nan], "nonfinite"),
                        ([math.inf, 1.0], "nonfinite"), ([], "empty")]:
        s = summarize_profile(norms)
        assert s.flag == flag
        assert all(math.isnan(v) for v in (s.log10_ratio, s.decay_rate, s.horizon))
    s = summarize_profile([1.0, 0.0])
    assert s.flag == "has_zeros" and math.isnan(s.log10_ratio) and math.isnan(s.decay_rate)
    assert s.horizon == 1


def test_step_summary() -> None:
    s = summarize_steps([1.0, 3.0, math.nan, 2.0], [False, True, False, True])
    assert (s.steps, s.n_clipped, s.clip_rate) == (4, 2, 0.5)
    assert (s.n_nonfinite, s.first_nonfinite) == (1, 2)
    assert (s.max_grad_norm, s.median_grad_norm) == (3.0, 2.0)
    empty = summarize_steps([], [])
    assert empty.clip_rate == 0.0 and math.isnan(empty.max_grad_norm)


# ------------------------------------------------------------------ the group norms


@pytest.mark.parametrize("kind", KINDS)
def test_group_norms_add_up_to_the_fused_global_norm(kind: str) -> None:
    task = copy_task()
    model = make_model(kind, task)
    x, y = batch(task)
    named = list(model.named_parameters())
    fused = torch.autograd.grad(task.loss(model(x), y), [p for _, p in named])
    twin = probe_gradients(model, task.loss, x, y).params
    for (name, _), g in zip(named, fused, strict=True):
        torch.testing.assert_close(twin[name], g)  # the twin's parameter gradients too
    groups = group_grad_norms(twin.items())
    assert set(groups) == {"input", "recurrent", "bias", "head"}
    total = torch.stack([g.norm() for g in fused]).norm()
    assert sum(v * v for v in groups.values()) == pytest.approx(float(total) ** 2, rel=1e-10)


# ------------------------------------------------------------------------ the spectra


def test_spectral_norm_and_radius_of_known_matrices() -> None:
    rotation = torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=F64)  # eigenvalues +-2i
    assert spectral_radius(rotation) == pytest.approx(2.0)
    assert spectral_norm(rotation) == pytest.approx(2.0)
    shear = torch.tensor([[0.5, 10.0], [0.0, 0.5]], dtype=F64)  # non-normal
    assert spectral_radius(shear) == pytest.approx(0.5)
    assert spectral_norm(shear) > 10.0
    bad = torch.tensor([[math.nan, 0.0], [0.0, 1.0]], dtype=F64)
    assert math.isnan(spectral_radius(bad)) and math.isnan(spectral_norm(bad))


def test_spectra_per_gate_block() -> None:
    model = make_model("lstm", adding_task(), hidden=4)
    with torch.no_grad():
        for k, scale in enumerate([0.1, 0.2, 0.3, 0.4]):  # i, f, g, o
            model.rnn.weight_hh_l0[4 * k : 4 * (k + 1)] = scale * torch.eye(4, dtype=F64)
    rows = recurrent_spectra(model)
    assert [r[0] for r in rows] == ["i", "f", "g", "o"]
    for (_, norm, radius), scale in zip(rows, [0.1, 0.2, 0.3, 0.4], strict=True):
        assert norm == pytest.approx(scale) and radius == pytest.approx(scale)
    assert [r[0] for r in recurrent_spectra(make_model("gru", adding_task()))] == ["r", "z", "n"]


# ---------------------------------------------------------------------- saturation


def _constant_model(kind: str, bias: list[float]) -> RecurrentModel:
    """Zero weights: every unit sits at its bias, whatever the input."""
    model = make_model(kind, adding_task(), hidden=4)
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.zero_()
        model.rnn.bias_ih_l0.copy_(torch.tensor(bias, dtype=F64))
    return model


def _sat(model: RecurrentModel) -> dict[tuple[str, str], float]:
    x, _ = batch(adding_task())
    rows = saturation_fractions(model.info.activations, unroll(model, x).activations)
    return {(block, measure): value for block, measure, value in rows}


def test_saturation_on_hand_set_models() -> None:
    assert _sat(_constant_model("rnn", [5.0, -5.0, 0.0, 0.1]))[("h", "saturated")] == 0.5
    irnn = _sat(_constant_model("irnn", [1.0, -1.0, -1.0, 1.0]))
    assert irnn[("h", "dead")] == 0.5 and irnn[("h", "inactive")] == 0.5
    gates = [10.0, -10.0, 0.0, 0.0] + [0.0] * 12  # i: one high, one low; f, g, o at 0
    lstm = _sat(_constant_model("lstm", gates))
    assert (lstm[("i", "high")], lstm[("i", "low")], lstm[("i", "saturated")]) == (0.25, 0.25, 0.5)
    assert lstm[("f", "saturated")] == 0.0 and lstm[("g", "saturated")] == 0.0
    gru = _sat(_constant_model("gru", [0.0] * 4 + [-10.0] * 4 + [0.0] * 4))  # z always low
    assert gru[("z", "low")] == 1.0 and gru[("r", "saturated")] == 0.0


# ------------------------------------------------------------------------ schedules


def test_schedules() -> None:
    assert [s for s in range(10) if every(3)(s)] == [0, 3, 6, 9]
    assert [s for s in range(120) if log_spaced(4)(s)] == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100]
    assert [s for s in range(20) if log_spaced(1)(s)] == [0, 1, 10]
    assert not any(never(s) for s in range(10))
    with pytest.raises(ValueError):
        every(0)
    with pytest.raises(ValueError):
        log_spaced(0)


# ------------------------------------------------------------- inside the training loop


def _run(kind: str, observer: GradientDiagnostics | None, **settings):
    task = adding_task(seq_len=12)
    model = make_model(kind, task, dtype=torch.float32)
    cfg = TrainConfig(**{"steps": 7, "batch_size": 8, "eval_every": 3, **settings})
    return train(cfg, task, model, observer=observer), model


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_bit_identical_with_and_without_the_observer(kind: str) -> None:
    settings = {"clipping": "norm", "regularization": "l2", "hparams": {"clip": 0.05, "l2": 1e-3}}
    bare, bare_model = _run(kind, None, **settings)
    state_bare = torch.get_rng_state()
    task = adding_task(seq_len=12)
    observed, observed_model = _run(kind, GradientDiagnostics(task, every(2), probe_size=4),
                                    **settings)
    assert torch.equal(state_bare, torch.get_rng_state())
    assert bare.train_loss == observed.train_loss
    assert bare.grad_norm == observed.grad_norm
    assert bare.clipped == observed.clipped and any(bare.clipped)
    assert bare.val == observed.val and bare.test == observed.test
    for p, q in zip(bare_model.parameters(), observed_model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_observer_result_structure(kind: str) -> None:
    task = adding_task(seq_len=12)
    obs = GradientDiagnostics(task, every(3), probe_size=4)
    result, _ = _run(kind, obs, clipping="norm", hparams={"clip": 0.05})
    diag = result.diagnostics
    assert isinstance(diag, Diagnostics)
    assert diag.probe_steps == [0, 3, 6, 7]  # init, scheduled, after the last update
    kinds = {"rnn": {"h", "bound"}, "lstm": {"h", "c"}}[kind]
    assert {r.kind for r in diag.profiles} == kinds
    assert len(diag.profiles) == 4 * len(kinds) * 12
    assert {r.t for r in diag.profiles} == set(range(1, 13))
    assert len(diag.summaries) == 4 * len(kinds - {"bound"})
    blocks = {"rnn": 1, "lstm": 4}[kind]
    assert len(diag.spectra) == 4 * blocks
    assert {r.step for r in diag.groups if r.source == "train"} == {0, 3, 6}
    assert {r.step for r in diag.groups if r.source == "probe"} == {0, 3, 6, 7}
    for step in (0, 3, 6):  # the training gradient's groups add up to the global norm
        squares = sum(r.norm**2 for r in diag.groups if r.step == step and r.source == "train")
        assert math.sqrt(squares) == pytest.approx(result.grad_norm[step], rel=1e-5)
    assert diag.steps is not None and diag.steps.steps == 7
    assert diag.steps.clip_rate == pytest.approx(result.clip_rate)
    assert diag.steps.n_nonfinite == 0
    tables = diag.tables()
    assert set(tables) == {"profiles", "summaries", "groups", "spectra", "saturation", "factors",
                           "factor_steps", "steps"}
    assert set(tables["profiles"][0]) == {"step", "t", "norm", "kind"}


def test_diverged_run_still_returns_diagnostics() -> None:
    task = adding_task(seq_len=300)
    model = make_model("irnn", task, hidden=8, dtype=torch.float32)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(3.0)  # 3**300 overflows float32: a non-finite loss
        model.rnn.bias_hh_l0.fill_(1.0)
    obs = GradientDiagnostics(task, every(1), probe_size=4)
    result = train(TrainConfig(steps=5, batch_size=4, eval_every=5), task, model, observer=obs)
    assert result.status == "diverged"
    diag = result.diagnostics
    assert diag.steps.n_nonfinite >= 1 and diag.steps.first_nonfinite == 0
    assert all(row.flag != "ok" for row in diag.summaries)


def test_probe_leaves_grads_and_mode_untouched() -> None:
    task = adding_task()
    model = make_model("gru", task)
    model.eval()
    x, y = batch(task)
    task.loss(model(x), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    out = probe(model, task.loss, x, y, step=5)
    assert not model.training
    for p, g in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.grad, g)
    assert {r.step for r in out.profiles} == {5}


def test_copy_also_records_the_profile_of_the_recall_loss_alone() -> None:
    task = copy.build({"seq_len": 6, "val_size": 8, "test_size": 8}, seed=0,
                      device=torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model("rnn", ModelSizes(10, 10, True), hidden_size=8)
    x, y = task.train_batch(4, make_generator(1, torch.device("cpu")))
    out = probe(model, task.loss, x, y, memory_loss=task.memory_loss)
    kinds = {row.kind for row in out.profiles}
    assert {"h", "bound", "h_memory", "bound_memory"} <= kinds
    memory = [row.norm for row in out.profiles if row.kind == "h_memory"]
    grads = probe_gradients(model, task.memory_loss, x, y)
    assert memory == pytest.approx(grads.h.square().sum(dim=-1).sqrt().mean(dim=0).tolist())
    # The recall loss reads the last 10 steps only: no direct term before them, and it is
    # not the full loss (whose blanks dominate).
    assert float(example_norms(grads.direct)[:, :-10].max()) == 0.0
    full = [row.norm for row in out.profiles if row.kind == "h"]
    assert memory != pytest.approx(full)
    summary = {row.kind: row.loss for row in out.summaries}
    assert summary["h_memory"] == pytest.approx(grads.loss) != summary["h"]
    observer = GradientDiagnostics(task, every(100))
    observer.probe(0, model)
    assert "h_memory" in {row.kind for row in observer.diagnostics.profiles}
    plain = GradientDiagnostics(adding.build({"seq_len": 6}, seed=0, device=torch.device("cpu")),
                                every(100))
    plain.probe(0, build_model("rnn", ModelSizes(2, 1, False), hidden_size=8))
    assert "h_memory" not in {row.kind for row in plain.diagnostics.profiles}
