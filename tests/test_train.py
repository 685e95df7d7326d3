"""The training loop: learning, the two remedies, divergence, stopping, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from bench import train as train_module
from bench.models import ModelSizes, build_model
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
    assert result.test == {} and not result.solved


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the global norm of the gradients it is asked to apply."""

    applied: list[float] = []

    def step(self, closure=None):  # type: ignore[override]
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        _RecordingAdam.applied.append(float(norm))
        return super().step(closure)


def test_clipped_norm_never_exceeds_tau(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train_module.OPTIMIZERS, "adam", _RecordingAdam)
    _RecordingAdam.applied = []
    tau = 0.05
    cfg = TrainConfig(steps=60, lr=1e-2, clipping="norm", hparams={"clip": tau})
    result = train(cfg, _adding_task(), _model("rnn", 32))
    assert len(_RecordingAdam.applied) == 60
    assert max(_RecordingAdam.applied) <= tau * (1 + 1e-5)
    assert any(n > tau for n in result.grad_norm)  # the norms before clipping were larger
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
