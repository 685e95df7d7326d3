"""Reading a suite: the file, the command line's overrides on top, then validation.

The overrides (``--tasks``, ``--models``, ``--trials``, ..., ``--set key.path=value``) are
applied to the file's raw data, so they are checked like the file; a problem names the flag
that set the key, else the file. The command line wins over the file: ``--steps N`` is the
budget of every run, so it sets ``training.steps`` and every task's own ``steps`` (which
win over ``training.steps`` in the file: ``Configuration.budget``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.checks import Invalid, KeyPath
from bench.config.fields import LENIENT, checked_keys
from bench.config.files import ConfigError, read_yaml, resolve_config, suite_path
from bench.config.grid import expand, search_space
from bench.config.schema import SuiteSpec, search_names, validate
from bench.config.search import GRID_SAMPLER, SEARCH_DEFAULT, SEARCH_ENTRY_KEYS, check_grid_trials
from bench.config.sections import (
    MODEL_KEYS,
    TASK_STEPS,
    DiagnosticsSpec,
    FinalSpec,
    TrainingSpec,
    TuningSpec,
)
from bench.registry import TASKS, PluginError

# CLI flag -> key path it sets (besides `tasks`, a filter, and `set`, a list of key.path=value)
FLAG_PATHS: dict[str, KeyPath] = {
    "models": ("models",),
    "trials": ("tuning", "trials"),
    "seeds": ("final", "seeds"),
    "steps": ("training", "steps"),
    "device": ("device",),
    "storage": ("storage",),
    "tracking_uri": ("tracking_uri",),
}
OVERRIDE_KEYS = ("tasks", "set", "data_dir", *FLAG_PATHS)

_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "model": MODEL_KEYS,
    "training": checked_keys(TrainingSpec),
    "tuning": checked_keys(TuningSpec),
    "final": checked_keys(FinalSpec),
    "diagnostics": checked_keys(DiagnosticsSpec),
}


def _children(prefix: KeyPath) -> tuple[str, ...] | None:
    """Keys allowed below `prefix` (None: a leaf), for checking ``--set`` paths."""
    if not prefix:
        return checked_keys(SuiteSpec)
    if prefix == ("tasks",):
        return TASKS.names()
    if prefix == ("search",):
        return search_names()
    if len(prefix) == 1:
        return _SECTION_KEYS.get(prefix[0])
    if len(prefix) == 2 and prefix[0] == "tasks":
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
    if len(path) == 3 and isinstance(entry, dict) and SEARCH_DEFAULT in entry \
            and path[2] in SEARCH_ENTRY_KEYS:
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
    for key, path in FLAG_PATHS.items():
        if overrides.get(key) is not None:
            value = overrides[key]
            _put(raw, path, list(value) if isinstance(value, tuple) else value)
            origins[path] = _flag(key, value)
    if overrides.get("steps") is not None:
        _put_task_steps(raw, overrides["steps"], origins)
    if overrides.get("tasks") is not None:
        raw["tasks"] = _filter_tasks(raw, overrides["tasks"])
        origins[("tasks",)] = _flag("tasks", overrides["tasks"])
    if overrides.get("data_dir") is not None:
        _put_data_dir(raw, str(overrides["data_dir"]), origins)
    return raw, origins


def _put_task_steps(raw: dict[Any, Any], value: Any, origins: dict[KeyPath, str]) -> None:
    """``--steps N``: the budget of every run, in place of each task's own ``steps`` too."""
    given = raw.get("tasks")
    for name, entry in (given.items() if isinstance(given, dict) else ()):
        if isinstance(entry, dict) and TASK_STEPS in entry:
            entry[TASK_STEPS] = value
            origins[("tasks", name, TASK_STEPS)] = _flag("steps", value)


def _put_data_dir(raw: dict[Any, Any], value: str, origins: dict[KeyPath, str]) -> None:
    """``--data-dir DIR``: the ``data_dir`` of every task of the suite whose record reads one."""
    given = raw.get("tasks")
    entries: dict[Any, Any] = given if isinstance(given, dict) else {}
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
    raw, origins = _apply_overrides(read_yaml(source), overrides or {})
    token = LENIENT.set(not plugins)
    try:
        spec = validate(raw)
        if spec.tuning.sampler == GRID_SAMPLER and not LENIENT.get():  # the grid expands
            check_grid_trials(spec.tuning.trials,
                              {c.name: search_space(spec, c) for c in expand(spec)})
    except Invalid as err:
        where = f"{'.'.join(err.path)}: " if err.path else ""
        label = _blame(origins, err.path, str(source))
        raise ConfigError(f"{label}: {where}{err.problem}") from None
    finally:
        LENIENT.reset(token)
    return dataclasses.replace(spec, source=source)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides of ``load`` that a command's parsed flags give (those not given left
    out; ``--tasks`` and ``--models`` split at commas)."""
    names = ("tasks", "models", "trials", "seeds", "steps", "device", "storage", "tracking_uri",
             "data_dir")
    out: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    for key in ("tasks", "models"):
        if key in out:
            out[key] = [v.strip() for v in out[key].split(",") if v.strip()]
    if getattr(args, "set", None):
        out["set"] = list(args.set)
    return out


def load_args(args: argparse.Namespace) -> SuiteSpec:
    """The suite ``gradbench run`` (and ``cost``) read: the config file or packaged name
    ``args.suite``, with the command's flags as overrides."""
    return load(suite_path(args.suite), cli_overrides(args))
