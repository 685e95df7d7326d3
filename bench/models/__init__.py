"""The recurrent models, on PyTorch's fused layers, with matched parameter counts.

Every model maps a sequence (B, T, I) to a prediction on the last step (B, O) or on every
step (B, T, O). The recurrent part is one fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer
(cuDNN on a GPU), the head one ``nn.Linear``. Each model is one module of this package that
declares its record (``MODEL``, a ``bench.registry.ModelInfo``): its layer, initialisation,
gate blocks, activations, the gain of the theory bound and the cell of its unrolled twin.

- ``rnn``: tanh RNN, PyTorch's default initialisation.
- ``irnn``: ReLU RNN, identity recurrent weights and zero biases (Le, Jaitly & Hinton 2015).
- ``lstm``: forget-gate bias 1 (Jozefowicz, Zaremba & Sutskever 2015).
- ``gru``: PyTorch's default initialisation.
- ``orth-rnn``: tanh RNN with an orthogonal W_hh (Saxe et al. 2014; Henaff et al. 2016).

By default the hidden size of each model is derived from a parameter budget so that all
models have (nearly) the same number of trainable parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.registry import MODELS, ModelInfo

DEFAULT_MODELS = ("rnn", "irnn", "lstm", "gru")  # the default grid


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
        self.info: ModelInfo = MODELS.get(kind)
        self.kind = self.info.name
        self.sizes = sizes
        self.hidden_size = hidden_size
        self.rnn = self.info.layer(sizes.input_size, hidden_size)
        self.head = nn.Linear(hidden_size, sizes.output_size)
        self.info.init(self.rnn)

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

    def recurrent_weight(self) -> nn.Parameter:
        """W_hh, the gate blocks of ``info.blocks`` stacked by rows: (blocks * H, H)."""
        weight: nn.Parameter = self.rnn.weight_hh_l0
        return weight


def param_count(kind: str, sizes: ModelSizes, hidden_size: int) -> int:
    """Trainable parameters of a model, in closed form (two bias vectors per gate block)."""
    gates = len(MODELS.get(kind).blocks)
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
    sized closest to the budget and every other model closest to the LSTM's count: the
    models then match each other within a few percent even for small budgets.
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
    MODELS.get(kind)  # an unknown name fails here, listing the valid ones
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
