"""Suite configuration: the YAML schema, validated once at the edge into frozen dataclasses.

A suite file names the grid (tasks with their sequence lengths, models, remedies), the
training budget, the Optuna search space and budget, and where results go. Keys absent
from the file take the defaults on the dataclass fields below, so a file may be partial.
Every problem (unknown key at any level, wrong type, bad range, YAML syntax) raises a
`ConfigError` with one line naming the file (or the CLI flag), the dotted key path and
the problem, e.g. ``configs/x.yaml: training.steps: must be >= 1, got -5``.

This module imports nothing heavy (no torch), so the CLI stays fast.

Example:
    >>> spec = load("smoke", {"tasks": ["adding"], "set": ["training.steps=5"]})
    >>> spec.training.steps, [c.name for c in expand(spec)][:2]
    (5, ['adding-T10/rnn/none/none', 'adding-T10/rnn/none/norm'])
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import mask_secrets

# The default grid. Every name a grid may use (tasks, models, remedies) is looked up in
# `bench.registry`, which also resolves users' plugins (`package.module:attribute`).
DEFAULT_MODELS = ("rnn", "irnn", "lstm", "gru")
DEFAULT_REGULARIZATION = ("none", "l2")
DEFAULT_CLIPPING = ("none", "norm")
DEVICES = ("auto", "cpu", "cuda")  # "cuda:N" is accepted as well
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "hyperband", "none")
INT_SEARCH = ("batch_size", "param_budget", "hidden_size")  # optional integer extras
BASE_SEARCH = ("lr", *INT_SEARCH)  # besides these, the search parameters of the remedies
SEARCH_ENTRY_KEYS = ("low", "high", "log", "choices")
SEARCH_DEFAULT = "default"  # a search entry given per model or task: its fallback range
OBJECTIVES = ("val_loss", "val_metric")  # what tuning optimises (the metric: the task's)
TASK_STEPS = "steps"  # tasks.<name>.steps: that task's budget, overriding training.steps
MODEL_KEYS = ("param_budget", "hidden_size")
DEFAULT_TASKS = ("adding", "copy", "har")
# packaged suites (default, smoke, full)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")

_LENIENT = contextvars.ContextVar("lenient_plugins", default=False)  # see `load`
KeyPath = tuple[str, ...]
Check = Callable[[KeyPath, Any], Any]  # (key path, raw value) -> validated value


class ConfigError(ValueError):
    """A bad configuration; the message is one line: source, key path, problem."""


class _Invalid(Exception):
    """Raised inside validation; `load` turns it into a `ConfigError` naming the source."""

    def __init__(self, path: Sequence[str], problem: str) -> None:
        super().__init__(problem)
        self.path: KeyPath = tuple(path)
        self.problem = problem


# --------------------------------------------------------------------------- primitives


def _show(value: Any) -> str:
    kind = "null" if value is None else type(value).__name__
    return f"{value!r} ({kind})"


def _integer(path: KeyPath, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int in Python
        raise _Invalid(path, f"expected an integer, got {_show(value)}")
    if minimum is not None and value < minimum:
        raise _Invalid(path, f"must be >= {minimum}, got {value}")
    return value


def _at_least(minimum: int) -> Check:
    return lambda path, value: _integer(path, value, minimum)


def _number(path: KeyPath, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number, got {_show(value)}")
    if value < minimum:
        raise _Invalid(path, f"must be >= {minimum:g}, got {value}")
    return float(value)


def _boolean(path: KeyPath, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"expected true or false, got {_show(value)}")
    return value


def _optional_str(path: KeyPath, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _Invalid(path, f"expected a non-empty string or null, got {_show(value)}")
    return value


def _one_of(choices: Sequence[str]) -> Check:
    def check(path: KeyPath, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(path, f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value

    return check


def _suite_name(path: KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or set(value) == {"."}:
        raise _Invalid(path, f"expected a name of letters, digits, '_', '.', '-', "
                       f"got {_show(value)}")
    return value


def _device(path: KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        raise _Invalid(path, f"expected one of {', '.join(DEVICES)} (or cuda:N), "
                       f"got {_show(value)}")
    return value


def _mapping(path: KeyPath, value: Any) -> dict[Any, Any]:
    if value is None:  # `training:` with nothing after it
        return {}
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping, got {_show(value)}")
    return value


def _known_keys(path: KeyPath, data: Mapping[Any, Any], allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            raise _Invalid(path + (str(key),), f"unknown key; valid keys: {', '.join(allowed)}")


def _unique(path: KeyPath, values: Sequence[Any]) -> None:
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise _Invalid(path, f"duplicate value {value!r}")
        seen.append(value)


def _nonempty_list(path: KeyPath, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _Invalid(path, f"expected a non-empty list of {what}, got {_show(value)}")
    return value


def _lookup(path: KeyPath, name: Any, find: Callable[[str], Any]) -> Any:
    """The registry record of ``name``; a problem (unknown, bad plugin) names the key.

    In lenient loading (``load(..., plugins=False)``) a plugin reference that does not
    import gives None instead.
    """
    from bench.registry import PluginError, is_reference

    if not isinstance(name, str):
        raise _Invalid(path, f"expected a name, got {_show(name)}")
    try:
        return find(name)
    except PluginError as err:
        if _LENIENT.get() and is_reference(name):
            return None
        raise _Invalid(path, str(err)) from None


def _names(what: str) -> Check:
    """A non-empty list of distinct names of the registry (or plugin references), kept in
    the order given; ``what`` is models, regularization or clipping."""

    def check(path: KeyPath, value: Any) -> tuple[str, ...]:
        from bench import registry

        find: Callable[[str], Any] = registry.MODELS.get
        if what != "models":
            find = lambda name: registry.remedy(name, what)  # noqa: E731
        found = [_lookup(path, item, find) for item in
                 _nonempty_list(path, value, f"{what} names")]
        _unique(path, value)
        if all(record is not None or item == registry.NONE
               for record, item in zip(found, value, strict=True)):
            _unique(path, [registry_name(what, item) for item in value])
        return tuple(value)

    return check


def registry_name(what: str, name: str) -> str:
    """The record's name of a grid entry (a plugin reference resolves to its record's)."""
    from bench import registry

    if name == registry.NONE or not registry.is_reference(name):
        return name
    table = {"tasks": registry.TASKS, "models": registry.MODELS}.get(what, registry.REMEDIES)
    return str(table.get(name).name)


def _record(cls: type[Any]) -> Check:
    """Validate a mapping against a dataclass whose fields carry a ``check`` in metadata.

    Keys absent from the mapping take the field defaults; unknown keys are errors.
    """

    def check(path: KeyPath, value: Any) -> Any:
        data = _mapping(path, value)
        checks = {f.name: f.metadata["check"] for f in dataclasses.fields(cls)
                  if "check" in f.metadata}
        _known_keys(path, data, tuple(checks))
        return cls(**{key: checks[key](path + (key,), item) for key, item in data.items()})

    return check


def _checked(default: Any, check: Check) -> Any:
    """A dataclass field with a default and its validator."""
    return field(default=default, metadata={"check": check})


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class TrainingSpec:
    """The training budget of one trial."""

    steps: int = _checked(1000, _at_least(1))  # optimizer steps per trial
    batch_size: int = _checked(64, _at_least(1))
    eval_every: int = _checked(50, _at_least(1))  # steps between validation (and pruning) checks
    optimizer: str = _checked("adam", _one_of(OPTIMIZERS))
    warmup_steps: int = _checked(0, _at_least(0))  # linear learning-rate warm-up; 0: none
    stop_when_solved: bool = _checked(False, _boolean)  # end a run that stayed solved 2 evals


@dataclass(frozen=True)
class TuningSpec:
    """The Optuna budget: the same for every configuration."""

    trials: int = _checked(8, _at_least(1))  # trials per configuration
    sampler: str = _checked("tpe", _one_of(SAMPLERS))
    pruner: str = _checked("median", _one_of(PRUNERS))
    objective: str = _checked("val_loss", _one_of(OBJECTIVES))  # val_metric: the task's
    horizon: bool = _checked(False, _boolean)  # a T sweep that stops where nothing solves


@dataclass(frozen=True)
class FinalSpec:
    """Re-training of the best parameters with fresh seeds, evaluated on the test set."""

    seeds: int = _checked(3, _at_least(1))


@dataclass(frozen=True)
class DiagnosticsSpec:
    """Schedule of the gradient diagnostics."""

    probe_every: int = _checked(100, _at_least(1))  # steps between probe-batch diagnostics


@dataclass(frozen=True)
class ModelSpec:
    """Model size: a parameter budget shared by all models (fair), or a fixed hidden size."""

    param_budget: int | None = 10000
    hidden_size: int | None = None

    def to_dict(self) -> dict[str, int]:
        """The one key that is set, as in the YAML."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def size(self, params: Mapping[str, Any]) -> dict[str, int]:
        """``build_model``'s size argument: a tuned size in ``params`` wins over the config's."""
        for key in ("hidden_size", "param_budget"):
            if key in params:
                return {key: int(params[key])}
        if self.hidden_size is not None:
            return {"hidden_size": self.hidden_size}
        return {"param_budget": int(self.param_budget or 10_000)}


