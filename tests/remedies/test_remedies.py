"""Each remedy changes what it must and nothing else; the typical f' (not the exact split:
tests/diagnostics/test_factors.py) on known values."""

from __future__ import annotations

import pytest
import torch

from bench import train as train_module
from bench.diagnostics.paths import log10_mean_factor
from bench.models import ModelSizes, build_model
from bench.remedies import l2, l2_all, norm, value, weight
from bench.train import TrainConfig, train
from tasks import adding

ADDING = ModelSizes(2, 1, False)


def _task(seq_len: int = 20):
    params = {"seq_len": seq_len, "val_size": 64, "test_size": 64}
    return adding.build(params, seed=0, device=torch.device("cpu"))


def _model(kind: str = "rnn", hidden: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(kind, ADDING, hidden_size=hidden)


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --------------------------------------------------------------------------- regularization


def test_l2_penalises_w_hh_only_and_l2_all_every_weight_matrix() -> None:
    model = _model("lstm", 8)
    params = dict(model.named_parameters())
    w_hh = float(params["rnn.weight_hh_l0"].detach().square().sum())
    every = sum(float(p.detach().square().sum()) for n, p in params.items() if "weight" in n)
    with torch.no_grad():
        assert float(l2.penalty(model, {"l2": 1.0})) == pytest.approx(w_hh, rel=1e-6)
        assert float(l2_all.penalty(model, {"l2": 1.0})) == pytest.approx(every, rel=1e-6)


def test_l2_touches_only_the_gradient_of_w_hh() -> None:
    model = _model("gru", 4)
    before = _weights(model)
    x = _task().split("val")[0][:2]
    loss = 0.0 * model(x).sum() + l2.penalty(model, {"l2": 0.1})  # no task gradient
    loss.backward()
    for name, p in model.named_parameters():
        expected = 0.2 * before[name] if name == "rnn.weight_hh_l0" else torch.zeros_like(p)
        assert torch.allclose(p.grad, expected), name


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_decay_at_lambda_zero_is_no_remedy_step_for_step(optimizer: str) -> None:
    cfg = dict(steps=30, lr=3e-3, optimizer=optimizer, eval_every=30)
    plain, decayed = _model("lstm"), _model("lstm")
    first = train(TrainConfig(**cfg), _task(), plain)
    second = train(TrainConfig(regularization="decay", hparams={"decay": 0.0}, **cfg), _task(),
                   decayed)
    assert first.train_loss == second.train_loss
    for (name, a), b in zip(_weights(plain).items(), _weights(decayed).values(), strict=True):
        assert torch.equal(a, b), name


def test_decay_shrinks_w_hh_outside_the_adaptive_step() -> None:
    """One Adam step: the decayed run's W_hh is the plain run's times (1 - lr * lambda),
    every other parameter identical (AdamW's form; an L2 penalty would go through Adam)."""
    lr, lam = 1e-2, 5.0
    cfg = dict(steps=1, lr=lr, eval_every=1)
    plain, decayed = _model("rnn"), _model("rnn")
    train(TrainConfig(**cfg), _task(), plain)
    train(TrainConfig(regularization="decay", hparams={"decay": lam}, **cfg), _task(), decayed)
    for (name, a), b in zip(_weights(plain).items(), _weights(decayed).values(), strict=True):
        expected = a * (1 - lr * lam) if name == "rnn.weight_hh_l0" else a
        assert torch.allclose(b, expected, atol=1e-7), name


# --------------------------------------------------------------------------- clipping


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the largest gradient entry it is asked to apply."""

    largest: list[float] = []

    def step(self, closure=None):  # type: ignore[override]
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        _RecordingAdam.largest.append(max(float(g.abs().max()) for g in grads))
        return super().step(closure)


def test_value_clipping_bounds_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train_module.OPTIMIZERS, "adam", _RecordingAdam)
    _RecordingAdam.largest = []
    tau = 1e-3
    cfg = TrainConfig(steps=40, lr=1e-2, clipping="value", hparams={"clip_value": tau})
    result = train(cfg, _task(), _model("rnn", 32))
    assert len(_RecordingAdam.largest) == 40
    assert max(_RecordingAdam.largest) <= float(torch.tensor(tau))  # tau in float32
    assert 0 < result.clip_rate <= 1
    # the flag says whether some entry was beyond tau, measured before the clamp
    grads = [torch.tensor([[0.5, -2.0]]), torch.tensor([0.1])]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    assert bool(value.clip(params, torch.tensor(0.0), {"clip_value": 1.0}))
    assert params[0].grad.tolist() == [[0.5, -1.0]] and torch.equal(params[1].grad, grads[1])
    assert not bool(value.clip(params, torch.tensor(0.0), {"clip_value": 1.0}))


@pytest.mark.parametrize(("tau", "scale"), [(2.0, 2.0 / (5.0 + 1e-6)), (10.0, 1.0)])
def test_norm_clipping_rescales_to_tau_exactly_when_above(tau: float, scale: float) -> None:
    """Gradients (3, 0) and (0, 4): global norm 5. Above tau every entry is scaled by
    tau / (5 + 1e-6), so the norm becomes tau; below tau nothing changes."""
    grads = [torch.tensor([3.0, 0.0], dtype=torch.float64),
             torch.tensor([[0.0], [4.0]], dtype=torch.float64)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clipped = norm.clip(params, torch.tensor(5.0, dtype=torch.float64), {"clip": tau})
    assert bool(clipped) == (tau < 5.0)
    for p, g in zip(params, grads, strict=True):
        assert torch.equal(p.grad, g * scale)
    after = sum(float(p.grad.square().sum()) for p in params) ** 0.5
    assert after == pytest.approx(min(5.0, tau), rel=1e-6)


class _SpectralCheck:
    """Observer: before every step (so after the previous step's projection) and at the
    end, the exact spectral norm of every gate block of W_hh."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def record(self, model) -> None:
        w = model.recurrent_weight().detach().double()
        blocks = w.view(len(model.info.blocks), w.shape[1], w.shape[1])
        self.norms.extend(torch.linalg.matrix_norm(blocks, ord=2).tolist())

    def on_step(self, step: int, model) -> None:
        if step > 0:
            self.record(model)

    def on_end(self, step: int, model, result) -> None:
        self.record(model)


@pytest.mark.parametrize(("kind", "optimizer", "lr"),
                         [("rnn", "adam", 3e-2), ("irnn", "sgd", 1e-1), ("lstm", "adam", 3e-2),
                          ("gru", "rmsprop", 1e-2)])
def test_weight_clipping_keeps_every_block_at_spectral_norm_tau(
    kind: str, optimizer: str, lr: float
) -> None:
    tau = 0.8
    check = _SpectralCheck()
    cfg = TrainConfig(steps=60, lr=lr, optimizer=optimizer, clipping="weight",
                      hparams={"w_max": tau}, eval_every=60)
    model = _model(kind, 24)
    result = train(cfg, _task(), model, observer=check)
    assert result.status == "completed"
    blocks = len(model.info.blocks)
    assert len(check.norms) == 60 * blocks
    assert max(check.norms) <= tau * (1 + 1e-5)  # checked against matrix_norm
    assert max(check.norms) >= tau * (1 - 1e-3)  # active: some block sits on the bound
    assert result.clip_rate > 0


def test_weight_clipping_leaves_small_blocks_and_other_parameters_alone() -> None:
    model = _model("lstm", 8)
    with torch.no_grad():
        model.recurrent_weight().mul_(0.01)  # every block far below tau
    before = _weights(model)
    with torch.no_grad():
        flag = weight.project(model, {"w_max": 1.0}, 1e-3)
    assert not bool(flag)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


def test_spectral_norms_are_exact_and_never_raise() -> None:
    generator = torch.Generator().manual_seed(3)
    blocks = torch.randn(4, 30, 30, generator=generator)
    exact = torch.linalg.matrix_norm(blocks.double(), ord=2)
    assert torch.allclose(weight.spectral_norms(blocks).double(), exact, rtol=1e-6)
    blocks[1, 2, 3] = float("nan")  # a diverged model: a result for the loop, not a crash
    assert torch.isfinite(weight.spectral_norms(blocks)).all()


# --------------------------------------------------------------------------- the typical f'


def test_log10_mean_factor_is_the_mean_log_of_the_nonzero_entries() -> None:
    value, fraction = log10_mean_factor(torch.tensor([1.0, 0.01, 0.0, float("nan")]))
    assert fraction == 0.5
    assert value == pytest.approx((0.0 + -2.0) / 2)


@pytest.mark.slow
def test_the_remedies_benchmark_prints_a_row_per_remedy() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "remedies.py"
    out = subprocess.run([sys.executable, str(script), "clipping", "--seq-len", "5", "--steps",
                          "5", "--seeds", "1", "--lrs", "0.1", "--budget", "300"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("rnn ")]
    assert [row[3] for row in rows] == ["none", "norm", "value", "weight"]
    assert all(row[5].endswith("/1") for row in rows)  # diverged counts out of the seeds


@pytest.mark.slow
def test_the_new_remedies_run_in_a_suite_and_are_recorded(tmp_path) -> None:  # noqa: ANN001
    """decay and weight clipping through the real suite path: tuned params, the clip rate,
    the factors table and metrics in MLflow."""
    import subprocess
    import sys

    from bench.report.results import ResultsSource
    from bench.tracking import default_tracking_uri

    runs = tmp_path / "runs"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "run", "smoke", "--tasks", "adding", "--models", "rnn",
         "--runs-dir", str(runs), "--set", "name=remedies", "--set", "regularization=[decay]",
         "--set", "clipping=[weight,value]"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    source = ResultsSource(default_tracking_uri(runs / "remedies"), "remedies")
    records = [r for r in source.search() if r.tags.get("role") == "final"]
    by_clipping = {r.tags["clipping"]: r for r in records}
    assert set(by_clipping) == {"weight", "value"}
    weight_run, value_run = by_clipping["weight"], by_clipping["value"]
    assert {"decay", "w_max", "lr"} <= set(weight_run.params)
    assert {"decay", "clip_value", "lr"} <= set(value_run.params)
    assert 0.5 <= float(weight_run.params["w_max"]) <= 2.0  # the remedy's default range
    assert "grad/clip_rate" in weight_run.metrics
    factors = source.tables([weight_run.run_id], "diagnostics/factors.csv")
    assert set(factors["step"]) >= {0} and set(factors["path"]) == {"W_hh, tanh'"}
    assert factors["available"].all()
    assert "factors/step_log10_ratio" in weight_run.metrics
    # weight clipping held every probe's W_hh at or below its tau
    spectra = source.tables([weight_run.run_id], "diagnostics/spectra.csv")
    later = spectra[spectra["step"] > 0]
    assert (later["spectral_norm"] <= float(weight_run.params["w_max"]) * (1 + 1e-5)).all()
