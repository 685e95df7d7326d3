"""Resuming: the settings that give a configuration's results their meaning, and the one
line that refuses to resume a suite whose meaning changed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bench.config.grid import Configuration, search_space
from bench.config.schema import SuiteSpec

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

