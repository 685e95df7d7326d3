"""Suite files: the packaged suites, a name or path resolved to a file, the file's YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.checks import with_type

# packaged suites (default, smoke, full)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A bad configuration; the message is one line: source, key path, problem."""


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


def suite_path(suite: str) -> Path:
    """The suite a command names: a path that exists as given, else a packaged suite's."""
    return Path(suite) if Path(suite).exists() else resolve_config(suite)


def read_yaml(source: Path) -> dict[Any, Any]:
    """The top-level mapping of a suite file.

    Raises:
        ConfigError: unreadable, not YAML, empty, or not a mapping; one line.
    """
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
                          f"got {with_type(data)}")
    return data
