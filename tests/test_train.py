"""The training loop: learning, the two remedies, divergence, stopping, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from bench import train as train_module
from bench.models import ModelSizes, build_model
from bench.tracking.records import result_metrics
from bench.train import TrainConfig, train
from tasks import adding, copy

ADDING = ModelSizes(2, 1, False)


def _adding_task(seq_len: int = 20):
    params = {"seq_len": seq_len, "val_size": 256, "test_size": 256}
    return adding.build(params, seed=0, device=torch.device("cpu"))


def _model(kind: str = "lstm", hidden: int = 32, seed: int = 0, sizes: ModelSizes = ADDING):
    torch.manual_seed(seed)
    return build_model(kind, sizes, hidden_size=hidden)


def test_lstm_beats_the_adding_baseline() -> None:
    task = _adding_task(20)
    result = train(TrainConfig(steps=300, lr=1e-2, eval_every=50), task, _model())
    assert result.status == "completed" and result.steps_done == 300
    assert result.test["mse"] < 0.2 * task.baseline
    assert result.test == result.test_uncapped and result.val_solved == task.solved(result.val)
    assert [row["step"] for row in result.evals] == [50, 100, 150, 200, 250, 300]
    assert len(result.train_loss) == len(result.grad_norm) == 300


def test_copy_runs_with_a_per_step_head() -> None:
    task = copy.build({"seq_len": 5, "val_size": 64, "test_size": 64}, seed=0,
                      device=torch.device("cpu"))
    model = _model("gru", 16, sizes=ModelSizes(10, 10, True))
    result = train(TrainConfig(steps=30, lr=1e-2, eval_every=10), task, model)
    assert result.status == "completed"
    assert set(result.test) == {"loss", "recall_acc"}
    assert result.train_loss[-1] < result.train_loss[0]


def test_deterministic_for_a_seed() -> None:
    task = _adding_task(15)
    cfg = TrainConfig(steps=40, lr=3e-3, eval_every=20, seed=7)
    first = train(cfg, task, _model(seed=1))
    second = train(cfg, task, _model(seed=1))
    assert first.train_loss == second.train_loss and first.test == second.test
    other = train(TrainConfig(steps=40, lr=3e-3, eval_every=20, seed=8), task, _model(seed=1))
    assert other.train_loss != first.train_loss


@pytest.mark.parametrize(("kind", "optimizer", "lr"), [("irnn", "sgd", 1e4), ("rnn", "sgd", 1e3)])
def test_huge_learning_rate_is_a_diverged_result(kind: str, optimizer: str, lr: float) -> None:
    result = train(TrainConfig(steps=200, lr=lr, optimizer=optimizer), _adding_task(),
                   _model(kind, 16))
    assert result.status == "diverged"
    assert result.diverged_at is not None and 1 <= result.diverged_at < 200
    assert result.steps_done == result.diverged_at
    assert not math.isfinite(result.train_loss[-1]) or not math.isfinite(result.grad_norm[-1])
    assert all(math.isfinite(v) for v in result.train_loss[:-1])
    assert "diverged at step" in result.describe() and result.reason
    # Divergence is scored, not dropped: the trivial predictor's test metrics, marked so.
    assert result.test == result.baseline_test and result.test_from == "trivial"
    assert result.test["mse"] == pytest.approx(float(((_adding_task().split("test")[1] - 1) ** 2)
                                                     .mean()))
    assert not result.solved and result.val == {}
    quiet = train(TrainConfig(steps=200, lr=lr, optimizer=optimizer, test=False),
                  _adding_task(), _model(kind, 16))
    assert quiet.status == "diverged" and quiet.test == {} and quiet.baseline_test == {}


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the global norm of the gradients it is asked to apply."""

    applied: list[float] = []

    def step(self, closure=None):  # type: ignore[override]
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        _RecordingAdam.applied.append(float(norm))
        return super().step(closure)


def test_the_applied_norm_is_min_of_the_norm_and_tau(monkeypatch: pytest.MonkeyPatch) -> None:
    """At every step the optimizer gets gradients of norm min(norm, tau): clipped to tau
    exactly (not below it) when above, untouched when below."""
    monkeypatch.setitem(train_module.OPTIMIZERS, "adam", _RecordingAdam)
    _RecordingAdam.applied = []
    tau = 0.05
    cfg = TrainConfig(steps=60, lr=1e-2, clipping="norm", hparams={"clip": tau})
    result = train(cfg, _adding_task(), _model("rnn", 32))
    assert len(_RecordingAdam.applied) == 60
    # tau / (norm + 1e-6) scales to tau within 1e-6 / tau = 2e-5
    assert _RecordingAdam.applied == pytest.approx([min(n, tau) for n in result.grad_norm],
                                                   rel=1e-4)
    assert any(n > tau for n in result.grad_norm)  # the norms before clipping were larger
    assert any(n < tau for n in result.grad_norm)  # and some below: left as they are
    assert result.clipped == [n > tau for n in result.grad_norm]
    assert 0 < result.clip_rate <= 1
    _RecordingAdam.applied = []
    train(TrainConfig(steps=60, lr=1e-2), _adding_task(), _model("rnn", 32))
    assert max(_RecordingAdam.applied) > tau  # without clipping they are applied as they are


