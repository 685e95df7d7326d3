"""docs/config.md is the schema's own reference: generated, and kept up to date by this test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.config import SearchParam, SuiteSpec, reference
from bench.registry import TASKS

ROOT = Path(__file__).resolve().parents[2]


def test_docs_config_md_is_what_the_schema_generates() -> None:
    written = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    if written != reference.markdown():
        pytest.fail(f"docs/config.md differs from the schema's reference; regenerate it: "
                    f"{reference.COMMAND}")


def test_every_key_has_a_meaning_and_says_what_it_accepts() -> None:
    defaults = SuiteSpec()
    sections = [type(value) for f in dataclasses.fields(SuiteSpec)
                if dataclasses.is_dataclass(value := getattr(defaults, f.name))]
    for cls in (SuiteSpec, *sections):
        for f in dataclasses.fields(cls):
            if "check" in f.metadata:
                assert f.metadata["doc"], f"{cls.__name__}.{f.name}"
                assert f.metadata["check"].accepts, f"{cls.__name__}.{f.name}"
    entries = [f for f in dataclasses.fields(SearchParam) if "doc" in f.metadata]
    assert {f.name for f in entries} == {"low", "high", "log", "grid", "choices"}
    for info in TASKS:
        assert all(param.help for param in info.params.values()), info.name


def test_the_reference_covers_every_key_task_and_search_parameter() -> None:
    text = reference.markdown()
    for key in ("name", "seed", "device", "tasks", "models", "regularization", "clipping",
                "model.param_budget", "model.hidden_size", "training.steps",
                "training.stop_when_solved", "tuning.trials", "tuning.horizon", "final.seeds",
                "diagnostics.probe_every", "storage", "tracking_uri", "search.<param>.low",
                "search.<param>.choices"):
        assert f"| `{key}` |" in text, key
    for info in TASKS:
        assert f"### `{info.name}`" in text
        assert all(f"| `{param}` |" in text for param in info.params)
    for param in ("lr", "batch_size", "l2", "clip"):
        assert f"| `{param}` |" in text
    assert "| `training.steps` | integer >= 1 | `1000` |" in text
    assert "| `device` | auto \\| cpu \\| cuda \\| cuda:N | `auto` |" in text
