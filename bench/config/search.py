"""The search space: one entry per tuned parameter, a range or a list of choices, given
once or by model and task (``{default: ..., irnn: ..., copy/irnn: ...}``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.checks import (
    Invalid,
    KeyPath,
    Rule,
    at_least,
    boolean,
    integer,
    known_keys,
    mapping,
    nonempty_list,
    number,
    unique,
)
from bench.config.sections import MODEL_KEYS

INT_SEARCH = ("batch_size", "param_budget", "hidden_size")  # optional integer extras
BASE_SEARCH = ("lr", *INT_SEARCH)  # besides these, the search parameters of the remedies
SEARCH_ENTRY_KEYS = ("low", "high", "log", "grid", "choices")
SEARCH_DEFAULT = "default"  # a search entry given per model or task: its fallback range
_BOUND = f"number >= 0 (integer >= 1 for {', '.join(INT_SEARCH)})"
# What the parameters besides the remedies' tune (a remedy's are its record's).
BASE_SEARCH_DOCS = {
    "lr": "the learning rate; always tuned",
    "batch_size": "examples per step, in place of `training.batch_size`",
    "param_budget": "the models' parameter budget, in place of `model`'s size",
    "hidden_size": "the models' hidden size, in place of `model`'s size",
}


@dataclass(frozen=True)
class SearchParam:
    """One tuned parameter: a range ``[low, high]`` (log-uniform when `log`) or `choices`."""

    name: str
    # The YAML keys of an entry, with what they accept and mean (for the config reference).
    low: float | int | None = field(default=None, metadata={
        "accepts": _BOUND, "doc": "the lower end of the range (> 0 with log); required "
        "without choices"})
    high: float | int | None = field(default=None, metadata={
        "accepts": _BOUND, "doc": "the upper end of the range, >= low; required without "
        "choices"})
    log: bool = field(default=False, metadata={
        "accepts": "true | false", "doc": "draw log-uniformly"})
    grid: int | None = field(default=None, metadata={
        "accepts": "integer >= 2", "doc": "with `tuning.sampler: grid`, the number of "
        "points tried: spaced evenly from low to high, ends included (on a log scale with "
        "log); only with that sampler"})
    choices: tuple[float | int, ...] | None = field(default=None, metadata={
        "accepts": "non-empty list of distinct values", "doc": "the values to choose from, "
        "in place of low, high and log"})
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
        grid = {} if self.grid is None else {"grid": self.grid}  # absent: as before it existed
        return {"low": self.low, "high": self.high, "log": self.log, **grid}

    def points(self) -> list[float | int]:
        """The values the grid sampler tries: the choices, or ``grid`` points spaced evenly
        from low to high (geometrically with ``log``), rounded to 3 significant digits
        within the range (integers: rounded, each once)."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None and self.grid is not None
        low, high, n = float(self.low), float(self.high), self.grid
        if self.log:
            ratio = (high / low) ** (1 / (n - 1))
            raw = [low * ratio**i for i in range(n)]
        else:
            raw = [low + (high - low) * i / (n - 1) for i in range(n)]
        raw[0], raw[-1] = low, high
        if self.kind == "int":
            return list(dict.fromkeys(int(round(v)) for v in raw))
        return list(dict.fromkeys(min(max(float(f"{v:.3g}"), low), high) for v in raw))


def _choices(path: KeyPath, value: Any, whole: bool) -> tuple[float | int, ...]:
    items = nonempty_list(path, value, "values")
    out = tuple(integer(path, v, 1) if whole else number(path, v) for v in items)
    unique(path, out)
    return out


def _range(path: KeyPath, name: str, entry: Mapping[str, Any]) -> SearchParam:
    missing = [key for key in ("low", "high") if key not in entry]
    if missing:
        raise Invalid(path, f"missing {' and '.join(missing)}: give low and high, or choices")
    bound: Callable[[KeyPath, Any], float | int]
    bound = at_least(1) if name in INT_SEARCH else number
    low, high = bound(path + ("low",), entry["low"]), bound(path + ("high",), entry["high"])
    log = boolean(path + ("log",), entry.get("log", False))
    grid = integer(path + ("grid",), entry["grid"], 2) if "grid" in entry else None
    if low > high:
        raise Invalid(path, f"low must be <= high, got low={low} > high={high}")
    if log and low <= 0:
        raise Invalid(path + ("low",), f"must be > 0 with log: true, got {low}")
    return SearchParam(name, low=low, high=high, log=log, grid=grid)