@dataclass(frozen=True)
class SearchParam:
    """One tuned parameter: a range ``[low, high]`` (log-uniform when `log`) or `choices`."""

    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[float | int, ...] | None = None
    # Ranges for some models or tasks (``irnn``, ``copy``, ``copy/irnn``); this one is the
    # ``default`` of the others.
    by: tuple[tuple[str, SearchParam], ...] = ()

    def at(self, task: str, model: str) -> SearchParam:
        """The range of one configuration: ``task/model``, else the model's, else the
        task's, else the default."""
        found = dict(self.by)
        for key in (f"{task}/{model}", model, task):
            if key in found:
                return found[key]
        return dataclasses.replace(self, by=())

    @property
    def kind(self) -> str:
        """``"categorical"``, ``"int"`` or ``"float"``: which ``trial.suggest_*`` to use."""
        if self.choices is not None:
            return "categorical"
        return "int" if self.name in INT_SEARCH else "float"

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in the YAML."""
        if self.by:
            default = dataclasses.replace(self, by=()).to_dict()
            return {SEARCH_DEFAULT: default, **{k: p.to_dict() for k, p in self.by}}
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


def _task_params(path: KeyPath, name: Any, value: Any) -> dict[str, Any]:
    """A task's parameters, checked by its record; the shown defaults filled in."""
    from bench.registry import TASKS

    info = _lookup(path, name, TASKS.get)
    data = _mapping(path, value)
    if info is None:  # lenient loading, the plugin is not importable here
        return dict(data)
    checked = {}
    for key, item in data.items():
        if key == TASK_STEPS:
            checked[key] = _integer(path + (key,), item, 1)
            continue
        try:
            checked[key] = info.check_param(str(key), item)
        except KeyError:
            raise _Invalid(path + (str(key),), f"unknown key; valid keys: "
                           f"{', '.join([*info.params, TASK_STEPS])}") from None
        except ValueError as err:
            raise _Invalid(path + (str(key),), str(err)) from None
    return {**copy.deepcopy(info.shown_defaults()), **checked}


