"""Suite configuration: the YAML schema, validated once at the edge into frozen dataclasses.

A suite file names the grid (tasks with their sequence lengths, models, remedies), the
training budget, the Optuna search space and budget, and where results go. Keys absent
from the file take the defaults on the dataclass fields, so a file may be partial.
Every problem (unknown key at any level, wrong type, bad range, YAML syntax) raises a
`ConfigError` with one line naming the file (or the CLI flag), the dotted key path and
the problem, e.g. ``configs/x.yaml: training.steps: must be >= 1, got -5``.

The modules, from the bottom: ``fields`` (how a key is declared and checked),
``sections`` and ``search`` (the sections' schema), ``schema`` (``SuiteSpec``), ``files``
(packaged suites, reading YAML), ``overrides`` (the command line's flags, ``load``),
``grid`` (``expand``: the configurations) and ``meaning`` (what resuming must keep).
``reference`` writes docs/config.md from the schema. The package imports nothing heavy
(no torch), so the CLI stays fast.

Example:
    >>> spec = load("smoke", {"tasks": ["adding"], "set": ["training.steps=5"]})
    >>> spec.training.steps, [c.name for c in expand(spec)][:2]
    (5, ['adding-T10/rnn/none/none', 'adding-T10/rnn/none/norm'])
"""

from bench.config.fields import registry_name
from bench.config.files import (
    CONFIG_DIR,
    ConfigError,
    default_config_path,
    packaged_configs,
    resolve_config,
    suite_path,
)
from bench.config.grid import Configuration, expand, search_space, shorter
from bench.config.meaning import MEANING_KEYS, describe_changes, meaning, meaning_changes
from bench.config.overrides import OVERRIDE_KEYS, cli_overrides, load, load_args
from bench.config.schema import (
    DEFAULT_CLIPPING,
    DEFAULT_MODELS,
    DEFAULT_REGULARIZATION,
    DEVICES,
    SuiteSpec,
    search_names,
)
from bench.config.search import (
    BASE_SEARCH,
    INT_SEARCH,
    SEARCH_DEFAULT,
    SEARCH_ENTRY_KEYS,
    SearchParam,
)
from bench.config.sections import (
    DEFAULT_TASKS,
    MODEL_KEYS,
    NEW_KEYS,
    OBJECTIVES,
    OPTIMIZERS,
    PRUNERS,
    SAMPLERS,
    TASK_STEPS,
    DiagnosticsSpec,
    FinalSpec,
    ModelSpec,
    TrainingSpec,
    TuningSpec,
)

__all__ = [
    "BASE_SEARCH",
    "CONFIG_DIR",
    "DEFAULT_CLIPPING",
    "DEFAULT_MODELS",
    "DEFAULT_REGULARIZATION",
    "DEFAULT_TASKS",
    "DEVICES",
    "INT_SEARCH",
    "MEANING_KEYS",
    "MODEL_KEYS",
    "NEW_KEYS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "OVERRIDE_KEYS",
    "PRUNERS",
    "SAMPLERS",
    "SEARCH_DEFAULT",
    "SEARCH_ENTRY_KEYS",
    "TASK_STEPS",
    "ConfigError",
    "Configuration",
    "DiagnosticsSpec",
    "FinalSpec",
    "ModelSpec",
    "SearchParam",
    "SuiteSpec",
    "TrainingSpec",
    "TuningSpec",
    "cli_overrides",
    "default_config_path",
    "describe_changes",
    "expand",
    "load",
    "load_args",
    "meaning",
    "meaning_changes",
    "packaged_configs",
    "registry_name",
    "resolve_config",
    "search_names",
    "search_space",
    "shorter",
    "suite_path",
]
