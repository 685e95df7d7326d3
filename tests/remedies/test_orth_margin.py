"""``orth-margin``: every singular value of every gate block of W_hh within ``1 +- m`` after
every step of real training runs, nothing changed (and no step counted as clipped) where the
margin already holds, and nothing but W_hh touched."""

from __future__ import annotations

import pytest
import torch

from bench.models import ModelSizes, RecurrentModel, build_model
from bench.remedies import orth_margin
from bench.train import TrainConfig, train
from tasks import adding

ADDING = ModelSizes(2, 1, False)
TOL = 1e-5  # float32 rounding of a projected 24 x 24 block, with room to spare


def _model(kind: str, hidden: int = 24, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    return build_model(kind, ADDING, hidden_size=hidden)


def _blocks(model: RecurrentModel) -> torch.Tensor:
    w = model.recurrent_weight().detach()
    return w.view(len(model.info.blocks), w.shape[1], w.shape[1])


def _singular_values(model: RecurrentModel) -> torch.Tensor:
    """Every block's singular values, from float64 ``svdvals`` (k, H)."""
    return torch.linalg.svdvals(_blocks(model).double())


def _with_singular_values(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A float32 (H, H) matrix with the given singular values and random singular vectors."""
    generator = torch.Generator().manual_seed(seed)
    h = values.numel()
    u, _ = torch.linalg.qr(torch.randn(h, h, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(h, h, generator=generator, dtype=torch.float64))
    return (u @ torch.diag(values.double()) @ v.T).float()


class _SpectrumCheck:
    """Observer: before every step but the first (so after the previous step's projection)
    and at the end, the singular values of every gate block of W_hh."""

    def __init__(self) -> None:
        self.spectra: list[torch.Tensor] = []

    def on_step(self, step: int, model: RecurrentModel) -> None:
        if step > 0:
            self.spectra.append(_singular_values(model))

    def on_end(self, step: int, model: RecurrentModel, result) -> None:  # noqa: ANN001
        self.spectra.append(_singular_values(model))


@pytest.mark.parametrize(("kind", "optimizer", "lr", "margin"),
                         [("rnn", "adam", 3e-2, 0.05), ("rnn", "sgd", 1e-1, 0.0),
                          ("lstm", "adam", 3e-2, 0.05), ("gru", "rmsprop", 1e-2, 0.2)])
def test_every_singular_value_stays_within_the_margin_after_every_step(
    kind: str, optimizer: str, lr: float, margin: float
) -> None:
    steps = 40
    check = _SpectrumCheck()
    cfg = TrainConfig(steps=steps, lr=lr, optimizer=optimizer, clipping="orth-margin",
                      hparams={"margin": margin}, eval_every=steps)
    task = adding.build({"seq_len": 20, "val_size": 64, "test_size": 64}, seed=0,
                        device=torch.device("cpu"))
    model = _model(kind)
    result = train(cfg, task, model, observer=check)
    assert result.status == "completed"
    assert len(check.spectra) == steps  # after steps 1 .. steps - 1, and at the end
    spectra = torch.stack(check.spectra)  # (steps, blocks, H)
    assert spectra.shape[1] == len(model.info.blocks)
    assert float(spectra.max()) <= 1 + margin + TOL
    assert float(spectra.min()) >= 1 - margin - TOL
    # active: the optimizer pushed some block out at every step, and it sits on the bound
    assert result.clip_rate == 1.0
    assert float(spectra.max()) >= 1 + margin - 1e-3 or float(spectra.min()) <= 1 - margin + 1e-3


def test_the_projection_clamps_the_singular_values_and_keeps_the_singular_vectors() -> None:
    values = torch.tensor([0.5, 0.95, 1.0, 1.04, 1.5, 3.0])
    block = _with_singular_values(values)
    clamped, outside = orth_margin.clamp_singular_values(block.unsqueeze(0), 0.05)
    assert outside.tolist() == [True]
    u, s, vh = torch.linalg.svd(block.double())
    expected = u @ torch.diag(s.clamp(0.95, 1.05)) @ vh  # the same U and V
    assert torch.allclose(clamped[0].double(), expected, atol=1e-6)
    assert torch.allclose(torch.linalg.svdvals(clamped[0].double()),
                          torch.tensor([1.05, 1.05, 1.04, 1.0, 0.95, 0.95], dtype=torch.float64),
                          atol=1e-6)
    again, outside_again = orth_margin.clamp_singular_values(clamped, 0.05)
    assert outside_again.tolist() == [False] and torch.equal(again, clamped)  # idempotent
    # m = 0: the orthogonal factor of the polar decomposition, U V^T
    orthogonal, _ = orth_margin.clamp_singular_values(block.unsqueeze(0), 0.0)
    assert torch.allclose(orthogonal[0].double(), u @ vh, atol=1e-6)


def test_a_margin_that_holds_leaves_w_hh_unchanged_and_is_not_counted() -> None:
    model = _model("lstm", 16)
    with torch.no_grad():
        for i, block in enumerate(_blocks(model)):  # singular values 0.97 .. 1.03 in 4 blocks
            block.copy_(_with_singular_values(torch.linspace(0.97, 1.03, 16), seed=i))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        flag = orth_margin.project(model, {"margin": 0.05}, 1e-3)
    assert not bool(flag)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


def test_only_the_blocks_outside_the_margin_change_and_nothing_else() -> None:
    model = _model("gru", 16)
    hidden = 16
    with torch.no_grad():
        blocks = _blocks(model)
        blocks[0].copy_(_with_singular_values(torch.linspace(0.99, 1.01, hidden), seed=1))
        blocks[2].copy_(_with_singular_values(torch.linspace(0.99, 1.01, hidden), seed=2))
        blocks[1].mul_(3.0)  # the GRU's second gate block, far outside
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        flag = orth_margin.project(model, {"margin": 0.1}, 1e-3)
    assert bool(flag)
    for name, p in model.named_parameters():
        if name != "rnn.weight_hh_l0":
            assert torch.equal(p.detach(), before[name]), name
    old = before["rnn.weight_hh_l0"].view(3, hidden, hidden)
    new = _blocks(model)
    assert torch.equal(new[0], old[0]) and torch.equal(new[2], old[2])
    assert not torch.equal(new[1], old[1])
    assert float(_singular_values(model)[1].max()) <= 1.1 + TOL


def test_a_diverged_block_is_left_to_the_training_loop() -> None:
    blocks = torch.stack([_with_singular_values(torch.full((8,), 2.0)), torch.eye(8) * 3.0])
    blocks[1, 2, 3] = float("nan")
    clamped, outside = orth_margin.clamp_singular_values(blocks, 0.1)
    assert outside.tolist() == [True, False]
    assert torch.equal(clamped[1].nan_to_num(7.0), blocks[1].nan_to_num(7.0))  # left as it is
    assert torch.allclose(torch.linalg.svdvals(clamped[0].double()),
                          torch.full((8,), 1.1, dtype=torch.float64), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_the_projection_on_cuda_matches_the_cpu(kind: str) -> None:
    cpu = _model(kind, 32)
    gpu = _model(kind, 32).cuda()
    with torch.no_grad():
        cpu_flag = orth_margin.project(cpu, {"margin": 0.01}, 1e-3)
        gpu_flag = orth_margin.project(gpu, {"margin": 0.01}, 1e-3)
    assert bool(cpu_flag) and bool(gpu_flag)
    assert gpu.recurrent_weight().device.type == "cuda"
    assert torch.allclose(gpu.recurrent_weight().detach().cpu(), cpu.recurrent_weight().detach(),
                          atol=1e-5)
    assert float(_singular_values(gpu).max()) <= 1.01 + TOL
