"""The config reference, docs/config.md, written from the schema itself.

Every key comes from the dataclass fields (their defaults, their checks' ``accepts`` and
their ``doc``), the tasks' parameters from the task records, the names of models and
remedies and the remedies' search ranges from the registry. A test compares docs/config.md
with `markdown`; after a change of the schema, regenerate it::

    python -m bench.config.reference > docs/config.md
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from bench import registry
from bench.config.meaning import MEANING_KEYS
from bench.config.overrides import FLAG_PATHS
from bench.config.schema import SuiteSpec, default_search
from bench.config.search import BASE_SEARCH, BASE_SEARCH_DOCS, SEARCH_DEFAULT, SearchParam
from bench.config.sections import NEW_KEYS, TASK_STEPS

COMMAND = "python -m bench.config.reference > docs/config.md"
Row = tuple[str, ...]

_INTRO = f"""\
# Configuration reference

<!-- Generated from the schema in bench/config by `{COMMAND}`;
     edit the fields' docs there, not this file. -->

A suite is one YAML file (`gradbench run my-suite.yaml`) or a packaged suite by name
(`default`, `smoke`, `full`, ...). Keys the file leaves out take the defaults below, so a
file may be partial; an unknown key at any level, a wrong type or a bad range stops the run
with one line naming the file (or the flag), the key path and the problem. Any key can be
overridden on the command line with `--set key.path=value` (the value read as YAML).
"""


def _yaml(value: Any) -> str:
    """A value as YAML in one line (``[rnn, lstm]``, ``null``, ``{low: 0.1, high: 10.0}``)."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _table(header: Row, rows: Sequence[Row]) -> str:
    def line(cells: Row) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(tuple("---" for _ in header)), *map(line, rows)])


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _key_rows() -> Iterator[Row]:
    """One row per key of the suite; a section's row, then one per key of it."""
    defaults = SuiteSpec()
    for spec_field in dataclasses.fields(SuiteSpec):
        if "check" not in spec_field.metadata:
            continue
        name, value = spec_field.name, getattr(defaults, spec_field.name)
        rule, doc = spec_field.metadata["check"], spec_field.metadata["doc"]
        if not dataclasses.is_dataclass(value):
            shown = defaults.to_dict()[name]
            yield _code(name), rule.accepts, _code(_yaml(shown)), doc
            continue
        yield _code(name), rule.accepts, "", doc
        for key_field in dataclasses.fields(value):
            if "check" in key_field.metadata:
                key = f"{name}.{key_field.name}"
                yield (_code(key), key_field.metadata["check"].accepts,
                       _code(_yaml(key_field.default)), key_field.metadata["doc"])


def _keys() -> str:
    notes = (f"The keys {', '.join(_code(k) for k in NEW_KEYS)} appear in a resolved config "
             f"(and its hash) only when set to something else than their default.")
    return "\n\n".join(["## Keys", _table(("key", "accepts", "default", "meaning"),
                                          list(_key_rows())), notes])


def _accepts(check: Any) -> str:
    """What a task parameter's check accepts: its docstring's first line, in words."""
    first = (getattr(check, "__doc__", None) or "").strip().splitlines()[:1]
    text = first[0] if first else ""
    return text.removeprefix("A parameter check: ").removeprefix("an ").removeprefix("a ") \
        .rstrip(".")


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _task_rows(info: registry.TaskInfo) -> Iterator[Row]:
    for key, param in info.params.items():
        accepts = _accepts(param.check)
        if key == "seq_len":
            accepts = f"integer >= {info.min_seq_len}, or a list of them (each a configuration)"
        yield _code(key), accepts, _code(_yaml(param.default)), param.help
    yield (_code(TASK_STEPS), "integer >= 1", "`training.steps`",
           "this task's training steps, in place of `training.steps`")


def _tasks() -> str:
    parts = ["## Tasks: `tasks.<name>.<key>`",
             "A task's parameters are checked by its record (`bench.registry.TaskInfo`); a "
             "plugin task brings its own."]
    for info in registry.TASKS:
        facts = [_sentence(info.description), f"Metric `{info.metric}` ({info.direction}); "
                 f"solved: {info.solved}; baseline: {info.baseline}."]
        if info.fixed_seq_len is not None:
            facts.append(f"Sequences are fixed at {info.fixed_seq_len} steps (no `seq_len`).")
        parts += [f"### `{info.name}`", " ".join(f for f in facts if f),
                  _table(("key", "accepts", "default", "meaning"), list(_task_rows(info)))]
    return "\n\n".join(parts)