def test_on_eval_can_stop_the_run() -> None:
    seen: list[int] = []

    def stop_at_second(step: int, metrics) -> bool:
        seen.append(step)
        assert "loss" in metrics and "mse" in metrics
        return len(seen) == 2

    result = train(TrainConfig(steps=100, eval_every=10), _adding_task(), _model("gru", 8),
                   on_eval=stop_at_second)
    assert result.status == "stopped" and result.steps_done == 20 and seen == [10, 20]
    assert result.test  # a stopped run is still evaluated


def test_bad_settings_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="steps=-5"):
        TrainConfig(steps=-5)
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        TrainConfig(optimizer="lbfgs")


def test_a_run_without_the_test_split_never_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    task = _adding_task()
    read: list[str] = []
    split = task.split
    monkeypatch.setattr(task, "split", lambda name: read.append(name) or split(name))
    result = train(TrainConfig(steps=20, eval_every=10, test=False), task, _model("gru", 8))
    assert result.status == "completed" and result.val and result.test == {}
    assert "test" not in read and not result.solved and result.baseline_test == {}
    assert result.baseline_val["mse"] == pytest.approx(float(((split("val")[1] - 1) ** 2).mean()))


def test_steps_to_solve_and_stop_when_solved() -> None:
    task = _adding_task(10)
    cfg = TrainConfig(steps=600, lr=1e-2, eval_every=20)
    full = train(cfg, task, _model("lstm", 32))
    assert full.solved_at is not None and full.solved_at % 20 == 0
    assert full.solved_at == next(int(r["step"]) for r in full.evals if r["mse"] < 0.01)
    early = train(TrainConfig(steps=600, lr=1e-2, eval_every=20, stop_when_solved=True), task,
                  _model("lstm", 32))
    assert early.status == "completed" and early.solved_at == full.solved_at
    assert early.steps_done == full.solved_at + 20 < 600  # solved at two evaluations in a row
    assert early.val and early.test and [r["step"] for r in early.evals][-1] == early.steps_done


def test_warmup_raises_the_learning_rate_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    rates: list[float] = []

    class _Adam(torch.optim.Adam):
        def step(self, closure=None):  # type: ignore[override]
            rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setitem(train_module.OPTIMIZERS, "adam", _Adam)
    train(TrainConfig(steps=6, lr=4e-3, eval_every=10, warmup_steps=4), _adding_task(),
          _model("gru", 8))
    assert rates == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3, 4e-3, 4e-3])


def _blown_up(bias: float):
    """An LSTM whose output sits at ``bias``: a finite run far worse than the mean."""
    model = _model("lstm", 8)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(bias)
    return model


def test_a_finite_blow_up_is_diverged_and_scores_as_the_trivial_predictor() -> None:
    task = _adding_task(10)
    cfg = TrainConfig(steps=4, lr=1e-12, eval_every=2, optimizer="sgd")
    result = train(cfg, task, _blown_up(100.0))  # mse ~ 1e4, the trivial's ~0.17
    assert result.status == "diverged" and result.diverged_at == result.steps_done == 4
    assert result.reason is not None and "10 x the trivial predictor's" in result.reason
    # Worth the mean, as a NaN run is; the measured value is kept beside.
    assert result.test == result.baseline_test and result.test_from == "trivial"
    assert result.test_uncapped["mse"] > 1e3 and not result.solved and not result.val_solved
    recorded = {key: value for key, value, _ in result_metrics(result, task)}
    assert recorded["test/mse"] == result.baseline_test["mse"]
    assert recorded["uncapped/test_mse"] == result.test_uncapped["mse"]
    nan = train(TrainConfig(steps=200, lr=1e4, optimizer="sgd"), task, _model("irnn", 16))
    assert nan.status == "diverged" and nan.test == result.test  # no worse than NaN
    # Below the factor it completes, its score capped at the trivial predictor's.
    tame = train(TrainConfig(steps=4, lr=1e-12, eval_every=2, optimizer="sgd",
                             diverge_factor=math.inf), task, _blown_up(100.0))
    assert tame.status == "completed" and tame.test_from == "model"
    assert tame.test == {"loss": tame.baseline_test["loss"], "mse": tame.baseline_test["mse"]}
    assert tame.test_uncapped["mse"] == result.test_uncapped["mse"]
    with pytest.raises(ValueError, match="diverge_factor"):
        TrainConfig(diverge_factor=0.5)
