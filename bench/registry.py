"""The registries: one record per task, model and remedy holds every fact the code needs.

A task, a model or a remedy is one module that declares one record (``TASK``, ``MODEL`` or
``REMEDY``). The built-in ones are found by scanning their package (``tasks``,
``bench.models``, ``bench.remedies``): adding a file there adds an entry. Users plug in their
own without touching the project, either

- by reference in a config: ``package.module:attribute`` (e.g. ``models: [lstm,
  my_models:NP_RNN]``), imported from the current directory or ``sys.path``; or
- through Python entry points of an installed package, in the groups ``gradbench.tasks``,
  ``gradbench.models`` and ``gradbench.remedies`` (the entry point's name is the name used
  in configs).

Code elsewhere looks facts up here (``TASKS.get("copy").direction``,
``MODELS.get("lstm").blocks``, ``REMEDIES.get("l2").label``) and never branches on a name.
A reference that does not import, names a missing attribute, or holds something that is not
a record of the right kind raises a ``PluginError`` whose message is one line.

The registries refuse rather than guess (``bench.lookup``, where the ``Registry`` class
lives): a module of a registry's folder declares its record or says ``HELPER = True`` (shared
code, e.g. ``bench.models.cells``), else the scan stops with a ``RegistryError`` naming it;
and a name belongs to one record, built-in or plugin, else the error names both places.

This module imports nothing heavy: the record types are plain data, and a module is only
imported when one of its names is looked up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench import checks
from bench.lookup import (
    NONE,
    PluginError,
    Registry,
    RegistryError,
    UnknownName,
    is_reference,
    unknown_text,
)

__all__ = [
    "AXES", "MODELS", "NONE", "REMEDIES", "SPLITS", "TASKS", "ModelInfo", "PluginError",
    "Registry", "RegistryError", "Remedy", "SearchDefault", "TaskInfo", "TaskParam", "UnknownName",
    "boolean", "integer", "is_reference", "optional_str", "remedy", "remedy_label",
    "remedy_marker", "remedy_names", "remedy_rank", "remedy_style", "unknown_text",
]

AXES = ("regularization", "clipping")
SPLITS = ("plain", "lstm", "gru")  # the cells whose backward step the exact split knows


# --------------------------------------------------------------------------- records


def integer(minimum: int | None = None) -> Callable[[Any], int]:
    """A parameter check: an integer, at least ``minimum`` (``bench.checks.integer``)."""

    def check(value: Any) -> int:
        return checks.integer((), value, minimum, show=repr)

    # what it accepts, in words, for the config reference (docs/config.md)
    check.__doc__ = f"A parameter check: an integer{'' if minimum is None else f' >= {minimum}'}."
    return check


def boolean(value: Any) -> bool:
    """A parameter check: true or false."""
    return checks.boolean((), value, show=repr)


def optional_str(value: Any) -> str | None:
    """A parameter check: a non-empty string or null."""
    return checks.optional_str((), value, show=repr)


@dataclass(frozen=True)
class TaskParam:
    """One parameter of a task: its default, its check, and whether the resolved config
    shows the default when the file leaves the key out."""

    default: Any
    check: Callable[[Any], Any]
    help: str = ""
    shown: bool = False


@dataclass(frozen=True)
class TaskInfo:
    """Everything the grid, the config, the terminal and the report need to know of a task.

    ``seq_len``, when the task has it, is swept: a config gives one T or a list, and each T
    is a configuration; ``min_seq_len`` bounds it. A task of fixed length (``fixed_seq_len``,
    e.g. HAR's 128-step windows) has no ``seq_len`` key. ``build(params, seed=, device=)``
    returns the task object (``tasks.Task``) for one ``seq_len``, checking ``params`` with
    ``resolve``: the config and a direct build go through the same checks.
    ``unavailable(params)``, for a task that reads data: why the data are absent where the
    task looks by default (a suite then runs without the task and says why), or None; data
    that are given but broken raise (bad input).
    """

    name: str
    build: Callable[..., Any]
    params: Mapping[str, TaskParam]
    metric: str  # the headline test metric, a key of ``Task.evaluate``
    direction: str  # "minimize" | "maximize" for ``metric``
    solved: str  # the solved rule, in words
    baseline: str  # the trivial predictor, in words
    min_seq_len: int | None = None
    fixed_seq_len: int | None = None
    metric_range: tuple[float, float] = (-math.inf, math.inf)
    read_at: str = ""  # where the loss reads the states, for the report's gradient figures
    classes: tuple[str, ...] = ()  # class names of a classification task, whose object has
    # ``confusion_matrix``: final seeds record it, the report draws it
    unavailable: Callable[[Mapping[str, Any]], str | None] | None = None  # see below
    description: str = ""
    rank: int = 100  # display order

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"task {self.name}: direction must be minimize or maximize")
        if (self.min_seq_len is None) != ("seq_len" not in self.params):
            raise ValueError(f"task {self.name}: give min_seq_len exactly when it has seq_len")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def swept(self) -> bool:
        return "seq_len" in self.params

    def shown_defaults(self) -> dict[str, Any]:
        """The parameters the resolved config always shows (e.g. ``seq_len: [100]``)."""
        return {k: p.default for k, p in self.params.items() if p.shown}

    def check_seq_lens(self, value: Any) -> list[int]:
        """One T or a list of distinct T, each at least ``min_seq_len``."""
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("must not be empty")
        for item in values:
            if integer()(item) < (self.min_seq_len or 1):
                raise ValueError(f"the {self.name} task needs seq_len >= {self.min_seq_len}, "
                                 f"got {item}")
        for i, item in enumerate(values):
            if item in values[:i]:
                raise ValueError(f"duplicate value {item!r}")
        return list(values)

    def check_param(self, key: str, value: Any) -> Any:
        """Validate one parameter; ValueError names the problem (the caller adds the key)."""
        if key == "seq_len" and self.fixed_seq_len is not None:
            raise ValueError(f"{self.name} sequences are fixed at {self.fixed_seq_len} steps; "
                             "remove seq_len")
        if key not in self.params:
            raise KeyError(key)
        if key == "seq_len":
            return self.check_seq_lens(value)
        return self.params[key].check(value)

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Build parameters: ``params`` (one ``seq_len``) checked, defaults filled in."""
        out = {k: p.default for k, p in self.params.items()}
        for key, value in params.items():
            try:
                checked = self.check_param(key, value)
            except KeyError:
                raise ValueError(f"tasks.{self.name}.{key}: unknown key; valid keys: "
                                 f"{', '.join(self.params)}") from None
            except ValueError as err:
                raise ValueError(f"tasks.{self.name}.{key}: {err}") from None
            out[key] = checked[0] if key == "seq_len" else checked
        if isinstance(out.get("seq_len"), list):
            out["seq_len"] = out["seq_len"][0]
        return out


@dataclass(frozen=True)
class ModelInfo:
    """A recurrent model: one fused layer, its initialisation, and its cell written out.

    Attributes:
        name: the name in configs.
        layer: ``(input_size, hidden_size) -> nn.Module``, a one-layer fused module with
            PyTorch's parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
            ``bias_hh_l0``) and ``batch_first=True``.
        init: initialises the layer in place (after PyTorch's default).
        blocks: the gate blocks stacked by rows in ``weight_hh_l0`` (``("hh",)`` for a plain
            RNN, ``("i", "f", "g", "o")`` for the LSTM).
        cell: the step of the unrolled twin, ``(x_proj, state, weights, nudge) -> (state,
            activations)`` (see ``bench.models.cells``).
        state: names of the recurrent state, ``("h",)`` or ``("h", "c")``.
        activations: activation name -> nonlinearity (tanh, sigmoid, relu), for saturation.
        gain: ``gamma = max |f'|`` of a plain RNN, for the theory bound
            ``(gamma ||W_hh||_2)^(T-t)``; None for gated cells (no such bound).
        carry: the gate that carries the state along the cell path (``f`` of the LSTM:
            c_(t-1) receives ``f_t * dL/dc_t``; ``z`` of the GRU: h_(t-1) receives ``z_t *
            dL/dh_t``), the carry path of the exact split; None for a plain RNN, whose one
            path runs through the derivative of its activation ``h`` and ``W_hh``.
        split: the equations of the cell, as far as the exact split of the backpropagated
            gradient needs them (``bench.diagnostics.factors``): ``plain`` for ``h' =
            f(W_ih x + b_ih + W_hh h + b_hh)`` with f the nonlinearity ``activations["h"]``
            (``cells.rnn_cell``), ``lstm`` and ``gru`` for PyTorch's equations with the gates
            named as in ``cells.lstm_cell`` and ``cells.gru_cell``. None (a cell of one's
            own): the split is reported as not available for the model.
    """

    name: str
    layer: Callable[[int, int], Any]
    init: Callable[[Any], None]
    blocks: tuple[str, ...]
    cell: Callable[..., Any]
    activations: Mapping[str, str]
    state: tuple[str, ...] = ("h",)
    gain: float | None = None
    carry: str | None = None
    split: str | None = None
    label: str = ""
    description: str = ""
    color: str | None = None  # a matplotlib colour; None: one from the palette
    rank: int = 100

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"model {self.name}: split must be one of {', '.join(SPLITS)} "
                             f"or None, got {self.split!r}")


