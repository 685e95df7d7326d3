"""The whole suite: `SuiteSpec`, its top-level keys, and the checks across sections (the
search names the grid's remedies allow, ranges by model and task, plugins exercised)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import registry
from bench.checks import OPTIONAL_STR, Invalid, KeyPath, Rule, at_least, with_type
from bench.config.fields import LENIENT, checked, names, record, registry_name, section
from bench.config.search import (
    BASE_SEARCH,
    SEARCH_DEFAULT,
    SearchParam,
    check_grid_entries,
    check_search,
)
from bench.config.sections import (
    NEW_KEYS,
    DiagnosticsSpec,
    FinalSpec,
    ModelSpec,
    TrainingSpec,
    TuningSpec,
    check_model,
    check_tasks,
    default_tasks,
    without_defaults,
)
from bench.errors import mask_secrets

# The default grid. Every name a grid may use (tasks, models, remedies) is looked up in
# `bench.registry`, which also resolves users' plugins (`package.module:attribute`).
DEFAULT_MODELS = ("rnn", "irnn", "lstm", "gru")
DEFAULT_REGULARIZATION = ("none", "l2")
DEFAULT_CLIPPING = ("none", "norm")
DEVICES = ("auto", "cpu", "cuda")  # "cuda:N" is accepted as well
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _suite_name(path: KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or set(value) == {"."}:
        raise Invalid(path, f"expected a name of letters, digits, '_', '.', '-', "
                      f"got {with_type(value)}")
    return value


def _device(path: KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        raise Invalid(path, f"expected one of {', '.join(DEVICES)} (or cuda:N), "
                      f"got {with_type(value)}")
    return value


def default_search() -> dict[str, SearchParam]:
    """The learning rate, and the default ranges of the default grid's remedies."""
    out = {"lr": SearchParam("lr", low=1.0e-4, high=1.0e-2, log=True)}
    for axis, grid in (("regularization", DEFAULT_REGULARIZATION),
                       ("clipping", DEFAULT_CLIPPING)):
        for name in grid:
            found = registry.remedy(name, axis)
            for param, default in (found.search.items() if found else ()):
                out[param] = SearchParam(param, low=default.low, high=default.high,
                                         log=default.log)
    return out