def _grid_names() -> str:
    models = [(_code(m.name), m.description) for m in registry.MODELS]
    remedies = [(_code(r.name), r.axis, r.description) for r in registry.REMEDIES]
    return "\n\n".join([
        "## Models and remedies",
        "`models`, `regularization` and `clipping` list names of these (`none`: no remedy "
        "on that axis), or plugins: `package.module:attribute`, or the name of an "
        "installed entry point ([extending](extending.md)).",
        _table(("model", "description"), models),
        _table(("remedy", "axis", "description"), remedies)])


def _search_entry_rows() -> Iterator[Row]:
    for entry_field in dataclasses.fields(SearchParam):
        if "doc" in entry_field.metadata:
            default = entry_field.default
            yield (_code(f"search.<param>.{entry_field.name}"),
                   entry_field.metadata["accepts"],
                   "" if default is None else _code(_yaml(default)), entry_field.metadata["doc"])
    yield (_code(f"search.<param>.{SEARCH_DEFAULT}"), "an entry", "",
           "with ranges by model or task: the range of the others")
    yield (_code("search.<param>.<model>"), "an entry", "", "the range for a model, a task, "
           "or `task/model` (e.g. `irnn`, `copy`, `copy/irnn`), beside `default`")


def _search_rows() -> Iterator[Row]:
    defaults = default_search()
    for name in BASE_SEARCH:
        shown = _yaml(defaults[name].to_dict()) if name in defaults else ""
        yield _code(name), _code(shown), BASE_SEARCH_DOCS[name]
    users: dict[tuple[str, str], list[str]] = {}  # (parameter, range) -> the remedies
    for remedy in registry.REMEDIES:
        for name, default in remedy.search.items():
            shown = _yaml({"low": default.low, "high": default.high, "log": default.log})
            users.setdefault((name, shown), []).append(_code(remedy.name))
    for (name, shown), remedies in users.items():
        which = "the remedies " if len(remedies) > 1 else "the remedy "
        yield _code(name), _code(shown), f"tuned with {which}{', '.join(remedies)} (above)"


def _search() -> str:
    return "\n\n".join([
        "## Search: `search.<param>`",
        "One entry per tuned parameter: a range or a list of choices, the same for every "
        "configuration, or ranges by model and task. A remedy's parameters are tuned only "
        "in the configurations that have the remedy; an entry the suite leaves out takes "
        "the default range below. The integer extras are tuned only when given.",
        _table(("key", "accepts", "default", "meaning"), list(_search_entry_rows())),
        _table(("parameter", "default range", "meaning"), list(_search_rows()))])


def _overrides() -> str:
    flags = [(_code(f"--{flag.replace('_', '-')}"), _code(".".join(path)) + (
        f" and every `tasks.<name>.{TASK_STEPS}`: the command line wins over the file"
        if flag == "steps" else "")) for flag, path in FLAG_PATHS.items()]
    flags += [("`--tasks`", "`tasks`: keeps those named (a task the file lacks gets its "
                            "defaults)"),
              ("`--data-dir`", "`tasks.<name>.data_dir` of every task that reads data"),
              ("`--set key.path=value`", "any key")]
    kept = ", ".join(_code(k) for k in MEANING_KEYS)
    return "\n\n".join([
        "## Command-line overrides", _table(("flag", "sets"), flags),
        "## Resuming",
        f"Running a suite again resumes it. These settings give its results their meaning "
        f"and are refused when they changed: {kept} (`budget`: the configuration's "
        f"training steps, its task's `steps` else `training.steps`; `tasks` and `search`: "
        f"the configuration's own). A record made before a key was recorded reads it as "
        f"its old value (docs/protocol.md). Everything else may change between runs; more "
        f"trials or seeds are scheduled."])


def markdown() -> str:
    """docs/config.md: every key of a suite, its type, default and meaning."""
    return "\n\n".join([_INTRO.rstrip(), _keys(), _tasks(), _grid_names(), _search(),
                        _overrides()]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
