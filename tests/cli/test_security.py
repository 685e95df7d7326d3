"""Security rules that hold for the whole code base, and the masking of secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.config import load
from bench.errors import mask_secrets

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("bench/**/*.py"), *ROOT.glob("tasks/**/*.py")])

# (what, pattern that must not appear in the product's code)
FORBIDDEN = [
    ("unsafe YAML loading", re.compile(r"yaml\.(?:load|unsafe_load|full_load)\(")),
    ("unpickling", re.compile(r"\bpickle\.loads?\(|cloudpickle\.loads?\(")),
    ("numpy object arrays", re.compile(r"allow_pickle\s*=\s*True")),
    ("torch.load without weights_only=True",
     re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)")),
    ("extracting archives without checks", re.compile(r"\.extractall\(")),
    ("eval / exec", re.compile(r"(?<![.\w])(?:eval|exec)\(")),
    ("binding the UI to every interface by default", re.compile(r"default=\"0\.0\.0\.0\"")),
]


@pytest.mark.parametrize(("what", "pattern"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_code_base_never_does(what: str, pattern: re.Pattern) -> None:
    assert SOURCES, "no sources found"
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in SOURCES
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"{what}: {hits}"


@pytest.mark.parametrize(("text", "masked"), [
    ("postgresql+psycopg2://user:pa:ss@db:5432/x", "postgresql+psycopg2://user:***@db:5432/x"),
    ("http://alice:s3cret@mlflow:5000", "http://alice:***@mlflow:5000"),
    ("run --storage postgresql://u:p@h/db --tracking-uri http://h:5000",
     "run --storage postgresql://u:***@h/db --tracking-uri http://h:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
])
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_the_recorded_config_is_masked(tmp_path: Path) -> None:
    spec = load("smoke", {"storage": "postgresql://gb:topsecret@127.0.0.1/x",
                          "tracking_uri": "http://gb:topsecret@127.0.0.1:5000"})
    public = spec.public_dict()
    assert "topsecret" not in str(public)
    assert public["storage"] == "postgresql://gb:***@127.0.0.1/x"
    assert spec.storage == "postgresql://gb:topsecret@127.0.0.1/x"  # still usable in-process


def test_the_effective_tracking_uri_is_recorded_masked(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracking URI from the environment is recorded with the suite, masked; the embedded
    store is not (it follows the run directory)."""
    from bench.run.suite import Suite, recorded_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://gb:topsecret@trackinghost:5000")
    suite = Suite(load("smoke"), tmp_path / "smoke", [])
    assert recorded_config(suite)["tracking_uri"] == "http://gb:***@trackinghost:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert recorded_config(suite)["tracking_uri"] is None
