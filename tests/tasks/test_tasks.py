"""The synthetic tasks against hand recomputation, Monte Carlo baselines and seeding."""

from __future__ import annotations

import math

import pytest
import torch

from tasks import adding, copy, make_generator


def _gen(seed: int = 0) -> torch.Generator:
    return make_generator(seed, torch.device("cpu"))


@pytest.mark.parametrize("seq_len", [2, 7, 50, 101])
def test_adding_batch_markers_and_targets(seq_len: int) -> None:
    x, y = adding.make_batch(512, seq_len, _gen(), torch.device("cpu"))
    assert x.shape == (512, seq_len, 2) and y.shape == (512, 1)
    values, marker = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(marker.sum(1), torch.full((512,), 2.0))
    half = seq_len // 2
    assert torch.equal(marker[:, :half].sum(1), torch.ones(512))  # one in the first half
    assert torch.equal(marker[:, half:].sum(1), torch.ones(512))  # one in the second half
    for i in range(0, 512, 97):  # targets recomputed by hand, example by example
        marked = [float(values[i, t]) for t in range(seq_len) if marker[i, t] == 1]
        assert y[i, 0].item() == pytest.approx(sum(marked), abs=1e-6)


def test_adding_marker_positions_cover_both_halves_uniformly() -> None:
    x, _ = adding.make_batch(20_000, 10, _gen(3), torch.device("cpu"))
    counts = x[..., 1].sum(0)  # (T,): how often each step is marked
    assert torch.allclose(counts / 20_000, torch.full((10,), 0.2), atol=0.02)


def test_adding_baseline_by_monte_carlo() -> None:
    _, y = adding.make_batch(200_000, 20, _gen(1), torch.device("cpu"))
    mse_of_one = float(((y - 1.0) ** 2).mean())
    assert mse_of_one == pytest.approx(adding.BASELINE_MSE, abs=0.003)
    assert adding.BASELINE_MSE == pytest.approx(1 / 6)


def test_copy_layout_by_hand() -> None:
    seq_len = 6
    x, y = copy.make_batch(64, seq_len, _gen(), torch.device("cpu"))
    length = seq_len + 20
    assert x.shape == (64, length, 10) and y.shape == (64, length)
    assert torch.equal(x.sum(-1), torch.ones(64, length))  # one-hot
    symbols = x.argmax(-1)
    data = symbols[:, :10]
    assert ((data >= 1) & (data <= 8)).all()
    assert (symbols[:, 10 : 10 + seq_len - 1] == 0).all()  # T - 1 blanks
    assert (symbols[:, 10 + seq_len - 1] == 9).all()  # the delimiter
    assert (symbols[:, -10:] == 0).all()
    assert (y[:, : seq_len + 10] == 0).all()  # T + 10 blanks
    assert torch.equal(y[:, -10:], data)  # then the data, in order


def test_copy_baseline_is_the_memoryless_strategy() -> None:
    seq_len = 30
    _, y = copy.make_batch(4096, seq_len, _gen(2), torch.device("cpu"))
    # Memoryless: certain blanks for T + 10 steps, then uniform over the 8 data symbols.
    logits = torch.full((4096, seq_len + 20, 10), -1e9)
    logits[:, : seq_len + 10, 0] = 0.0
    logits[:, -10:, 1:9] = 0.0
    task = copy.build({"seq_len": seq_len}, seed=0, device=torch.device("cpu"))
    assert float(task.loss(logits, y)) == pytest.approx(copy.baseline_loss(seq_len), rel=1e-5)
    assert copy.baseline_loss(100) == pytest.approx(10 * math.log(8) / 120)
    assert copy.baseline_loss(100) == pytest.approx(0.1733, abs=1e-4)


def test_copy_metric_and_solved_rule() -> None:
    task = copy.build({"seq_len": 5}, seed=0, device=torch.device("cpu"))
    _, y = task.split("val")
    perfect = torch.nn.functional.one_hot(y, 10).float() * 20
    metrics = task.evaluate(perfect, y)
    assert metrics["recall_acc"] == 1.0 and task.solved(metrics)
    wrong = perfect.clone()
    wrong[:, -10:] = perfect[:, -10:].roll(1, dims=-1)
    assert task.evaluate(wrong, y)["recall_acc"] == 0.0


def test_adding_metric_and_solved_rule() -> None:
    task = adding.build({"seq_len": 10}, seed=0, device=torch.device("cpu"))
    _, y = task.split("test")
    assert task.solved(task.evaluate(y + 0.05, y))  # MSE 0.0025
    assert not task.solved(task.evaluate(torch.ones_like(y), y))


@pytest.mark.parametrize("module", [adding, copy])
def test_splits_fixed_per_seed_and_distinct(module) -> None:
    cpu = torch.device("cpu")
    a = module.build({"seq_len": 12, "val_size": 50, "test_size": 60}, seed=4, device=cpu)
    b = module.build({"seq_len": 12, "val_size": 50, "test_size": 60}, seed=4, device=cpu)
    c = module.build({"seq_len": 12, "val_size": 50, "test_size": 60}, seed=5, device=cpu)
    assert torch.equal(a.split("val")[0], b.split("val")[0])
    assert torch.equal(a.split("test")[1], b.split("test")[1])
    assert a.split("val")[0].shape[0] == 50 and a.split("test")[0].shape[0] == 60
    assert not torch.equal(a.split("val")[0], c.split("val")[0])
    assert not torch.equal(a.split("val")[0][:50], a.split("test")[0][:50])
    train_x, _ = a.train_batch(50, a.train_generator(seed=4))
    assert not torch.equal(train_x, a.split("val")[0])
    again, _ = b.train_batch(50, b.train_generator(seed=4))
    assert torch.equal(train_x, again)


@pytest.mark.parametrize(
    ("module", "params", "message"),
    [
        (adding, {"seq_len": 1}, "tasks.adding.seq_len: the adding task needs seq_len >= 2"),
        (copy, {"seq_len": 0}, "tasks.copy.seq_len: the copy task needs seq_len >= 1"),
        (adding, {"seq_len": 10, "bogus": 1}, "tasks.adding.bogus: unknown key"),
        (copy, {"seq_len": "10"}, "tasks.copy.seq_len: expected an integer"),
        (adding, {"seq_len": 10, "val_size": 0}, "tasks.adding.val_size: must be >= 1"),
    ],
)
def test_bad_task_params_name_the_key(module, params, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        module.build(params, seed=0, device=torch.device("cpu"))


def test_the_trivial_predictor_is_measured_on_the_fixed_sets() -> None:
    from tasks import build, trivial_metrics

    cpu = torch.device("cpu")
    adding = build("adding", {"seq_len": 10, "val_size": 500, "test_size": 800}, seed=0,
                   device=cpu)
    test = trivial_metrics(adding, "test")
    y = adding.split("test")[1]
    assert test["mse"] == pytest.approx(float(((y - 1) ** 2).mean()))
    assert abs(test["mse"] - 1 / 6) < 0.03 and test != trivial_metrics(adding, "val")
    recall = build("copy", {"seq_len": 10, "val_size": 500, "test_size": 800}, seed=0,
                   device=cpu)
    test = trivial_metrics(recall, "test")
    assert test["loss"] == pytest.approx(10 * math.log(8) / 30, rel=1e-5)  # exactly memoryless
    assert abs(test["recall_acc"] - 1 / 8) < 0.03  # the first data symbol, about 1/8 of them
