"""Checks of values read from a config or given to a record: one set, one wording.

A check returns the value it accepts, or raises `Invalid` with the problem in one line and
the key path where the value sits. The config checks every key with these (``bench.config``
passes the key path); a task's parameter check (``bench.registry.TaskParam``) is the same
check at no path, its message shown as Python writes the value (``show=repr``), while a
config's names the value's YAML type too (``'5' (str)``: quoted in the file).

`Rule` pairs a check with what it accepts in words, which the config reference
(docs/config.md) prints beside each key.

This module imports nothing of the project: the registry and the config both build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str, ...]
Check = Callable[[KeyPath, Any], Any]  # (key path, raw value) -> validated value
Show = Callable[[Any], str]  # how a message shows a bad value


class Invalid(ValueError):
    """A value that fails a check: the problem, and the key path where the value sits
    (empty where the check is not told it); ``str()`` is the problem alone."""

    def __init__(self, path: Sequence[str], problem: str) -> None:
        super().__init__(problem)
        self.path: KeyPath = tuple(path)
        self.problem = problem


def with_type(value: Any) -> str:
    """A bad value and its YAML type, e.g. ``'5' (str)`` or ``None (null)``."""
    kind = "null" if value is None else type(value).__name__
    return f"{value!r} ({kind})"


def integer(path: KeyPath, value: Any, minimum: int | None = None, *,
            show: Show = with_type) -> int:
    """An integer (not a bool), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int in Python
        raise Invalid(path, f"expected an integer, got {show(value)}")
    if minimum is not None and value < minimum:
        raise Invalid(path, f"must be >= {minimum}, got {value}")
    return value


def number(path: KeyPath, value: Any, minimum: float = 0.0) -> float:
    """An integer or a float (not a bool), at least ``minimum``, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(path, f"expected a number, got {with_type(value)}")
    if value < minimum:
        raise Invalid(path, f"must be >= {minimum:g}, got {value}")
    return float(value)


def boolean(path: KeyPath, value: Any, *, show: Show = with_type) -> bool:
    """True or false."""
    if not isinstance(value, bool):
        raise Invalid(path, f"expected true or false, got {show(value)}")
    return value


def optional_str(path: KeyPath, value: Any, *, show: Show = with_type) -> str | None:
    """A non-empty string, or null."""
    if value is not None and (not isinstance(value, str) or not value):
        raise Invalid(path, f"expected a non-empty string or null, got {show(value)}")
    return value


def one_of(path: KeyPath, value: Any, choices: Sequence[str]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise Invalid(path, f"expected one of {', '.join(choices)}, got {with_type(value)}")
    return value


def mapping(path: KeyPath, value: Any) -> dict[Any, Any]:
    """A mapping; null (a section with nothing after it, ``training:``) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(path, f"expected a mapping, got {with_type(value)}")
    return value


def known_keys(path: KeyPath, data: Mapping[Any, Any], allowed: Sequence[str]) -> None:
    """Every key of ``data`` is one of ``allowed``; the problem names the first that is not."""
    for key in data:
        if key not in allowed:
            raise Invalid(path + (str(key),), f"unknown key; valid keys: {', '.join(allowed)}")


def unique(path: KeyPath, values: Sequence[Any]) -> None:
    """No value twice."""
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise Invalid(path, f"duplicate value {value!r}")
        seen.append(value)


def nonempty_list(path: KeyPath, value: Any, what: str) -> list[Any]:
    """A list with at least one item; ``what`` names the items in the problem."""
    if not isinstance(value, list) or not value:
        raise Invalid(path, f"expected a non-empty list of {what}, got {with_type(value)}")
    return value


@dataclass(frozen=True)
class Rule:
    """A check of one config key, and what it accepts in words (for the config reference)."""

    accepts: str
    check: Check

    def __call__(self, path: KeyPath, value: Any) -> Any:
        return self.check(path, value)


def at_least(minimum: int) -> Rule:
    """An integer, at least ``minimum``."""
    return Rule(f"integer >= {minimum}", lambda path, value: integer(path, value, minimum))


def choice(choices: Sequence[str]) -> Rule:
    """One of ``choices``."""
    return Rule(" | ".join(choices), lambda path, value: one_of(path, value, choices))


BOOLEAN = Rule("true | false", boolean)
OPTIONAL_STR = Rule("string | null", optional_str)
