"""Tests of the suite configuration: defaults, packaged suites, errors, overrides, the grid."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bench import config
from bench.cli.main import main
from bench.config import ConfigError, Configuration, SearchParam, expand, load, search_space

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defaults


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    """An empty file is a mistake (a wrong path, a truncated copy), not the default suite."""
    with pytest.raises(ConfigError, match=r"the file is empty"):
        load(write(tmp_path, "# only a comment\n"))


def test_an_empty_mapping_takes_every_default(tmp_path: Path) -> None:
    spec = load(write(tmp_path, "{}\n"))
    assert spec == config.SuiteSpec()
    assert spec.name == "default" and spec.seed == 0 and spec.device == "auto"
    assert spec.tasks == (("adding", {"seq_len": [100]}), ("copy", {"seq_len": [50]}),
                          ("har", {"data_dir": None}))
    assert spec.models == ("rnn", "irnn", "lstm", "gru")
    assert spec.regularization == ("none", "l2") and spec.clipping == ("none", "norm")
    assert spec.model == config.ModelSpec(param_budget=10000, hidden_size=None)
    assert spec.training == config.TrainingSpec(steps=1000, batch_size=64, eval_every=50,
                                                optimizer="adam")
    assert spec.search["lr"] == SearchParam("lr", low=1e-4, high=1e-2, log=True)
    assert spec.search["l2"] == SearchParam("l2", low=1e-6, high=1e-2, log=True)
    assert spec.search["clip"] == SearchParam("clip", low=0.1, high=10.0, log=True)
    assert (spec.tuning.trials, spec.tuning.sampler, spec.tuning.pruner) == (8, "tpe", "median")
    assert spec.final.seeds == 3 and spec.diagnostics.probe_every == 100
    assert spec.storage is None and spec.tracking_uri is None


def test_partial_sections_keep_the_other_defaults(tmp_path: Path) -> None:
    spec = load(write(tmp_path, """
        training: {steps: 7}
        tuning: {pruner: hyperband}
        tasks: {adding: {val_size: 10}, har: }
    """))
    assert spec.training == config.TrainingSpec(steps=7)
    assert spec.training.batch_size == 64
    assert spec.tuning.pruner == "hyperband" and spec.tuning.trials == 8
    # a task named without seq_len takes its default T; har with nothing takes data_dir null
    assert spec.tasks == (("adding", {"seq_len": [100], "val_size": 10}),
                          ("har", {"data_dir": None}))


def test_scalar_seq_len_becomes_a_list_and_ints_become_floats(tmp_path: Path) -> None:
    spec = load(write(tmp_path, """
        tasks: {copy: {seq_len: 30}}
        search: {lr: {low: 1, high: 2}, l2: {choices: [0, 1.0e-4]}, clip: {low: 1, high: 1}}
    """))
    assert spec.tasks == (("copy", {"seq_len": [30]}),)
    lr = spec.search["lr"]
    assert isinstance(lr.low, float) and lr.log is False and lr.kind == "float"
    assert spec.search["l2"].choices == (0.0, 1e-4) and spec.search["l2"].kind == "categorical"


def test_hidden_size_replaces_the_parameter_budget(tmp_path: Path) -> None:
    spec = load(write(tmp_path, "model: {hidden_size: 32}\n"))
    assert spec.model == config.ModelSpec(param_budget=None, hidden_size=32)
    assert spec.to_dict()["model"] == {"hidden_size": 32}


def test_integer_search_extras(tmp_path: Path) -> None:
    spec = load(write(tmp_path, """
        search:
          lr: {low: 1.0e-3, high: 1.0e-2, log: true}
          l2: {low: 1.0e-6, high: 1.0e-2, log: true}
          clip: {low: 0.1, high: 10.0, log: true}
          batch_size: {choices: [16, 32]}
          hidden_size: {low: 8, high: 64, log: true}
    """))
    assert spec.search["batch_size"].choices == (16, 32)
    assert spec.search["hidden_size"].kind == "int"


# --------------------------------------------------------------------------- packaged suites

PACKAGED = ["default", "smoke", "full", "classic", "classic-sgd", "clipping-sgd", "har",
            "horizon", "remedies", "copy-long", "lr-range"]


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_suites_load_by_name_and_by_path(name: str) -> None:
    by_name = load(name)
    by_path = load(ROOT / "configs" / f"{name}.yaml")
    assert by_name == by_path and by_name.name == name
    assert by_name.source == config.CONFIG_DIR / f"{name}.yaml"
    assert by_name.config_hash() == by_path.config_hash()


def test_default_config_path_is_packaged() -> None:
    path = config.default_config_path()
    assert path.is_file() and path.parent == config.CONFIG_DIR
    assert config.resolve_config("default") == path


def test_top_level_configs_are_the_packaged_ones() -> None:
    packaged = {p.name for p in config.CONFIG_DIR.glob("*.yaml")}
    assert packaged == {f"{name}.yaml" for name in PACKAGED}
    assert (ROOT / "configs").resolve() == config.CONFIG_DIR.resolve()  # one copy, linked


def test_default_suite_covers_every_task_and_model_at_budgets_that_let_them_learn() -> None:
    spec = load("default")
    assert {task for task, _ in spec.tasks} == {"adding", "copy", "har"}
    assert spec.models == config.DEFAULT_MODELS
    # the remedies' axes have their own suites; a file that names no axis gets the full grid
    assert (spec.regularization, spec.clipping) == (("none",), ("norm",))
    budgets = {c.task: c.budget(spec) for c in expand(spec)}
    assert budgets["adding"] >= 1000 and budgets["copy"] >= 2000  # README: where they learn
    assert spec.tuning.pruner == "none" and spec.final.seeds >= 4


def test_har_searches_the_ranges_measured_on_har() -> None:
    """docs/results/lr-ranges.md, "HAR": the default suite's HAR configurations and `har`'s
    IRNN search the ranges measured on HAR; adding and copy keep theirs."""
    ranges = {}
    for name in ("default", "har"):
        spec = load(name)
        for c in expand(spec):
            r = search_space(spec, c)["lr"]
            ranges[(name, c.task, c.model)] = (r.low, r.high)
    assert {m: ranges[("default", "har", m)] for m in ("rnn", "irnn", "lstm", "gru")} == {
        "rnn": (3.0e-4, 8.29e-3), "irnn": (1.0e-5, 6.78e-3), "lstm": (3.0e-4, 4.36e-2),
        "gru": (3.0e-4, 4.36e-2)}
    assert ranges[("default", "adding", "irnn")] == (1.33e-3, 1.53e-2)
    assert ranges[("default", "copy", "gru")] == (6.88e-4, 0.1)
    assert ranges[("har", "har", "irnn")] == (1.0e-5, 6.78e-3)
    assert ranges[("har", "har", "lstm")] == (1.0e-3, 2.0e-2)


def test_smoke_suite_is_tiny() -> None:
    spec = load("smoke")
    assert spec.model.hidden_size == 8 and spec.training.steps <= 20
    assert len(expand(spec)) == 16


def test_resolve_unknown_name_lists_the_packaged_ones() -> None:
    names = ", ".join(sorted(PACKAGED))
    with pytest.raises(ConfigError, match=rf"nosuch: .*packaged configs: {names}"):
        config.resolve_config("nosuch")


# --------------------------------------------------------------------------- the grid


def test_expand_counts_and_orders_the_grid() -> None:
    spec = load("classic")
    configurations = expand(spec)
    n_variants = sum(len(p.get("seq_len", [None])) for _, p in spec.tasks)
    assert len(configurations) == n_variants * 4 * 2 * 2 == 64
    assert [c.name for c in configurations[:4]] == [
        "adding-T100/rnn/none/none", "adding-T100/rnn/none/norm",
        "adding-T100/rnn/l2/none", "adding-T100/rnn/l2/norm",
    ]
    assert configurations[4].name == "adding-T100/irnn/none/none"
    assert configurations[-1].name == "har/gru/l2/norm"
    assert len({c.name for c in configurations}) == len(configurations)
    assert expand(spec) == configurations  # stable


def test_expand_sweeps_seq_len_with_single_task_params() -> None:
    spec = load("full")
    configurations = expand(spec)
    assert len(configurations) == (3 + 3 + 1) * 4 * 2 * 2
    adding = [c for c in configurations if c.task == "adding"]
    assert [c.seq_len for c in adding[::16]] == [100, 200, 400]
    assert adding[-1].task_params == {"seq_len": 400}
    har = next(c for c in configurations if c.task == "har")
    assert har.seq_len is None and har.task_params == {"data_dir": None}
    assert har.name == "har/rnn/none/none"


def test_configuration_is_hashable_and_tagged() -> None:
    cell = Configuration("adding", 100, {"seq_len": 100}, "lstm", "l2", "norm")
    assert cell.name == "adding-T100/lstm/l2/norm"
    assert {cell: 1}[cell] == 1
    assert cell.tags()["seq_len"] == "100"


def test_search_space_follows_the_remedies(tmp_path: Path) -> None:
    spec = load(write(tmp_path, """
        search:
          lr: {low: 1.0e-3, high: 1.0e-2, log: true}
          l2: {low: 1.0e-6, high: 1.0e-2, log: true}
          clip: {low: 0.1, high: 10.0, log: true}
          batch_size: {choices: [16, 32]}
    """))
    spaces = {c.name: set(search_space(spec, c)) for c in expand(spec) if c.task == "adding"}
    assert spaces["adding-T100/rnn/none/none"] == {"lr", "batch_size"}
    assert spaces["adding-T100/rnn/l2/none"] == {"lr", "l2", "batch_size"}
    assert spaces["adding-T100/rnn/none/norm"] == {"lr", "clip", "batch_size"}
    assert spaces["adding-T100/rnn/l2/norm"] == {"lr", "l2", "clip", "batch_size"}


def test_search_ranges_per_model_and_task(tmp_path: Path) -> None:
    spec = load(write(tmp_path, """
        tasks: {adding: {seq_len: [10]}, copy: {seq_len: [10]}}
        regularization: [none]
        clipping: [none]
        search:
          lr:
            default: {low: 1.0e-3, high: 3.0e-2, log: true}
            irnn: {low: 1.0e-5, high: 1.0e-3, log: true}
            copy: {low: 2.0e-3, high: 2.0e-2, log: true}
            copy/irnn: {choices: [1.0e-4]}
    """))
    lr = {c.name: search_space(spec, c)["lr"] for c in expand(spec)}
    assert lr["adding-T10/rnn/none/none"] == SearchParam("lr", low=1e-3, high=3e-2, log=True)
    assert lr["adding-T10/irnn/none/none"] == SearchParam("lr", low=1e-5, high=1e-3, log=True)
    assert lr["copy-T10/lstm/none/none"] == SearchParam("lr", low=2e-3, high=2e-2, log=True)
    assert lr["copy-T10/irnn/none/none"] == SearchParam("lr", choices=(1e-4,))
    assert spec.to_dict()["search"]["lr"]["irnn"] == {"low": 1e-5, "high": 1e-3, "log": True}
    again = write(tmp_path, yaml.safe_dump(spec.to_dict()), "again.yaml")
    assert load(again) == spec and load(again).config_hash() == spec.config_hash()
    bad = write(tmp_path, "search: {lr: {default: {low: 1.0e-3, high: 1.0e-2}, "
                          "lsmt: {low: 1.0e-4, high: 1.0e-3}}}\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"search\.lr\.lsmt: not a model or task at all"):
        load(bad)
    with pytest.raises(ConfigError, match=r"search\.lr\.copy/lsmt: not a model or task at all"):
        load(write(tmp_path, "search: {lr: {default: {low: 1.0e-3, high: 1.0e-2}, "
                             "copy/lsmt: {low: 1.0e-4, high: 1.0e-3}}}\n", "bad2.yaml"))
    # A range for a model or task outside the grid (``--models`` narrows it) is no error.
    narrow = load(again, {"models": ["lstm"], "tasks": ["adding"]})
    assert {c.model for c in expand(narrow)} == {"lstm"}
    assert search_space(narrow, expand(narrow)[0])["lr"] == SearchParam("lr", low=1e-3,
                                                                       high=3e-2, log=True)
    # a model's whole range, set beside the others' (not read as a key of the default's)
    raised = load(again, {"set": ["search.lr.irnn={low: 1.0e-5, high: 6.78e-3, log: true}"]})
    assert raised.to_dict()["search"]["lr"]["irnn"] == {"low": 1e-5, "high": 6.78e-3, "log": True}
    assert raised.to_dict()["search"]["lr"]["default"] == spec.to_dict()["search"]["lr"]["default"]
    with pytest.raises(ConfigError, match=r"--set search.lr.irnn.high=x: search\.lr\.irnn\."
                                          r"high: expected a number"):
        load(again, {"set": ["search.lr.irnn.high=x"]})
    with pytest.raises(ConfigError, match=r"search\.lr\.low: give either one range"):
        load("smoke", {"set": ["search.lr.default.low=1.0e-3", "search.lr.default.high=0.1"]})


def test_steps_precedence_the_flag_then_the_tasks_own_then_training_steps(
        capsys: pytest.CaptureFixture[str]) -> None:
    """One rule (``--steps`` help): ``--steps`` is every run's budget; without it a task's
    own ``steps`` win over ``training.steps``."""
    spec = load("default")
    assert {c.task: c.budget(spec) for c in expand(spec)} == {
        name: params["steps"] for name, params in spec.tasks}
    flag = load("default", {"steps": 50, "set": ["tasks.adding.steps=300"]})
    assert {c.budget(flag) for c in expand(flag)} == {50} and flag.training.steps == 50
    with pytest.raises(ConfigError, match=r"--steps 0: tasks\.adding\.steps: must be >= 1"):
        load("default", {"steps": 0})
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "sets training.steps and replaces each task's own steps" in help_text
    assert "without it a task's steps win over training.steps" in help_text


def test_a_task_can_have_its_own_step_budget(tmp_path: Path) -> None:
    spec = load("smoke", {"set": ["tasks.copy.steps=50"]})
    budgets = {c.task: c.budget(spec) for c in expand(spec)}
    assert budgets == {"adding": spec.training.steps, "copy": 50}
    copy_cell = next(c for c in expand(spec) if c.task == "copy")
    assert "steps" not in copy_cell.task_params  # a budget, not a parameter of the task
    assert spec.to_dict()["tasks"]["copy"]["steps"] == 50
    with pytest.raises(ConfigError, match=r"tasks\.copy\.steps: must be >= 1"):
        load("smoke", {"set": ["tasks.copy.steps=0"]})


def test_new_keys_leave_the_hash_of_configs_without_them_unchanged() -> None:
    spec = load("smoke")
    data = spec.to_dict()
    assert "warmup_steps" not in data["training"] and "objective" not in data["tuning"]
    assert "stop_when_solved" not in data["training"]
    same = load("smoke", {"set": ["training.warmup_steps=0", "tuning.objective=val_loss"]})
    assert same.config_hash() == spec.config_hash()
    changed = load("smoke", {"set": ["training.warmup_steps=10",
                                     "training.stop_when_solved=true",
                                     "tuning.objective=val_metric"]})
    assert changed.training.warmup_steps == 10 and changed.training.stop_when_solved
    assert changed.tuning.objective == "val_metric"
    assert changed.config_hash() != spec.config_hash()
    with pytest.raises(ConfigError, match=r"tuning\.objective: expected one of val_loss"):
        load("smoke", {"set": ["tuning.objective=acc"]})


# --------------------------------------------------------------------------- errors

ERRORS = [
    ("unknown top-level key", "colour: red\n", r"colour: unknown key"),
    ("unknown nested key", "training: {stepz: 5}\n", r"training\.stepz: unknown key"),
    ("unknown search entry key", "search: {lr: {low: 1, high: 2, lg: true}}\n",
     r"search\.lr\.lg: unknown key"),
    ("unknown har key", "tasks: {har: {datadir: x}}\n", r"tasks\.har\.datadir: unknown key"),
    ("wrong type", "training: {steps: many}\n", r"training\.steps: expected an integer"),
    ("bool as int", "training: {batch_size: true}\n",
     r"training\.batch_size: expected an integer, got True"),
    ("bool as float", "search: {lr: {low: true, high: 1}}\n",
     r"search\.lr\.low: expected a number"),
    ("negative steps", "training: {steps: -5}\n", r"training\.steps: must be >= 1, got -5"),
    ("zero trials", "tuning: {trials: 0}\n", r"tuning\.trials: must be >= 1, got 0"),
    ("low > high", "search: {lr: {low: 0.1, high: 0.01}}\n", r"search\.lr: low must be <= high"),
    ("log with low <= 0", "search: {lr: {low: 0, high: 0.1, log: true}}\n",
     r"search\.lr\.low: must be > 0 with log: true"),
    ("range and choices", "search: {lr: {low: 1, high: 2, choices: [1]}}\n",
     r"search\.lr: give either choices"),
    ("missing high", "search: {lr: {low: 1}}\n", r"search\.lr: missing high"),
    ("empty choices", "search: {lr: {choices: []}}\n",
     r"search\.lr\.choices: expected a non-empty"),
    ("unknown search param", "search: {momentum: {low: 0, high: 1}}\n",
     r"search\.momentum: unknown key"),
    ("no lr", "search: {l2: {low: 0, high: 1}}\n", r"search\.lr: required"),
    ("unknown task", "tasks: {parity: {seq_len: 5}}\n",
     r"tasks\.parity: unknown task 'parity'; valid: adding, copy, har"),
    ("no task", "tasks: {}\n", r"tasks: name at least one task"),
    ("unknown model", "models: [lstm, transformer]\n",
     r"models: unknown model 'transformer'; valid: rnn, irnn, lstm, gru"),
    ("duplicate model", "models: [lstm, lstm]\n", r"models: duplicate value 'lstm'"),
    ("empty models", "models: []\n", r"models: expected a non-empty list"),
    ("unknown regularization", "regularization: [none, dropout]\n",
     r"regularization: unknown regularization 'dropout'"),
    ("unknown optimizer", "training: {optimizer: lion}\n",
     r"training\.optimizer: expected one of adam, sgd, rmsprop"),
    ("unknown sampler", "tuning: {sampler: bayes}\n", r"tuning\.sampler: expected one of"),
    ("unknown device", "device: tpu\n", r"device: expected one of auto, cpu, cuda"),
    ("bad name", "name: my suite\n", r"name: expected a name"),
    ("dots as name", "name: ..\n", r"name: expected a name"),
    ("too-small seq_len adding", "tasks: {adding: {seq_len: [1]}}\n",
     r"tasks\.adding\.seq_len: the adding task needs seq_len >= 2, got 1"),
    ("too-small seq_len copy", "tasks: {copy: {seq_len: 0}}\n",
     r"tasks\.copy\.seq_len: the copy task needs seq_len >= 1, got 0"),
    ("empty seq_len", "tasks: {copy: {seq_len: []}}\n", r"tasks\.copy\.seq_len: must not be empty"),
    ("duplicate seq_len", "tasks: {copy: {seq_len: [5, 5]}}\n",
     r"tasks\.copy\.seq_len: duplicate value 5"),
    ("seq_len on har", "tasks: {har: {seq_len: [64]}}\n",
     r"tasks\.har\.seq_len: har sequences are fixed at 128 steps"),
    ("bad har subjects", "tasks: {har: {val_subjects: [0]}}\n",
     r"tasks\.har\.val_subjects: subject ids run from 1 to 30"),
    ("both model sizes", "model: {param_budget: 100, hidden_size: 8}\n",
     r"model: give exactly one of param_budget or hidden_size"),
    ("section not a mapping", "training: 5\n", r"training: expected a mapping, got 5"),
    ("unknown clipping", "clipping: [none, spectral]\n",
     r"clipping: unknown clipping 'spectral'; valid: none, norm, value, weight"),
    ("remedy on the wrong axis", "regularization: [none, weight]\n",
     r"regularization: remedy 'weight' belongs to clipping, not regularization"),
    ("top level not a mapping", "- a\n- b\n", r"expected a mapping of keys at the top level"),
    ("YAML syntax error", "seed: 0\ntraining: {steps: 5\nname: x\n", r"line 3, column \d+: "
     r"invalid YAML"),
]


@pytest.mark.parametrize(("text", "pattern"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_file_and_key(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text, name="bad.yaml")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert re.search(pattern, message), message


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{missing}: no such config file"):
        load(missing)


# --------------------------------------------------------------------------- overrides


def test_tasks_override_filters_and_fills_defaults() -> None:
    spec = load("smoke", {"tasks": ["copy", "har"]})
    assert spec.tasks == (("copy", {"seq_len": [5], "val_size": 64, "test_size": 64}),
                          ("har", {"data_dir": None}))
    spec = load("smoke", {"tasks": "adding"})
    assert [task for task, _ in spec.tasks] == ["adding"]


def test_flag_overrides() -> None:
    spec = load("smoke", {"models": ["gru"], "trials": 4, "seeds": 2, "steps": 9,
                          "device": "cuda:1", "storage": "sqlite:///x.db",
                          "tracking_uri": "http://127.0.0.1:5000", "tasks": None})
    assert spec.models == ("gru",) and spec.tuning.trials == 4 and spec.final.seeds == 2
    assert spec.training.steps == 9 and spec.device == "cuda:1"
    assert spec.storage == "sqlite:///x.db" and spec.tracking_uri == "http://127.0.0.1:5000"
    assert load("smoke", {"trials": None}) == load("smoke")


def test_set_override_nested_path_and_list_value() -> None:
    spec = load("default", {"set": ["training.batch_size=32", "tasks.adding.seq_len=[50,100]",
                                    "search.lr.high=0.05", "model.hidden_size=16"]})
    assert spec.training.batch_size == 32
    assert dict(spec.tasks)["adding"]["seq_len"] == [50, 100]
    assert spec.search["lr"].high == 0.05  # the default range of an entry given by model
    assert spec.search["lr"].at("adding", "irnn").high == 1.53e-2  # its own, kept
    assert spec.model == config.ModelSpec(param_budget=None, hidden_size=16)
    assert len(expand(spec)) == 4 * 4  # (adding x 2 T, copy, har) x 4 models


def test_set_adds_a_search_extra_and_fills_sections_absent_from_the_file(tmp_path: Path) -> None:
    spec = load(write(tmp_path, "name: x\n"), {"set": ["search.batch_size.choices=[8, 16]"]})
    assert set(spec.search) == {"lr", "l2", "clip", "batch_size"}


@pytest.mark.parametrize(("item", "pattern"), [
    ("foo.bar=1", r"^--set foo\.bar=1: unknown key foo\b"),
    ("training.stepz=1", r"^--set training\.stepz=1: unknown key training\.stepz"),
    ("tasks.parity.seq_len=5", r"unknown key tasks\.parity"),
    ("seed.x=1", r"^--set seed\.x=1: seed has no sub-keys"),
    ("training.steps", r"expected key\.path=value"),
    ("training.steps=-5", r"^--set training\.steps=-5: training\.steps: must be >= 1, got -5"),
    ("search.lr.low=5", r"^--set search\.lr\.low=5: search\.lr: low must be <= high"),
    ("tasks.har.seq_len=64",
     r"^--set tasks\.har\.seq_len=64: tasks\.har\.seq_len: har sequences are fixed at 128"),
])
def test_bad_set_overrides(item: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load("smoke", {"set": [item]})


def test_bad_flag_overrides_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--steps 0: training\.steps: must be >= 1"):
        load("smoke", {"steps": 0})
    with pytest.raises(ConfigError, match=r"^--models lstm,foo: models: unknown model 'foo'"):
        load("smoke", {"models": ["lstm", "foo"]})
    with pytest.raises(ConfigError,
                       match=r"^--tasks: unknown task 'parity'; valid: adding, copy, har"):
        load("smoke", {"tasks": ["parity"]})
    with pytest.raises(ConfigError, match=r"unknown override\(s\) epochs"):
        load("smoke", {"epochs": 3})


# --------------------------------------------------------------------------- hash, round trip


def test_config_hash_ignores_key_order_and_follows_values(tmp_path: Path) -> None:
    a = load(write(tmp_path, "seed: 1\ntraining: {steps: 5, batch_size: 8}\n", "a.yaml"))
    b = load(write(tmp_path, "training: {batch_size: 8, steps: 5}\nseed: 1\n", "b.yaml"))
    c = load(write(tmp_path, "training: {batch_size: 8, steps: 6}\nseed: 1\n", "c.yaml"))
    assert a.config_hash() == b.config_hash() != c.config_hash()
    assert len(a.config_hash()) == 12 and int(a.config_hash(), 16) >= 0
    assert a == b and hash(a) == hash(b)
    assert load("smoke").config_hash() == load("smoke").config_hash()


def test_config_hash_ignores_where_results_go() -> None:
    spec = load("smoke")
    moved = load("smoke", {"storage": "postgresql://db/x", "tracking_uri": "http://h:5000"})
    assert spec.config_hash() == moved.config_hash()


@pytest.mark.parametrize("name", PACKAGED)
def test_to_dict_round_trips_through_load(tmp_path: Path, name: str) -> None:
    extra = ["search.hidden_size.low=4", "search.hidden_size.high=16"]
    if load(name).tuning.sampler == "grid":  # a grid's axis: points
        extra = ["search.hidden_size.choices=[8]"]
    spec = load(name, {"set": extra})
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False), encoding="utf-8")
    again = load(path)
    assert again == spec and again.to_dict() == spec.to_dict()
    assert again.config_hash() == spec.config_hash()


# --------------------------------------------------------------------------- imports


def test_default_grid_names_are_in_the_registries() -> None:
    from bench.registry import MODELS, TASKS, remedy_names

    assert set(config.DEFAULT_TASKS) <= set(TASKS.names())
    assert set(config.DEFAULT_MODELS) <= set(MODELS.names())
    assert set(config.DEFAULT_REGULARIZATION) <= set(remedy_names("regularization"))
    assert set(config.DEFAULT_CLIPPING) <= set(remedy_names("clipping"))


def test_import_does_not_pull_torch() -> None:
    code = "import sys, bench.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_model_size_takes_a_tuned_size_over_the_config() -> None:
    spec = load("default")
    assert spec.model.size({}) == {"param_budget": 5000}
    assert spec.model.size({"param_budget": 7000.0, "lr": 0.01}) == {"param_budget": 7000}
    assert spec.model.size({"hidden_size": 32}) == {"hidden_size": 32}
    fixed = load("smoke")
    assert fixed.model.size({}) == {"hidden_size": 8}


def test_remedies_suite_is_the_grid_its_page_reports() -> None:
    """docs/results/remedies.md: adding T=100 x the 3 plain models x {none, l2} x {none, norm,
    weight}, Adam, 3 trials + 5 seeds, the measured ranges, decay's range reaching lambda 10
    for a user who adds it."""
    spec = load("remedies")
    configurations = expand(spec)
    assert len(configurations) == 18
    assert {c.variant for c in configurations} == {"adding-T100"}
    assert set(spec.models) == {"rnn", "irnn", "orth-rnn"}
    assert (spec.regularization, spec.clipping) == (("none", "l2"), ("none", "norm", "weight"))
    assert spec.training.optimizer == "adam" and spec.training.steps == 2500
    assert (spec.tuning.trials, spec.final.seeds) == (3, 5)
    lr = {c.model: search_space(spec, c)["lr"] for c in configurations}
    assert {m: (r.low, r.high) for m, r in lr.items()} == {  # lr-ranges.md
        "rnn": (3.0e-4, 8.29e-3), "orth-rnn": (3.0e-4, 8.29e-3), "irnn": (1.33e-3, 1.53e-2)}
    assert spec.search["decay"].high == 10.0


def test_the_grid_sampler_tries_given_points(tmp_path: Path) -> None:
    spec = load("lr-range")
    lr = {c.model: search_space(spec, c)["lr"].points() for c in expand(spec)}
    assert len(lr["lstm"]) == 8 and (lr["lstm"][0], lr["lstm"][-1]) == (3e-4, 0.1)
    assert (lr["irnn"][0], lr["irnn"][-1]) == (1e-5, 3e-3)
    steps = [b / a for a, b in zip(lr["lstm"], lr["lstm"][1:], strict=False)]
    assert max(steps) / min(steps) < 1.01  # evenly spaced on a log scale (3 digits kept)
    assert SearchParam("batch_size", low=16, high=128, log=True, grid=4).points() == \
        [16, 32, 64, 128]
    assert SearchParam("clip", low=0.5, high=2.0, grid=4).points() == [0.5, 1.0, 1.5, 2.0]
    assert SearchParam("clip", choices=(1.0, 3.0)).points() == [1.0, 3.0]
    assert spec.to_dict()["search"]["lr"]["irnn"]["grid"] == 8
    assert "grid" not in load("default").to_dict()["search"]["lr"]["default"]  # hash as before
    again = write(tmp_path, yaml.safe_dump(spec.to_dict()), "again.yaml")
    assert load(again).config_hash() == spec.config_hash()


@pytest.mark.parametrize(("sets", "message"), [
    (["tuning.sampler=grid"], r"search\.lr: tuning\.sampler: grid tries given points: add "
                              r"grid: N"),
    (["search.lr.grid=4"], r"search\.lr\.grid: used only with tuning\.sampler: grid "
                           r"\(this suite's is tpe\)"),
])
def test_a_grid_needs_the_grid_sampler_and_the_sampler_a_grid(sets: list[str],
                                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load("smoke", {"set": sets})


def test_the_grid_samplers_trials_are_the_grids_points() -> None:
    with pytest.raises(ConfigError, match=r"tuning\.trials: the grid sampler runs each point "
                       r"of the grid once: adding-T50/rnn/none/norm has 8 \(lr: 8 x clip: "
                       r"1\), so give trials: 8, got 3"):
        load("lr-range", {"set": ["tuning.trials=3"]})
    with pytest.raises(ConfigError, match=r"search\.lr\.irnn\.grid: must be >= 2"):
        load("lr-range", {"set": ["search.lr.irnn.grid=1"]})
    spec = load("lr-range", {"set": ["search.clip={choices: [0.5, 1.0]}", "tuning.trials=16"]})
    assert spec.tuning.trials == 16
