"""How a config key is declared and checked.

A section of the schema is a frozen dataclass whose fields carry, in their metadata, the
key's check (a ``bench.checks.Rule``: the check and what it accepts in words) and its
meaning (``doc``): `checked` and `section` declare them, `record` validates a mapping
against them, and the config reference (``bench.config.reference``) prints them. Beside
them live the checks of names that the registry knows (tasks, models, remedies, plugins).
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable
from typing import Any

from bench import registry
from bench.checks import (
    Invalid,
    KeyPath,
    Rule,
    known_keys,
    mapping,
    nonempty_list,
    unique,
    with_type,
)

# Lenient loading (``load(..., plugins=False)``): a plugin reference that does not import
# here is kept unchecked.
LENIENT = contextvars.ContextVar("lenient_plugins", default=False)


def checked(default: Any, rule: Rule, doc: str) -> Any:
    """A dataclass field with a default, its check and its meaning."""
    return dataclasses.field(default=default, metadata={"check": rule, "doc": doc})


def section(factory: Callable[[], Any], rule: Rule, doc: str) -> Any:
    """A field whose default is built by ``factory`` (a section, a table), checked by ``rule``."""
    return dataclasses.field(default_factory=factory, metadata={"check": rule, "doc": doc})


def checked_keys(cls: type[Any]) -> tuple[str, ...]:
    """The keys of a section: its fields that carry a check, in order."""
    return tuple(f.name for f in dataclasses.fields(cls) if "check" in f.metadata)


def record(cls: type[Any]) -> Rule:
    """Validate a mapping against a dataclass whose fields carry a ``check`` in metadata.

    Keys absent from the mapping take the field defaults; unknown keys are errors.
    """

    def check(path: KeyPath, value: Any) -> Any:
        data = mapping(path, value)
        checks = {f.name: f.metadata["check"] for f in dataclasses.fields(cls)
                  if "check" in f.metadata}
        known_keys(path, data, tuple(checks))
        return cls(**{key: checks[key](path + (key,), item) for key, item in data.items()})

    return Rule("mapping", check)


def lookup(path: KeyPath, name: Any, find: Callable[[str], Any]) -> Any:
    """The registry record of ``name``; a problem (unknown, bad plugin) names the key.

    In lenient loading (``load(..., plugins=False)``) a plugin reference that does not
    import gives None instead.
    """
    if not isinstance(name, str):
        raise Invalid(path, f"expected a name, got {with_type(name)}")
    try:
        return find(name)
    except registry.PluginError as err:
        if LENIENT.get() and registry.is_reference(name):
            return None
        raise Invalid(path, str(err)) from None


def names(what: str) -> Rule:
    """A non-empty list of distinct names of the registry (or plugin references), kept in
    the order given; ``what`` is models, regularization or clipping."""

    def check(path: KeyPath, value: Any) -> tuple[str, ...]:
        find: Callable[[str], Any] = registry.MODELS.get
        if what != "models":
            find = lambda name: registry.remedy(name, what)  # noqa: E731
        found = [lookup(path, item, find) for item in
                 nonempty_list(path, value, f"{what} names")]
        unique(path, value)
        if all(record is not None or item == registry.NONE
               for record, item in zip(found, value, strict=True)):
            unique(path, [registry_name(what, item) for item in value])
        return tuple(value)

    return Rule(f"list of {'model' if what == 'models' else what} names", check)


def registry_name(what: str, name: str) -> str:
    """The record's name of a grid entry (a plugin reference resolves to its record's)."""
    if name == registry.NONE or not registry.is_reference(name):
        return name
    tables: dict[str, registry.Registry[Any]] = {"tasks": registry.TASKS,
                                                 "models": registry.MODELS}
    table = tables.get(what, registry.REMEDIES)
    return str(table.get(name).name)