@dataclass(frozen=True)
class SearchDefault:
    """The default search range of a remedy's parameter (used when a config has none)."""

    low: float
    high: float
    log: bool = True


@dataclass(frozen=True)
class Remedy:
    """A remedy on one axis (regularization or clipping), as hooks into the training loop.

    Each hook receives ``hp``, the remedy's tuned values (e.g. ``{"l2": 1e-4}``):

    - ``penalty(model, hp) -> tensor``: added to the loss before backward;
    - ``after_backward(params, norm, hp) -> bool tensor | None``: acts on the gradients
      (``norm`` is their global norm before it acts); returns whether it changed them;
    - ``after_step(model, hp, lr) -> bool tensor | None``: acts on the weights after the
      optimizer step (``lr``: the step's learning rate), under ``torch.no_grad``; returns
      whether it changed them;
    - ``optimizer_args(hp) -> dict``: extra keyword arguments of the optimizer.

    The "changed" flags make the run's clip rate (the share of steps at which a clipping
    remedy acted; a regularization remedy, which acts at every step, returns None).
    ``search`` gives each tuned parameter a default range (``SearchDefault``), used where a
    suite's config has none.
    """

    name: str
    axis: str
    label: str
    search: Mapping[str, SearchDefault]
    description: str = ""
    style: Any = "--"  # a clipping remedy's matplotlib line style in the report
    marker: str = "o"  # a regularization remedy's matplotlib marker in the report
    penalty: Callable[..., Any] | None = None
    after_backward: Callable[..., Any] | None = None
    after_step: Callable[..., Any] | None = None
    optimizer_args: Callable[[Mapping[str, float]], dict[str, Any]] | None = None
    rank: int = 100

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ValueError(f"remedy {self.name}: axis must be one of {', '.join(AXES)}")
        for param, default in dict(self.search).items():
            if not isinstance(default, SearchDefault):
                raise ValueError(f"remedy {self.name}: search parameter {param!r} needs a "
                                 "default range, SearchDefault(low, high), got "
                                 f"{type(default).__name__}")
            valid = default.low < default.high and (default.low > 0 or not default.log)
            if not valid:
                raise ValueError(f"remedy {self.name}: search parameter {param!r}: low < high "
                                 f"(and > 0 on a log scale) needed, got {default.low}, "
                                 f"{default.high}")
        object.__setattr__(self, "search", MappingProxyType(dict(self.search)))