def _tasks(path: KeyPath, value: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    data = _mapping(path, value)
    if not data:
        raise _Invalid(path, f"name at least one task, e.g. {', '.join(DEFAULT_TASKS)}")
    out = tuple((str(k), _task_params(path + (str(k),), k, v)) for k, v in data.items())
    if not _LENIENT.get():
        _unique(path, [registry_name("tasks", name) for name, _ in out])
    return out


def _model(path: KeyPath, value: Any) -> ModelSpec:
    data = _mapping(path, value)
    _known_keys(path, data, MODEL_KEYS)
    if len(data) != 1:
        raise _Invalid(path, f"give exactly one of {' or '.join(MODEL_KEYS)}")
    ((key, item),) = data.items()
    sizes: dict[str, int | None] = dict.fromkeys(MODEL_KEYS)
    sizes[key] = _integer(path + (key,), item, 1)
    return ModelSpec(**sizes)


def _choices(path: KeyPath, value: Any, integer: bool) -> tuple[float | int, ...]:
    items = _nonempty_list(path, value, "values")
    out = tuple(_integer(path, v, 1) if integer else _number(path, v) for v in items)
    _unique(path, out)
    return out


def _range(path: KeyPath, name: str, entry: Mapping[str, Any]) -> SearchParam:
    missing = [key for key in ("low", "high") if key not in entry]
    if missing:
        raise _Invalid(path, f"missing {' and '.join(missing)}: give low and high, or choices")
    bound: Callable[[KeyPath, Any], float | int]
    bound = _at_least(1) if name in INT_SEARCH else _number
    low, high = bound(path + ("low",), entry["low"]), bound(path + ("high",), entry["high"])
    log = _boolean(path + ("log",), entry.get("log", False))
    if low > high:
        raise _Invalid(path, f"low must be <= high, got low={low} > high={high}")
    if log and low <= 0:
        raise _Invalid(path + ("low",), f"must be > 0 with log: true, got {low}")
    return SearchParam(name, low=low, high=high, log=log)


def _search_param(path: KeyPath, name: str, value: Any) -> SearchParam:
    """One entry: a range or choices, or ``{default: ..., <model or task>: ...}``."""
    entry = _mapping(path, value)
    if SEARCH_DEFAULT not in entry:
        return _one_range(path, name, entry)
    mixed = [key for key in entry if key in SEARCH_ENTRY_KEYS]
    if mixed:
        keys = ", ".join(SEARCH_ENTRY_KEYS)
        raise _Invalid(path + (str(mixed[0]),), f"give either one range ({keys}) or ranges "
                       f"by model or task under {SEARCH_DEFAULT}, not both")
    default = _one_range(path + (SEARCH_DEFAULT,), name, _mapping(path, entry[SEARCH_DEFAULT]))
    by = tuple(sorted((str(key), _one_range(path + (str(key),), name, _mapping(path, item)))
                      for key, item in entry.items() if key != SEARCH_DEFAULT))
    return dataclasses.replace(default, by=by)


def _one_range(path: KeyPath, name: str, entry: Mapping[Any, Any]) -> SearchParam:
    _known_keys(path, entry, SEARCH_ENTRY_KEYS)
    if "choices" not in entry:
        return _range(path, name, entry)
    if len(entry) > 1:
        raise _Invalid(path, "give either choices or low/high/log, not both")
    return SearchParam(name, choices=_choices(path + ("choices",), entry["choices"],
                                              name in INT_SEARCH))


def _search(path: KeyPath, value: Any) -> dict[str, SearchParam]:
    """The entries; which names are allowed depends on the remedies (see ``_validate``)."""
    data = _mapping(path, value)
    if all(key in data for key in MODEL_KEYS):
        raise _Invalid(path, f"tune at most one of {' or '.join(MODEL_KEYS)}")
    return {name: _search_param(path + (name,), name, item) for name, item in data.items()}


def _default_search() -> dict[str, SearchParam]:
    """The learning rate, and the default ranges of the default grid's remedies."""
    from bench.registry import remedy

    out = {"lr": SearchParam("lr", low=1.0e-4, high=1.0e-2, log=True)}
    for axis, names in (("regularization", DEFAULT_REGULARIZATION),
                        ("clipping", DEFAULT_CLIPPING)):
        for name in names:
            found = remedy(name, axis)
            for param, default in (found.search.items() if found else ()):
                out[param] = SearchParam(param, low=default.low, high=default.high,
                                         log=default.log)
    return out


def _default_tasks() -> tuple[tuple[str, dict[str, Any]], ...]:
    from bench.registry import TASKS

    return tuple((name, copy.deepcopy(TASKS.get(name).shown_defaults()))
                 for name in DEFAULT_TASKS)


# Keys added after suites were run: shown (and hashed) only when set to something else than
# their default, so that the config hash of a suite that does not use them is unchanged.
NEW_KEYS = ("warmup_steps", "stop_when_solved", "objective", "horizon")


def _without_defaults(section: Any, keys: Sequence[str]) -> dict[str, Any]:
    data = dataclasses.asdict(section)
    defaults = {f.name: f.default for f in dataclasses.fields(section)}
    return {k: v for k, v in data.items() if k not in keys or v != defaults[k]}


def _section(factory: Callable[[], Any], check: Check) -> Any:
    return field(default_factory=factory, metadata={"check": check})


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class SuiteSpec:
    """A whole suite, resolved and validated; the defaults are the contract of SPEC 6b."""

    name: str = _checked("default", _suite_name)  # MLflow experiment, run directory, report
    seed: int = _checked(0, _at_least(0))
    device: str = _checked("auto", _device)
    # (task, params) in file order; params hold seq_len as a list of the T to sweep
    tasks: tuple[tuple[str, dict[str, Any]], ...] = _section(_default_tasks, _tasks)
    models: tuple[str, ...] = _checked(DEFAULT_MODELS, _names("models"))
    regularization: tuple[str, ...] = _checked(DEFAULT_REGULARIZATION, _names("regularization"))
    clipping: tuple[str, ...] = _checked(DEFAULT_CLIPPING, _names("clipping"))
    model: ModelSpec = _section(ModelSpec, _model)
    training: TrainingSpec = _section(TrainingSpec, _record(TrainingSpec))
    search: dict[str, SearchParam] = _section(_default_search, _search)
    tuning: TuningSpec = _section(TuningSpec, _record(TuningSpec))
    final: FinalSpec = _section(FinalSpec, _record(FinalSpec))
    diagnostics: DiagnosticsSpec = _section(DiagnosticsSpec, _record(DiagnosticsSpec))
    storage: str | None = _checked(None, _optional_str)  # Optuna URL; None: file in run dir
    tracking_uri: str | None = _checked(None, _optional_str)  # MLflow URI; None: sqlite in run dir
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
            "training": _without_defaults(self.training, NEW_KEYS),
            "search": {name: param.to_dict() for name, param in self.search.items()},
            "tuning": _without_defaults(self.tuning, NEW_KEYS),
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
        from bench.registry import MODELS, NONE, REMEDIES, TASKS

        builtin = {"tasks": TASKS.names(), "models": MODELS.names(),
                   "regularization": (NONE, *REMEDIES.names()),
                   "clipping": (NONE, *REMEDIES.names())}
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
        from bench.registry import remedy

        found = [remedy(name, axis) for axis in ("regularization", "clipping")
                 for name in getattr(self, axis)]
        return [r for r in found if r is not None]


def search_names(spec: SuiteSpec | None = None) -> tuple[str, ...]:
    """The parameters a search may tune: lr, the integer extras, and the remedies' (the
    built-in ones and, given a spec, its plugins')."""
    from bench.registry import REMEDIES

    remedies = [*REMEDIES, *(spec.remedies() if spec is not None else ())]
    return tuple(dict.fromkeys([*BASE_SEARCH, *(p for r in remedies for p in r.search)]))


def _validate(raw: Any) -> SuiteSpec:
    spec: SuiteSpec = _record(SuiteSpec)((), raw)
    if _LENIENT.get() and _unresolved(spec):
        return spec  # a plugin does not import here: its search and checks are its own
    allowed = search_names(spec)
    for name in spec.search:
        if name not in allowed:
            raise _Invalid(("search", name), f"unknown key; valid keys: {', '.join(allowed)}")
    if "lr" not in spec.search:
        raise _Invalid(("search", "lr"), "required: the learning rate is always tuned")
    _check_search_keys(spec)
    for found in spec.remedies():  # a remedy's range the config leaves out: its default
        for param, default in found.search.items():
            spec.search.setdefault(param, SearchParam(param, low=default.low,
                                                      high=default.high, log=default.log))
    _exercise_plugins(spec)
    return spec


def _check_search_keys(spec: SuiteSpec) -> None:
    """Per-model (or per-task) search ranges name a model or task of the grid."""
    tasks = {name for name, _ in spec.tasks} | {registry_name("tasks", n) for n, _ in spec.tasks}
    models = set(spec.models) | {registry_name("models", m) for m in spec.models}
    for name, param in spec.search.items():
        for key, _ in param.by:
            task, slash, model = key.rpartition("/")
            ok = (task in tasks and model in models) if slash else key in tasks | models
            if not ok:
                raise _Invalid(("search", name, key),
                               f"not a model or task of the grid (or task/model); valid: "
                               f"{', '.join([SEARCH_DEFAULT, *sorted(models | tasks)])}")


def _unresolved(spec: SuiteSpec) -> bool:
    from bench.registry import PluginError

    try:
        spec.load_plugins()
    except PluginError:
        return True
    return False


def _exercise_plugins(spec: SuiteSpec) -> None:
    """Build each plugin model and task once, tiny, on the CPU (``bench.plugins``)."""
    from bench import plugins
    from bench.registry import MODELS, TASKS, PluginError

    params = dict(spec.tasks)
    for kind, name in spec.plugins():
        try:
            if kind == "models":
                plugins.check_model(MODELS.get(name))
            elif kind == "tasks":
                plugins.check_task(TASKS.get(name), params[name])
        except ValueError as err:  # PluginError, or the task's own parameter check
            path = ("tasks", name) if kind == "tasks" else (kind,)
            raise _Invalid(path, str(err) if isinstance(err, PluginError) else
                           f"{name}: {err}") from None


# --------------------------------------------------------------------------- files


def packaged_configs() -> dict[str, Path]:
    """The suites shipped inside the package, by name."""
    return dict(sorted((path.stem, path) for path in CONFIG_DIR.glob("*.yaml")))


def default_config_path() -> Path:
    """The packaged default suite (usable after ``pip install``)."""
    return CONFIG_DIR / "default.yaml"


def resolve_config(name_or_path: str | Path) -> Path:
    """An existing file, else the packaged suite of that name (``default``, ``smoke``...).

    Raises:
        ConfigError: neither exists; the message lists the packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = packaged_configs()
    if str(name_or_path) in packaged:
        return packaged[str(name_or_path)]
    raise ConfigError(f"{name_or_path}: no such config file or packaged config; "
                      f"packaged configs: {', '.join(packaged)}")


def _read_yaml(source: Path) -> dict[Any, Any]:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{source}: cannot read: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty; expected a mapping of keys "
                          f"(name, tasks, models, ...)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, "
                          f"got {_show(data)}")
    return data


# --------------------------------------------------------------------------- overrides

# CLI flag -> key path it sets (besides `tasks`, a filter, and `set`, a list of key.path=value)
_FLAG_PATHS: dict[str, KeyPath] = {
    "models": ("models",),
    "trials": ("tuning", "trials"),
    "seeds": ("final", "seeds"),
    "steps": ("training", "steps"),
    "device": ("device",),
    "storage": ("storage",),
    "tracking_uri": ("tracking_uri",),
}
OVERRIDE_KEYS = ("tasks", "set", "data_dir", *_FLAG_PATHS)


def _fields_with_check(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if "check" in f.metadata)


_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "model": MODEL_KEYS,
    "training": _fields_with_check(TrainingSpec),
    "tuning": _fields_with_check(TuningSpec),
    "final": _fields_with_check(FinalSpec),
    "diagnostics": _fields_with_check(DiagnosticsSpec),
}


def _children(prefix: KeyPath) -> tuple[str, ...] | None:
    """Keys allowed below `prefix` (None: a leaf), for checking ``--set`` paths."""
    if not prefix:
        return _fields_with_check(SuiteSpec)
    if prefix == ("tasks",):
        from bench.registry import TASKS

        return TASKS.names()
    if prefix == ("search",):
        return search_names()
    if len(prefix) == 1:
        return _SECTION_KEYS.get(prefix[0])
    if len(prefix) == 2 and prefix[0] == "tasks":
        from bench.registry import TASKS

        return tuple(dict.fromkeys(("seq_len", *TASKS.get(prefix[1]).params, TASK_STEPS)))
    if len(prefix) == 2 and prefix[0] == "search":
        return SEARCH_ENTRY_KEYS
    return None


def _parse_set(item: str) -> tuple[KeyPath, Any]:
    key, sep, text = item.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or "" in path:
        raise ConfigError(f"--set {item}: expected key.path=value")
    for depth, part in enumerate(path):
        allowed = _children(path[:depth])
        if allowed is None:
            raise ConfigError(f"--set {item}: {'.'.join(path[:depth])} has no sub-keys")
        if path[0] == "search" and depth >= 2:  # per-model ranges: checked on validation
            break
        if part not in allowed and path[:depth] != ("search",):  # plugins add their own
            raise ConfigError(f"--set {item}: unknown key {'.'.join(path[:depth + 1])}; "
                              f"valid keys: {', '.join(allowed)}")
    try:
        return path, yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {item}: the value is not valid YAML") from None


def _put(raw: dict[Any, Any], path: KeyPath, value: Any) -> None:
    """Set `value` at `path`, creating (or replacing non-mapping) sections on the way."""
    if path[0] == "model" and len(path) == 2:  # param_budget and hidden_size exclude each other
        raw["model"] = {path[1]: value}
        return
    entry = (raw.get("search") or {}).get(path[1]) if path[0] == "search" else None
    if len(path) == 3 and isinstance(entry, dict) and SEARCH_DEFAULT in entry:
        path = (*path[:2], SEARCH_DEFAULT, path[2])  # ranges by model: --set sets the default
    node = raw
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _filter_tasks(raw: dict[Any, Any], names: Any) -> dict[str, Any]:
    """Keep `names` (in that order); a task the file lacks gets its default parameters."""
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    from bench.registry import TASKS, PluginError

    current = raw.get("tasks")
    if not isinstance(current, dict):
        current = {}
    out = {}
    for name in names:
        try:
            info = TASKS.get(name)
        except PluginError as err:
            raise ConfigError(f"--tasks: {err}") from None
        out[name] = copy.deepcopy(current.get(name, info.shown_defaults()))
    return out


def _flag(key: str, value: Any) -> str:
    shown = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return f"--{key.replace('_', '-')} {shown}"


def _apply_overrides(
    raw: dict[Any, Any], overrides: Mapping[str, Any]
) -> tuple[dict[Any, Any], dict[KeyPath, str]]:
    """Apply CLI overrides to the raw data; returns it and which flag set which path."""
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise ConfigError(f"unknown override(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(OVERRIDE_KEYS)}")
    defaults = SuiteSpec().to_dict()
    raw = {**{k: v for k, v in defaults.items() if k not in raw}, **copy.deepcopy(raw)}
    origins: dict[KeyPath, str] = {}
    for item in overrides.get("set") or ():
        path, value = _parse_set(item)
        _put(raw, path, value)
        origins[path] = f"--set {item}"
    for key, path in _FLAG_PATHS.items():
        if overrides.get(key) is not None:
            value = overrides[key]
            _put(raw, path, list(value) if isinstance(value, tuple) else value)
            origins[path] = _flag(key, value)
    if overrides.get("tasks") is not None:
        raw["tasks"] = _filter_tasks(raw, overrides["tasks"])
        origins[("tasks",)] = _flag("tasks", overrides["tasks"])
    if overrides.get("data_dir") is not None:
        _put_data_dir(raw, str(overrides["data_dir"]), origins)
    return raw, origins


def _put_data_dir(raw: dict[Any, Any], value: str, origins: dict[KeyPath, str]) -> None:
    """``--data-dir DIR``: the ``data_dir`` of every task of the suite whose record reads one."""
    from bench.registry import TASKS, PluginError

    entries = raw.get("tasks") if isinstance(raw.get("tasks"), dict) else {}
    readers = []
    for name in entries:
        try:
            takes = "data_dir" in TASKS.get(name).params
        except PluginError:
            continue  # reported by validation, with its key
        if takes:
            readers.append(name)
    if not readers:
        raise ConfigError(f"--data-dir {value}: none of the suite's tasks "
                          f"({', '.join(map(str, entries)) or 'none'}) reads a data directory")
    for name in readers:
        if not isinstance(entries[name], dict):
            entries[name] = {}
        entries[name]["data_dir"] = value
        origins[("tasks", name, "data_dir")] = f"--data-dir {value}"


def _blame(origins: Mapping[KeyPath, str], path: KeyPath, source: str) -> str:
    """The override that set (a part of) `path`, else the file."""
    label, depth = source, 0
    for set_path, flag in origins.items():
        n = min(len(set_path), len(path))
        if n > depth and set_path[:n] == path[:n]:
            label, depth = flag, n
    return label


def load(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
         plugins: bool = True) -> SuiteSpec:
    """Read, override and validate a suite.

    Args:
        path: a YAML file, or the name of a packaged suite (``default``, ``smoke``, ``full``).
        overrides: from the CLI: ``tasks`` (keep only these), ``models``, ``trials``,
            ``seeds``, ``steps``, ``device``, ``storage``, ``tracking_uri`` (None: not given),
            and ``set``, a list of ``"key.path=value"`` with the value parsed as YAML.
            They are applied to the raw data, so they are validated like the file.
        plugins: False: names that are plugin references are kept unchecked when they do
            not import here (``report`` and ``ui`` read a suite's results, which does not
            need its plugins' code); the grid of such a spec cannot be expanded.

    Raises:
        ConfigError: one line naming the file (or flag), the key path and the problem.
    """
    source = resolve_config(path)
    raw, origins = _apply_overrides(_read_yaml(source), overrides or {})
    token = _LENIENT.set(not plugins)
    try:
        spec = _validate(raw)
    except _Invalid as err:
        where = f"{'.'.join(err.path)}: " if err.path else ""
        label = _blame(origins, err.path, str(source))
        raise ConfigError(f"{label}: {where}{err.problem}") from None
    finally:
        _LENIENT.reset(token)
    return dataclasses.replace(spec, source=source)


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Configuration:
    """One cell of the grid: a task at one sequence length x model x remedies.

    `task_params` are the parameters to build the task with (a single ``seq_len``); they
    follow from task and seq_len within a suite, so they take no part in equality.
    """

    task: str
    seq_len: int | None  # None for har (fixed 128-step windows)
    task_params: dict[str, Any] = field(compare=False)
    model: str
    regularization: str
    clipping: str
    steps: int | None = field(default=None, compare=False)  # tasks.<name>.steps, if given

    def budget(self, spec: SuiteSpec) -> int:
        """Training steps of a run: the task's ``steps``, else ``training.steps``."""
        return self.steps or spec.training.steps

    @property
    def variant(self) -> str:
        """The task at its T: ``adding-T100``, or ``har`` for a task without T."""
        return self.task if self.seq_len is None else f"{self.task}-T{self.seq_len}"

    @property
    def name(self) -> str:
        """E.g. ``adding-T100/lstm/l2/norm`` or ``har/gru/none/none``."""
        return f"{self.variant}/{self.model}/{self.regularization}/{self.clipping}"

    def tags(self) -> dict[str, str]:
        """The cell's coordinates as strings (for run tags)."""
        return {
            "task": self.task,
            "seq_len": "" if self.seq_len is None else str(self.seq_len),
            "model": self.model,
            "regularization": self.regularization,
            "clipping": self.clipping,
        }


def _task_variants(params: Mapping[str, Any]) -> list[tuple[int | None, dict[str, Any]]]:
    """(T, the task's build parameters) per T; ``steps`` is the budget, not a parameter."""
    params = {k: v for k, v in copy.deepcopy(dict(params)).items() if k != TASK_STEPS}
    if "seq_len" not in params:
        return [(None, params)]
    return [(t, {**copy.deepcopy(params), "seq_len": t}) for t in params["seq_len"]]


def expand(spec: SuiteSpec) -> list[Configuration]:
    """Every configuration of the suite, ordered by task, T, model, regularization, clipping.

    Plugins appear under their records' names (``np-rnn``, not ``my_models:NP_RNN``).
    """
    return [
        Configuration(registry_name("tasks", task), seq_len, params,
                      registry_name("models", model), registry_name("regularization", reg),
                      registry_name("clipping", clip), task_params.get(TASK_STEPS))
        for task, task_params in spec.tasks
        for seq_len, params in _task_variants(task_params)
        for model in spec.models
        for reg in spec.regularization
        for clip in spec.clipping
    ]


def shorter(spec: SuiteSpec, configuration: Configuration) -> Configuration | None:
    """With ``tuning.horizon``: the same model and remedies at the task's next shorter T,
    which a configuration waits for (and is left out when none of its final seeds solved
    it); None for the shortest T, a task without T, or without ``tuning.horizon``."""
    if not spec.tuning.horizon or configuration.seq_len is None:
        return None
    same = [c for c in expand(spec) if (c.task, c.model, c.regularization, c.clipping) == (
        configuration.task, configuration.model, configuration.regularization,
        configuration.clipping) and c.seq_len is not None and c.seq_len < configuration.seq_len]
    return max(same, key=lambda c: c.seq_len or 0, default=None)


def search_space(spec: SuiteSpec, configuration: Configuration) -> dict[str, SearchParam]:
    """The tuned parameters of one configuration, each with its range for the
    configuration's model and task (``SearchParam.at``).

    ``lr`` always; a remedy's parameters (``l2``, ``clip``, ...) only where the configuration
    has that remedy; the extras (batch_size, param_budget, hidden_size) whenever the config
    has them.
    """
    from bench.registry import remedy

    used = set(BASE_SEARCH)
    for axis in ("regularization", "clipping"):
        found = remedy(getattr(configuration, axis), axis)
        used.update(found.search if found else ())
    # the shared parameters first: configurations that differ only in their remedies then
    # draw the same learning rates for the same trial (``tuning.sampler_seed``)
    names = sorted((n for n in spec.search if n in used), key=lambda n: n not in BASE_SEARCH)
    return {name: spec.search[name].at(configuration.task, configuration.model)
            for name in names}


# --------------------------------------------------------------------------- resuming

# What gives a configuration's finished results their meaning: a suite resumed with any of
# these changed would mix results of two experiments, so the change is refused
# (``meaning_changes``). Everything else may change between runs: budgets (tuning.trials,
# final.seeds: added work is scheduled), the sampler, the device, the diagnostics, where
# results go. Key paths into ``SuiteSpec.to_dict``; ``tasks`` and ``search`` are the
# configuration's own task parameters and search space. Add a new key that changes what a
# trial computes here.
MEANING_KEYS: tuple[str, ...] = (
    "seed",
    "training.steps",
    "training.batch_size",
    "training.optimizer",
    "training.warmup_steps",
    "training.stop_when_solved",
    "model",
    "tasks",
    "search",
    "tuning.pruner",
    "tuning.objective",
)


def meaning(spec: SuiteSpec, configuration: Configuration) -> dict[str, Any]:
    """The settings (``MEANING_KEYS``) behind a configuration's results, as JSON-able data
    (recorded with its studies when they are created). A key the spec lacks is left out."""
    data = spec.to_dict()
    data["tasks"] = {configuration.task: configuration.task_params}
    data["search"] = {n: p.to_dict() for n, p in search_space(spec, configuration).items()}
    out: dict[str, Any] = {}
    for key in MEANING_KEYS:
        node: Any = data
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            out[key] = node
    return json.loads(json.dumps(out, sort_keys=True, default=str))


_ABSENT = object()


def meaning_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]
                    ) -> list[tuple[str, Any, Any]]:
    """(key path, recorded value, current value; None: absent) of each setting that
    differs, down to the leaves (``search.lr.high``, ``tasks.adding.val_size``). A key of
    ``MEANING_KEYS`` that only one side recorded (added to the list later) is not compared."""
    changes = []
    for key in (k for k in MEANING_KEYS if k in recorded and k in current):
        old, new = _leaves({key: recorded[key]}), _leaves({key: current[key]})
        changes += [(k, old.get(k), new.get(k)) for k in sorted({*old, *new})
                    if old.get(k) != new.get(k)]
    return changes


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


def describe_changes(name: str, changes: Sequence[tuple[str, Any, Any]]) -> str:
    """The one line that refuses a change of meaning: keys, both values, how to go on."""
    shown = "; ".join(f"{key} was {_show_value(old)}, now {_show_value(new)}"
                      for key, old, new in changes)
    return (f"suite {name!r} has results made with other settings ({shown}); resuming would "
            f"mix them: run with the recorded settings, or start a new suite with "
            f"--set name=NEW_NAME")


def _show_value(value: Any) -> str:
    return "absent" if value is None else json.dumps(value, sort_keys=True)

