"""Models: parameter matching, initialisations, output shapes, device selection."""

from __future__ import annotations

import pytest
import torch

from bench.models import (
    ModelSizes,
    build_model,
    hidden_for_budget,
    n_parameters,
    param_count,
    select_device,
    spread,
)
from bench.registry import MODELS

MODEL_NAMES = MODELS.names()  # every built-in model, orth-rnn included

SIZES = {
    "adding": ModelSizes(2, 1, False),
    "copy": ModelSizes(10, 10, True),
    "har": ModelSizes(9, 6, False),
}


@pytest.mark.parametrize("kind", MODEL_NAMES)
@pytest.mark.parametrize("hidden", [1, 7, 64])
def test_closed_form_count_matches_the_module(kind: str, hidden: int) -> None:
    sizes = SIZES["copy"]
    model = build_model(kind, sizes, hidden_size=hidden)
    assert n_parameters(model) == param_count(kind, sizes, hidden)


@pytest.mark.parametrize("task", sorted(SIZES))
@pytest.mark.parametrize("budget", [2_000, 5_000, 10_000, 50_000])
def test_budget_matches_all_four_models_within_5_percent(task: str, budget: int) -> None:
    counts = [n_parameters(build_model(k, SIZES[task], param_budget=budget)) for k in MODEL_NAMES]
    assert max(counts) / min(counts) <= 1.05, counts  # the four match each other
    assert all(abs(c - budget) / budget <= 0.08 for c in counts), counts  # and the budget


def test_hidden_for_budget_picks_the_closest() -> None:
    sizes = SIZES["adding"]
    lstm = hidden_for_budget("lstm", sizes, 10_000)
    here = abs(param_count("lstm", sizes, lstm) - 10_000)
    assert here <= abs(param_count("lstm", sizes, lstm - 1) - 10_000)
    assert here <= abs(param_count("lstm", sizes, lstm + 1) - 10_000)
    anchor = param_count("lstm", sizes, lstm)  # the others are matched to the LSTM's count
    hidden = hidden_for_budget("rnn", sizes, 10_000)
    here = abs(param_count("rnn", sizes, hidden) - anchor)
    assert here <= abs(param_count("rnn", sizes, hidden - 1) - anchor)
    assert here <= abs(param_count("rnn", sizes, hidden + 1) - anchor)


def test_irnn_is_identity_with_zero_biases() -> None:
    model = build_model("irnn", SIZES["adding"], hidden_size=12)
    assert torch.equal(model.rnn.weight_hh_l0, torch.eye(12))
    assert not model.rnn.bias_ih_l0.any() and not model.rnn.bias_hh_l0.any()
    assert model.rnn.nonlinearity == "relu"
    assert model.rnn.weight_ih_l0.abs().max() < 0.01


def test_lstm_forget_bias_is_one() -> None:
    model = build_model("lstm", SIZES["adding"], hidden_size=5)
    total = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0  # gate order i, f, g, o
    assert torch.equal(total[5:10], torch.ones(5))


def test_rnn_is_tanh() -> None:
    assert build_model("rnn", SIZES["adding"], hidden_size=4).rnn.nonlinearity == "tanh"


@pytest.mark.parametrize("kind", MODEL_NAMES)
def test_heads_last_step_or_every_step(kind: str) -> None:
    x = torch.randn(3, 11, 2)
    assert build_model(kind, SIZES["adding"], hidden_size=6)(x).shape == (3, 1)
    x = torch.randn(3, 11, 10)
    assert build_model(kind, SIZES["copy"], hidden_size=6)(x).shape == (3, 11, 10)


def test_weight_matrices_exclude_biases() -> None:
    model = build_model("gru", SIZES["har"], hidden_size=6)
    shapes = sorted(tuple(p.shape) for p in model.weight_matrices())
    assert shapes == [(6, 6), (18, 6), (18, 9)]


def test_bad_model_requests() -> None:
    with pytest.raises(ValueError, match="unknown model 'transformer'"):
        build_model("transformer", SIZES["adding"], hidden_size=4)
    with pytest.raises(ValueError, match="exactly one"):
        build_model("rnn", SIZES["adding"], hidden_size=4, param_budget=100)
    with pytest.raises(ValueError, match="param_budget must be >= 1"):
        build_model("rnn", SIZES["adding"], param_budget=0)


def test_device_selection() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ValueError, match="CUDA is not available"):
                select_device(name)
        assert select_device("auto", worker=3) == torch.device("cpu")


def test_workers_spread_over_the_gpus() -> None:
    assert [spread(w, 4) for w in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [spread(w, 1) for w in range(3)] == [0, 0, 0]  # several workers share one GPU
    assert spread(5, 0) == 0