# --------------------------------------------------------------------------- registries


TASKS: Registry[TaskInfo] = Registry("task", TaskInfo, "tasks", "TASK")
MODELS: Registry[ModelInfo] = Registry("model", ModelInfo, "bench.models", "MODEL")
REMEDIES: Registry[Remedy] = Registry("remedy", Remedy, "bench.remedies", "REMEDY")


def remedy_names(axis: str) -> tuple[str, ...]:
    """``none`` and the built-in remedies of one axis."""
    return (NONE, *(r.name for r in REMEDIES if r.axis == axis))


def remedy(name: str, axis: str) -> Remedy | None:
    """The record of a remedy on ``axis`` (None for ``none``).

    Raises:
        PluginError: unknown, a bad plugin, or a remedy of the other axis.
    """
    if name == NONE:
        return None
    try:
        found = REMEDIES.get(name)
    except UnknownName:
        raise UnknownName(unknown_text(axis, name, remedy_names(axis))) from None
    if found.axis != axis:
        raise PluginError(f"remedy {name!r} belongs to {found.axis}, not {axis}")
    return found


def remedy_label(regularization: str, clipping: str) -> str:
    """The report's label of a pair, e.g. ``none``, ``L2``, ``clip``, ``L2 + clip``."""
    parts = [r.label for r in (_maybe(regularization), _maybe(clipping)) if r is not None]
    return " + ".join(parts) or NONE


def remedy_style(regularization: str, clipping: str) -> Any:
    """Line style of a pair: the clipping remedy's (dotted without clipping)."""
    clip = _maybe(clipping)
    return ":" if clip is None else clip.style


def remedy_marker(regularization: str, clipping: str) -> str:
    """Marker of a pair: the regularization remedy's (a circle without regularization)."""
    reg = _maybe(regularization)
    return "o" if reg is None else reg.marker


def remedy_rank(regularization: str, clipping: str) -> tuple[int, int]:
    """Sort key of a pair: by clipping, then regularization (none first)."""
    reg, clip = _maybe(regularization), _maybe(clipping)
    return (clip.rank + 1 if clip else 0, reg.rank + 1 if reg else 0)


def _maybe(name: str) -> Remedy | None:
    return None if name in ("", NONE) else REMEDIES.find(name)