def _search_param(path: KeyPath, name: str, value: Any) -> SearchParam:
    """One entry: a range or choices, or ``{default: ..., <model or task>: ...}``."""
    entry = mapping(path, value)
    if SEARCH_DEFAULT not in entry:
        return _one_range(path, name, entry)
    mixed = [key for key in entry if key in SEARCH_ENTRY_KEYS]
    if mixed:
        keys = ", ".join(SEARCH_ENTRY_KEYS)
        raise Invalid(path + (str(mixed[0]),), f"give either one range ({keys}) or ranges "
                      f"by model or task under {SEARCH_DEFAULT}, not both")
    default = _one_range(path + (SEARCH_DEFAULT,), name, mapping(path, entry[SEARCH_DEFAULT]))
    by = tuple(sorted((str(key), _one_range(path + (str(key),), name, mapping(path, item)))
                      for key, item in entry.items() if key != SEARCH_DEFAULT))
    return dataclasses.replace(default, by=by)


def _one_range(path: KeyPath, name: str, entry: Mapping[Any, Any]) -> SearchParam:
    known_keys(path, entry, SEARCH_ENTRY_KEYS)
    if "choices" not in entry:
        return _range(path, name, entry)
    if len(entry) > 1:
        raise Invalid(path, "give either choices or low/high/log/grid, not both")
    return SearchParam(name, choices=_choices(path + ("choices",), entry["choices"],
                                              name in INT_SEARCH))


def _search(path: KeyPath, value: Any) -> dict[str, SearchParam]:
    """The entries; which names are allowed depends on the remedies (``schema.validate``)."""
    data = mapping(path, value)
    if all(key in data for key in MODEL_KEYS):
        raise Invalid(path, f"tune at most one of {' or '.join(MODEL_KEYS)}")
    return {name: _search_param(path + (name,), name, item) for name, item in data.items()}


check_search = Rule("mapping: parameter -> range or choices", _search)


GRID_SAMPLER = "grid"


def check_grid_entries(sampler: str, search: Mapping[str, SearchParam]) -> None:
    """With the grid sampler each range has its points (``grid``); with another, no range
    has ``grid`` (it would change nothing)."""
    for path, param in _entries(search):
        if sampler != GRID_SAMPLER and param.grid is not None:
            raise Invalid(path + ("grid",), f"used only with tuning.sampler: {GRID_SAMPLER} "
                          f"(this suite's is {sampler})")
        if sampler == GRID_SAMPLER and param.choices is None and param.grid is None:
            raise Invalid(path, f"tuning.sampler: {GRID_SAMPLER} tries given points: add "
                          f"grid: N (N points from low to high), or give choices")


def check_grid_trials(trials: int, spaces: Mapping[str, Mapping[str, SearchParam]]) -> None:
    """With the grid sampler, each configuration's grid (``spaces``: its search space by
    name) has as many points as ``trials``, so that every point runs once."""
    for name, space in spaces.items():
        sizes = {key: len(param.points()) for key, param in space.items()}
        size = math.prod(sizes.values())
        if size != trials:
            shown = " x ".join(f"{key}: {n}" for key, n in sizes.items())
            raise Invalid(("tuning", "trials"), f"the grid sampler runs each point of the "
                          f"grid once: {name} has {size} ({shown}), so give trials: {size}, "
                          f"got {trials}")


def _entries(search: Mapping[str, SearchParam]) -> list[tuple[KeyPath, SearchParam]]:
    """Every range with its key path: one per parameter, or its default and its ranges by
    model or task."""
    out: list[tuple[KeyPath, SearchParam]] = []
    for name, param in search.items():
        if not param.by:
            out.append((("search", name), param))
            continue
        out.append((("search", name, SEARCH_DEFAULT), dataclasses.replace(param, by=())))
        out += [(("search", name, key), item) for key, item in param.by]
    return out