@dataclass(frozen=True)
class SuiteSpec:
    """A whole suite, resolved and validated; the defaults are the contract of SPEC 6b."""

    name: str = checked("default", Rule("letters, digits, _ . -", _suite_name),
                        "the suite's name: its MLflow experiment, run directory and report")
    seed: int = checked(0, at_least(0), "the suite's seed; every trial's and final run's "
                        "seed follows from it")
    device: str = checked("auto", Rule(f"{' | '.join(DEVICES)} | cuda:N", _device),
                          "where runs train; auto: a GPU when there is one")
    # (task, params) in file order; params hold seq_len as a list of the T to sweep
    tasks: tuple[tuple[str, dict[str, Any]], ...] = section(
        default_tasks, check_tasks, "the tasks of the grid, each with its parameters (below)")
    models: tuple[str, ...] = checked(DEFAULT_MODELS, names("models"),
                                      "the models of the grid (below), or plugins")
    regularization: tuple[str, ...] = checked(
        DEFAULT_REGULARIZATION, names("regularization"),
        "the regularization remedies of the grid (below), or plugins; none: without")
    clipping: tuple[str, ...] = checked(
        DEFAULT_CLIPPING, names("clipping"),
        "the clipping remedies of the grid (below), or plugins; none: without")
    model: ModelSpec = section(ModelSpec, check_model, "the models' size: a parameter "
                               "budget shared by all models (fair), or a fixed hidden size")
    training: TrainingSpec = section(TrainingSpec, record(TrainingSpec),
                                     "the training budget of one run")
    search: dict[str, SearchParam] = section(default_search, check_search,
                                             "one entry per tuned parameter (below)")
    tuning: TuningSpec = section(TuningSpec, record(TuningSpec),
                                 "the Optuna budget, the same for every configuration")
    final: FinalSpec = section(FinalSpec, record(FinalSpec), "re-training of the best "
                               "parameters with fresh seeds, evaluated on the test set")
    diagnostics: DiagnosticsSpec = section(DiagnosticsSpec, record(DiagnosticsSpec),
                                           "the schedule of the gradient diagnostics")
    storage: str | None = checked(None, OPTIONAL_STR, "Optuna storage URL; null: a file "
                                  "store under the run directory")
    tracking_uri: str | None = checked(None, OPTIONAL_STR, "MLflow tracking URI; null: a "
                                       "SQLite database under the run directory")
    source: Path | None = field(default=None, compare=False)  # the file it was loaded from

    def __hash__(self) -> int:
        return hash(self.config_hash())

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data (same shape as the file)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "device": self.device,
            "tasks": {name: copy.deepcopy(params) for name, params in self.tasks},
            "models": list(self.models),
            "regularization": list(self.regularization),
            "clipping": list(self.clipping),
            "model": self.model.to_dict(),
            "training": without_defaults(self.training, NEW_KEYS),
            "search": {name: param.to_dict() for name, param in self.search.items()},
            "tuning": without_defaults(self.tuning, NEW_KEYS),
            "final": dataclasses.asdict(self.final),
            "diagnostics": dataclasses.asdict(self.diagnostics),
            "storage": self.storage,
            "tracking_uri": self.tracking_uri,
        }

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` with passwords in the storage and tracking URLs masked: what is
        written to the run directory, to MLflow and to reports."""
        data = self.to_dict()
        for key in ("storage", "tracking_uri"):
            if data[key]:
                data[key] = mask_secrets(data[key])
        return data

    def config_hash(self) -> str:
        """First 12 hex digits of the sha256 of the canonical JSON of `to_dict`.

        Independent of key order in the file. `storage` and `tracking_uri` are left out:
        they say where results go, not what the experiment is.
        """
        data = {k: v for k, v in self.to_dict().items() if k not in ("storage", "tracking_uri")}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def plugins(self) -> list[tuple[str, str]]:
        """(kind, name) of every plugin the grid names: a reference
        (``package.module:attribute``) or an installed entry point's name."""
        remedies = (registry.NONE, *registry.REMEDIES.names())
        builtin = {"tasks": registry.TASKS.names(), "models": registry.MODELS.names(),
                   "regularization": remedies, "clipping": remedies}
        named = [("tasks", name) for name, _ in self.tasks] + \
            [("models", name) for name in self.models] + \
            [(axis, name) for axis in ("regularization", "clipping")
             for name in getattr(self, axis)]
        return [(kind, name) for kind, name in named if name not in builtin[kind]]

    def load_plugins(self) -> None:
        """Import the grid's plugins in this process, so their records are found by name
        (a worker process does this before it builds a configuration)."""
        for kind, name in self.plugins():
            registry_name(kind, name)

    def remedies(self) -> list[Any]:
        """The records of the grid's remedies (``none`` left out), both axes."""
        found = [registry.remedy(name, axis) for axis in ("regularization", "clipping")
                 for name in getattr(self, axis)]
        return [r for r in found if r is not None]


def search_names(spec: SuiteSpec | None = None) -> tuple[str, ...]:
    """The parameters a search may tune: lr, the integer extras, and the remedies' (the
    built-in ones and, given a spec, its plugins')."""
    remedies = [*registry.REMEDIES, *(spec.remedies() if spec is not None else ())]
    return tuple(dict.fromkeys([*BASE_SEARCH, *(p for r in remedies for p in r.search)]))


def validate(raw: Any) -> SuiteSpec:
    """The suite of the raw data (a file's mapping, overrides applied), every key checked.

    Raises:
        Invalid: the first problem, with its key path.
    """
    spec: SuiteSpec = record(SuiteSpec)((), raw)
    if LENIENT.get() and _unresolved(spec):
        return spec  # a plugin does not import here: its search and checks are its own
    allowed = search_names(spec)
    for name in spec.search:
        if name not in allowed:
            raise Invalid(("search", name), f"unknown key; valid keys: {', '.join(allowed)}")
    if "lr" not in spec.search:
        raise Invalid(("search", "lr"), "required: the learning rate is always tuned")
    _check_search_keys(spec)
    for found in spec.remedies():  # a remedy's range the config leaves out: its default
        for param, default in found.search.items():
            spec.search.setdefault(param, SearchParam(param, low=default.low,
                                                      high=default.high, log=default.log))
    check_grid_entries(spec.tuning.sampler, spec.search)  # the trials: ``overrides.load``
    _exercise_plugins(spec)
    return spec


def _check_search_keys(spec: SuiteSpec) -> None:
    """Per-model (or per-task) search ranges name a model or task (or task/model) that
    exists. One outside the grid is no error: ``--models`` and ``--tasks`` narrow a suite
    whose ranges name the others, and ``SearchParam.at`` never reaches it."""
    tasks = {name for name, _ in spec.tasks} | {registry_name("tasks", n) for n, _ in spec.tasks}
    models = set(spec.models) | {registry_name("models", m) for m in spec.models}
    for name, param in spec.search.items():
        for key, _ in param.by:
            task, slash, model = key.rpartition("/")
            ok = (_names("tasks", task) and _names("models", model)) if slash else (
                _names("tasks", key) or _names("models", key))
            if not ok:
                raise Invalid(("search", name, key),
                              f"not a model or task at all (nor task/model); the grid's: "
                              f"{', '.join([SEARCH_DEFAULT, *sorted(models | tasks)])}")


def _names(kind: str, name: str) -> bool:
    """Whether ``name`` is a model (or task) of the registry: built in or a plugin."""
    table = registry.MODELS if kind == "models" else registry.TASKS
    return name in table


def _unresolved(spec: SuiteSpec) -> bool:
    try:
        spec.load_plugins()
    except registry.PluginError:
        return True
    return False


def _exercise_plugins(spec: SuiteSpec) -> None:
    """Build each plugin model and task once, tiny, on the CPU (``bench.plugins``)."""
    from bench import plugins  # imports torch, which `import bench.config` must not

    params = dict(spec.tasks)
    for kind, name in spec.plugins():
        try:
            if kind == "models":
                plugins.check_model(registry.MODELS.get(name))
            elif kind == "tasks":
                plugins.check_task(registry.TASKS.get(name), params[name])
        except ValueError as err:  # PluginError, or the task's own parameter check
            path = ("tasks", name) if kind == "tasks" else (kind,)
            raise Invalid(path, str(err) if isinstance(err, registry.PluginError) else
                          f"{name}: {err}") from None
