"""Resuming: the settings that give a configuration's results their meaning, and the one
line that refuses to resume a suite whose meaning changed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bench.config.grid import Configuration, search_space
from bench.config.schema import SuiteSpec
from bench.config.sections import NEW_KEYS, TrainingSpec, TuningSpec

# What gives a configuration's finished results their meaning: a suite resumed with any of
# these changed would mix results of two experiments, so the change is refused
# (``meaning_changes``). Everything else may change between runs: budgets (tuning.trials,
# final.seeds: added work is scheduled), the sampler, the device, the diagnostics, where
# results go. Key paths into ``SuiteSpec.to_dict``; ``tasks`` and ``search`` are the
# configuration's own task parameters and search space, ``budget`` its training steps (its
# task's ``steps``, else ``training.steps``: ``Configuration.budget``). Add a new key that
# changes what a trial computes here.
MEANING_KEYS: tuple[str, ...] = (
    "seed",
    "budget",
    "training.steps",
    "training.batch_size",
    "training.eval_every",
    "training.optimizer",
    "training.warmup_steps",
    "training.stop_when_solved",
    "training.diverge_factor",
    "model",
    "tasks",
    "search",
    "tuning.pruner",
    "tuning.objective",
)
# Read in place of another where a record holds both: ``training.steps`` is compared only
# with a record made before the budget was recorded (it was the budget's stand-in then).
_SUPERSEDED = {"training.steps": "budget"}
# A key that ``SuiteSpec.to_dict`` leaves out at its default (``sections.NEW_KEYS``): a record
# that lacks it was made with its default (or before it existed, when the default is what
# every run did), so it reads as that. Any other key a record lacks was not recorded then
# and is not compared.
_DEFAULTS: dict[str, Any] = {
    f"{section}.{f.name}": f.default
    for section, record in (("training", TrainingSpec), ("tuning", TuningSpec))
    for f in dataclasses.fields(record) if f.name in NEW_KEYS}


def meaning(spec: SuiteSpec, configuration: Configuration) -> dict[str, Any]:
    """The settings (``MEANING_KEYS``) behind a configuration's results, as JSON-able data
    (recorded with its studies when they are created). A key the spec lacks is left out."""
    data = spec.to_dict()
    data["tasks"] = {configuration.task: configuration.task_params}
    data["search"] = {n: p.to_dict() for n, p in search_space(spec, configuration).items()}
    data["budget"] = configuration.budget(spec)
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
    differs, down to the leaves (``search.lr.high``, ``tasks.adding.val_size``). A key a
    record lacks reads as its old value where that is known (``_DEFAULTS``); a key of
    ``MEANING_KEYS`` that only one side recorded otherwise (added to the list later) is not
    compared, and a superseded key (``_SUPERSEDED``) only where the record lacks the key
    that supersedes it."""
    recorded, current = _with_defaults(recorded), _with_defaults(current)
    changes = []
    for key in (k for k in MEANING_KEYS if k in recorded and k in current):
        newer = _SUPERSEDED.get(key)
        if newer is not None and newer in recorded and newer in current:
            continue
        old, new = _leaves({key: recorded[key]}), _leaves({key: current[key]})
        changes += [(k, old.get(k), new.get(k)) for k in sorted({*old, *new})
                    if old.get(k) != new.get(k)]
    return changes


def _with_defaults(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**json.loads(json.dumps(_DEFAULTS)), **record}


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

