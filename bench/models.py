"""The four recurrent models, on PyTorch's fused layers, with matched parameter counts.

Every model maps a sequence (B, T, I) to a prediction on the last step (B, O) or on every
step (B, T, O). The recurrent part is one fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer
(cuDNN on a GPU), the head one ``nn.Linear``.

- ``rnn``: tanh RNN, PyTorch's default initialisation.
- ``irnn``: ReLU RNN, identity recurrent weights and zero biases (Le, Jaitly & Hinton 2015).
- ``lstm``: forget-gate bias 1 (Jozefowicz, Zaremba & Sutskever 2015).
- ``gru``: PyTorch's default initialisation.

By default the hidden size of each model is derived from a parameter budget so that all four
have (nearly) the same number of trainable parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

MODEL_NAMES = ("rnn", "irnn", "lstm", "gru")
GATES = {"rnn": 1, "irnn": 1, "lstm": 4, "gru": 3}  # blocks stacked in weight_hh


@dataclass(frozen=True)
class ModelSizes:
    """What a model's shape depends on."""

    input_size: int
    output_size: int
    per_step: bool  # head on every step (copy) or on the last step only


class RecurrentModel(nn.Module):
    """A single fused recurrent layer followed by a linear head."""

    def __init__(self, kind: str, sizes: ModelSizes, hidden_size: int) -> None:
        super().__init__()
        if kind not in MODEL_NAMES:
            raise ValueError(f"unknown model {kind!r}; valid models: {', '.join(MODEL_NAMES)}")
        self.kind = kind
        self.sizes = sizes
        self.hidden_size = hidden_size
        self.rnn = _LAYERS[kind](sizes.input_size, hidden_size)
        self.head = nn.Linear(hidden_size, sizes.output_size)
        _INITS[kind](self.rnn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(x)  # (B, T, H)
        return self.readout(hidden)

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Head on the hidden sequence (B, T, H): (B, T, O) per step, else (B, O)."""
        if self.sizes.per_step:
            return self.head(hidden)
        return self.head(hidden[:, -1])

    def weight_matrices(self) -> list[nn.Parameter]:
        """The weight matrices (no biases): what the L2 penalty acts on."""
        return [p for name, p in self.named_parameters() if "weight" in name]


def _rnn(nonlinearity: str) -> Callable[[int, int], nn.Module]:
    def make(input_size: int, hidden_size: int) -> nn.Module:
        return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)

    return make


def _lstm(input_size: int, hidden_size: int) -> nn.Module:
    return nn.LSTM(input_size, hidden_size, batch_first=True)


def _gru(input_size: int, hidden_size: int) -> nn.Module:
    return nn.GRU(input_size, hidden_size, batch_first=True)


def _init_default(layer: nn.Module) -> None:
    """Keep PyTorch's default uniform(-1/sqrt(H), 1/sqrt(H))."""


@torch.no_grad()
def _init_irnn(layer: nn.Module) -> None:
    nn.init.eye_(layer.weight_hh_l0)
    nn.init.normal_(layer.weight_ih_l0, std=0.001)  # small input weights, as in Le et al.
    nn.init.zeros_(layer.bias_ih_l0)
    nn.init.zeros_(layer.bias_hh_l0)


@torch.no_grad()
def _init_lstm(layer: nn.Module) -> None:
    # PyTorch gate order is (input, forget, cell, output); two bias vectors are summed,
    # so put the whole forget bias of 1 in one and zero the other.
    hidden = layer.hidden_size
    layer.bias_ih_l0[hidden : 2 * hidden].fill_(1.0)
    layer.bias_hh_l0[hidden : 2 * hidden].fill_(0.0)


_LAYERS: dict[str, Callable[[int, int], nn.Module]] = {
    "rnn": _rnn("tanh"), "irnn": _rnn("relu"), "lstm": _lstm, "gru": _gru,
}
_INITS: dict[str, Callable[[nn.Module], None]] = {
    "rnn": _init_default, "irnn": _init_irnn, "lstm": _init_lstm, "gru": _init_default,
}


def param_count(kind: str, sizes: ModelSizes, hidden_size: int) -> int:
    """Trainable parameters of a model, in closed form (two bias vectors per gate block)."""
    gates = GATES[kind]
    recurrent = gates * (hidden_size * sizes.input_size + hidden_size**2 + 2 * hidden_size)
    return recurrent + hidden_size * sizes.output_size + sizes.output_size


def _closest_hidden(kind: str, sizes: ModelSizes, target: int) -> int:
    hidden = 1
    while param_count(kind, sizes, hidden + 1) <= target:
        hidden += 1
    above = hidden + 1
    distance = abs(param_count(kind, sizes, hidden) - target)
    return above if abs(param_count(kind, sizes, above) - target) < distance else hidden


def hidden_for_budget(kind: str, sizes: ModelSizes, budget: int) -> int:
    """The hidden size that gives ``kind`` a parameter count matched to ``budget``.

    The LSTM's count moves in the largest steps as H grows (4 gate blocks), so the LSTM is
    sized closest to the budget and every other model closest to the LSTM's count: the four
    then match each other within a few percent even for small budgets.
    """
    if budget < 1:
        raise ValueError(f"param_budget must be >= 1, got {budget}")
    anchor = param_count("lstm", sizes, _closest_hidden("lstm", sizes, budget))
    return _closest_hidden(kind, sizes, anchor)


def build_model(
    kind: str,
    sizes: ModelSizes,
    *,
    hidden_size: int | None = None,
    param_budget: int | None = None,
) -> RecurrentModel:
    """Build model ``kind``, sized by ``hidden_size`` or by ``param_budget`` (exactly one)."""
    if kind not in MODEL_NAMES:
        raise ValueError(f"unknown model {kind!r}; valid models: {', '.join(MODEL_NAMES)}")
    if (hidden_size is None) == (param_budget is None):
        raise ValueError("give exactly one of hidden_size and param_budget")
    if hidden_size is None:
        assert param_budget is not None
        hidden_size = hidden_for_budget(kind, sizes, param_budget)
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
    return RecurrentModel(kind, sizes, hidden_size)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def select_device(requested: str = "auto", worker: int = 0) -> torch.device:
    """``auto``: CUDA when present, else the CPU; ``cpu`` / ``cuda`` / ``cuda:N`` force one.

    Without an index, worker processes spread over the GPUs (worker i on GPU i mod count):
    several workers share a device, and every device gets work.

    Raises:
        ValueError: an unknown device name, or ``cuda`` requested where none is available.
    """
    available = torch.cuda.is_available()
    if requested == "cpu" or (requested == "auto" and not available):
        return torch.device("cpu")
    if requested not in ("auto", "cuda") and not requested.startswith("cuda:"):
        raise ValueError(f"unknown device {requested!r}; valid: auto, cpu, cuda, cuda:N")
    if not available:
        raise ValueError(f"device {requested!r} requested but CUDA is not available here")
    if requested.startswith("cuda:"):
        return torch.device(requested)
    return torch.device("cuda", spread(worker, torch.cuda.device_count()))


def spread(worker: int, devices: int) -> int:
    """The device index of worker ``worker`` among ``devices`` devices (round robin)."""
    return worker % max(1, devices)
