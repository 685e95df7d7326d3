"""How a registry finds its records, and what it refuses.

A ``Registry`` holds the records of one kind (``bench.registry`` makes the three: tasks,
models, remedies). Its built-ins are found by scanning its folder, once; a plugin is
imported when its name is first looked up, from a reference (``package.module:attribute``)
or an entry point of the group ``gradbench.<folder>`` (``gradbench.tasks``,
``gradbench.models``, ``gradbench.remedies``).

A registry refuses rather than guesses (as torchvision's ``register_model`` does):

- every module of its folder declares its record, or says it is a helper with a module-level
  ``HELPER = True`` (shared code such as ``bench.models.cells``, ``tasks.synthetic``,
  ``tasks.har_data``: a marker, not a leading underscore, so their public import paths stay
  as they are; modules whose name starts with ``_`` are private and skipped too). A module
  with neither, e.g. a misspelled ``MODLE = ModelInfo(...)``, stops the scan with a
  ``RegistryError`` naming the module;
- a name belongs to one record: two built-ins, a plugin and a built-in, or two plugins with
  one name raise an error naming both places (``module:attribute`` or the entry point). The
  same record reached twice (a reference and the entry point that names it) is one record.

A ``RegistryError`` is the project's own mistake, not a user's, so it is no ``PluginError``:
the readers that go on without a plugin they cannot have (``Registry.find``) never hide it.
A plugin that does not import, names a missing attribute, or holds something that is not a
record of the right kind raises a ``PluginError`` whose message is one line.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from bench.errors import error_line


class _Record(Protocol):
    """What a registry reads of each of its records: the name and the display rank."""

    @property
    def name(self) -> str: ...

    @property
    def rank(self) -> int: ...


T = TypeVar("T", bound=_Record)
_MARKER = "HELPER"  # a module of a registry's folder that sets HELPER = True is no record
_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
NONE = "none"  # the "no remedy" entry of each axis: a name no record may take


class PluginError(ValueError):
    """A task, model or remedy that cannot be used; the message is one line."""


class UnknownName(PluginError):
    """A name that is neither built in, nor an installed entry point, nor a reference."""


class RegistryError(RuntimeError):
    """A registry's own folder is wrong (a module without its record, two built-ins with one
    name); the message is one line naming the module(s)."""


def is_reference(name: str) -> bool:
    """``package.module:attribute``, a plugin named by where it lives."""
    return bool(_REF_RE.fullmatch(name))


class Registry(Generic[T]):
    """The records of one kind: built-ins found in ``package``, plugins on demand."""

    def __init__(self, kind: str, record: type[T], package: str, attr: str) -> None:
        self.kind, self.record, self.package, self.attr = kind, record, package, attr
        self.group = f"gradbench.{package.rsplit('.', 1)[-1]}"  # gradbench.remedies, ...
        self._builtin: dict[str, T] | None = None
        self._plugins: dict[str, T] = {}  # reference, entry point's or record's name -> record
        self._places: dict[str, str] = {}  # a name or reference -> where its record was found

    def builtin(self) -> dict[str, T]:
        """Name -> record of the modules in the package, in display order.

        Raises:
            RegistryError: a module that neither declares its record nor is a helper, or two
                modules whose records have one name.
        """
        if self._builtin is None:
            found: dict[str, tuple[T, str]] = {}
            for module in self._modules():
                record = self._declared(module)
                if record is None:
                    continue
                place = f"{module.__name__}:{self.attr}"
                if record.name in found:
                    raise RegistryError(f"{self.kind} {record.name!r} is declared twice: "
                                        f"{found[record.name][1]} and {place}")
                found[record.name] = (record, place)
            ordered = sorted(found.values(), key=lambda item: (item[0].rank, item[0].name))
            self._places.update({name: place for name, (_, place) in found.items()})
            self._builtin = {record.name: record for record, _ in ordered}
        return self._builtin

    def _modules(self) -> Iterator[ModuleType]:
        """The package's public modules (no leading ``_``), imported, by file name."""
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                yield importlib.import_module(f"{self.package}.{module.name}")

    def _declared(self, module: ModuleType) -> T | None:
        """The record ``module`` declares; None for a helper (``HELPER = True``).

        Raises:
            RegistryError: a module with neither (or both), named with its file.
        """
        helper = getattr(module, _MARKER, False) is True
        value = getattr(module, self.attr, None)
        where = f"{self.kind} module {module.__name__} ({module.__file__})"
        if helper and value is not None:
            raise RegistryError(f"{where}: it says {_MARKER} = True but declares {self.attr}; "
                                "a module is a record or a helper")
        if helper or isinstance(value, self.record):
            return value
        if value is not None:
            raise RegistryError(f"{where}: its {self.attr} is a {type(value).__name__}, not a "
                                f"{self.record.__name__} record")
        others = sorted(key for key, item in vars(module).items()
                        if isinstance(item, self.record))
        held = f"; it holds a {self.record.__name__} as {', '.join(others)}" if others else ""
        raise RegistryError(f"{where}: no {self.attr} record{held} (a module of shared code "
                            f"says {_MARKER} = True)")

    def names(self) -> tuple[str, ...]:
        return tuple(self.builtin())

    def get(self, name: str) -> T:
        """The record of a built-in name, a plugin reference, or an entry point's name.

        Raises:
            PluginError: unknown name (the message lists the valid ones), a bad plugin, or a
                plugin whose name another record has.
            RegistryError: the built-in folder is wrong (see ``builtin``).
        """
        builtin = self.builtin()
        if name in builtin:
            return builtin[name]
        if name in self._plugins:
            return self._plugins[name]
        if is_reference(name):
            place, record = name, self._check(name, _import_reference(name, self.kind))
        else:
            place, record = self._from_entry_point(name)
        self._add(name, place, record)
        return record

    def where(self, name: str) -> str:
        """Where the record of ``name`` was found: ``module:attribute`` (a built-in or a
        reference), or ``name (entry point module:attribute)``."""
        self.get(name)
        return self._places[name]

    def find(self, name: str) -> T | None:
        """The record of ``name``, or None where it cannot be had here (unknown, or a plugin
        that does not import): for readers of results, which go on without it."""
        try:
            return self.get(name)
        except PluginError:
            return None

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

    def __iter__(self) -> Iterator[T]:
        return iter(self.builtin().values())

    def _add(self, key: str, place: str, record: T) -> None:
        """Keep a plugin under ``key`` (its reference or entry point) and its name, which
        must not be another plugin's (the same record reached twice is one)."""
        taken = self._plugins.get(record.name)
        if taken is not None and taken != record:
            raise PluginError(f"{self.kind} {place}: its name {record.name!r} is taken by the "
                              f"plugin {self._places[record.name]}")
        for known in (key, record.name):
            self._plugins.setdefault(known, record)
            self._places.setdefault(known, place)

    def _from_entry_point(self, name: str) -> tuple[str, T]:
        """Where the entry point ``name`` of the group points, and its checked record."""
        group = metadata.entry_points(group=self.group)
        points = {ep.value: ep for ep in group if ep.name == name}
        if not points:
            installed = sorted(ep.name for ep in group)
            raise UnknownName(unknown_text(self.kind, name, [*self.builtin(), *installed]))
        if len(points) > 1:
            raise PluginError(f"{self.kind} {name!r}: the entry points "
                              f"{' and '.join(sorted(points))} have one name")
        (point,) = points.values()
        try:
            value = point.load()
        except Exception as err:  # the plugin's own import failed
            raise PluginError(f"{self.kind} {name!r} (entry point {point.value}): cannot "
                              f"load it: {error_line(err, with_type=True)}") from None
        place = f"{name} (entry point {point.value})"
        return place, self._check(place, value)

    def _check(self, where: str, value: Any) -> T:
        """The value must be a record of this kind, named like nothing built in."""
        if not isinstance(value, self.record):
            raise PluginError(f"{self.kind} {where}: expected a {self.record.__name__} "
                              f"record (bench.registry.{self.record.__name__}), got "
                              f"{type(value).__name__}")
        name = value.name
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise PluginError(f"{self.kind} {where}: its name {name!r} must be lower-case "
                              f"letters, digits, '_', '.', '-'")
        if name in self.builtin() or name == NONE:
            place = self._places.get(name, f"{NONE!r} is reserved")
            raise PluginError(f"{self.kind} {where}: its name {name!r} is taken by a built-in "
                              f"{self.kind} ({place})")
        _check_callables(self.kind, where, value)
        return value


def unknown_text(what: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """The message of an ``UnknownName``: what the valid names are."""
    return (f"unknown {what} {name!r}; valid: {', '.join(valid)} (or a plugin: "
            f"package.module:attribute)")


def _check_callables(kind: str, where: str, value: Any) -> None:
    for f in fields(value):
        item = getattr(value, f.name)
        hooks = ("penalty", "after_backward", "after_step", "optimizer_args")
        if item is None and f.name in hooks:
            continue
        if f.name in ("build", "layer", "init", "cell", *hooks) and not callable(item):
            raise PluginError(f"{kind} {where}: {f.name} must be callable, got "
                              f"{type(item).__name__}")


def _import_reference(reference: str, kind: str) -> Any:
    """The attribute named by ``package.module:attribute`` (the working directory is on the
    path, as for ``python -m``)."""
    module_name, attribute = reference.split(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise PluginError(f"{kind} {reference}: cannot import {module_name}: "
                          f"{error_line(err, with_type=True)}") from None
    if not hasattr(module, attribute):
        raise PluginError(f"{kind} {reference}: module {module_name} has no attribute "
                          f"{attribute!r}")
    return getattr(module, attribute)
