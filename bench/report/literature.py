"""Published results beside the benchmark's numbers: ``literature.yaml``, read and checked.

Each entry of the reviewed file names its source (and where in it), the exact setting, the
number, and whether the setting matches this benchmark's task, T and metric (``comparable``)
with a note on what differs. The report shows a task's entries as a table, with the
benchmark's own best result for the same model beside the comparable ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

FIELDS = ("task", "seq_len", "model", "metric", "value", "source", "url", "where", "setting",
          "comparable", "note")


@dataclass(frozen=True)
class Published:
    """One published number with its source and setting."""

    task: str
    seq_len: int | None
    model: str
    metric: str
    value: float | None  # None: shown only as a figure in the source
    source: str
    url: str
    where: str
    setting: str
    comparable: bool
    note: str


def load(text: str | None = None) -> list[Published]:
    """The entries of ``literature.yaml`` (or of ``text``).

    Raises:
        ValueError: an entry without one of ``FIELDS``, or with a non-numeric value.
    """
    if text is None:
        text = resources.files("bench.report").joinpath("literature.yaml").read_text("utf-8")
    data: Any = yaml.safe_load(text) or {}
    out = []
    for i, entry in enumerate(data.get("results") or []):
        missing = [f for f in FIELDS if f not in entry]
        if missing:
            raise ValueError(f"literature.yaml: results[{i}]: missing {', '.join(missing)}")
        value = entry["value"]
        if value is not None and not isinstance(value, int | float):
            raise ValueError(f"literature.yaml: results[{i}].value: expected a number or "
                             f"null, got {value!r}")
        out.append(Published(**{f: entry[f] for f in FIELDS}))
    return out


def for_task(task: str, entries: list[Published] | None = None) -> list[Published]:
    """The entries of one task, in file order."""
    return [e for e in (load() if entries is None else entries) if e.task == task]
