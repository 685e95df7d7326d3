"""Registries and plugins: built-ins found by scanning, users' records by reference or entry
point, a folder module without its record and a name held by two records refused, bad
plugins refused in one line before anything is written, and the example plugins run as a
suite end to end."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from bench import config
from bench.config import ConfigError
from bench.registry import (
    AXES,
    MODELS,
    REMEDIES,
    TASKS,
    PluginError,
    Registry,
    RegistryError,
    Remedy,
    SearchDefault,
    remedy,
    remedy_label,
    remedy_marker,
    remedy_names,
    remedy_rank,
    remedy_style,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "plugins"
GRADBENCH = [sys.executable, "-m", "bench"]


# --------------------------------------------------------------------------- built-ins


def _folder_modules(package: str) -> dict[str, bool]:
    """Module -> whether it says ``HELPER = True``, for each public module file (or
    subpackage) of a registry's folder, read from the files."""
    folder = ROOT.joinpath(*package.split("."))
    found = [p.stem for p in folder.iterdir() if not p.name.startswith("_")
             and (p.suffix == ".py" or (p / "__init__.py").is_file())]
    modules = {f"{package}.{name}": importlib.import_module(f"{package}.{name}") for name in found}
    return {name: getattr(module, "HELPER", False) is True for name, module in modules.items()}


@pytest.mark.parametrize("registry", [TASKS, MODELS, REMEDIES], ids=lambda r: r.kind)
def test_each_module_of_a_registry_folder_is_one_record_or_a_helper(registry: Registry) -> None:
    modules = _folder_modules(registry.package)
    places = [registry.where(name) for name in registry.names()]
    assert sorted(places) == sorted(f"{m}:{registry.attr}" for m, helper in modules.items()
                                    if not helper)
    assert all(isinstance(record, registry.record) for record in registry)
    order = [(record.rank, record.name) for record in registry]
    assert order == sorted(order) and len(set(registry.names())) == len(places)


def test_remedy_names_split_the_remedies_by_axis() -> None:
    names = [name for axis in AXES for name in remedy_names(axis)[1:]]
    assert sorted(names) == sorted(REMEDIES.names())
    assert all(remedy_names(axis)[0] == "none" for axis in AXES)


def test_every_model_record_matches_its_layer() -> None:
    from bench.plugins import check_model

    for info in MODELS:
        check_model(info)  # the same check a plugin gets: the twin reproduces the layer


def test_task_records_state_what_the_task_objects_do() -> None:
    cpu = torch.device("cpu")
    for name in ("adding", "copy"):
        info = TASKS.get(name)
        task = info.build({"seq_len": 5, "val_size": 4, "test_size": 4}, seed=0, device=cpu)
        assert (task.metric, task.direction) == (info.metric, info.direction)


def test_remedy_labels_styles_and_order() -> None:
    pairs = [("l2", "norm"), ("none", "norm"), ("none", "none"), ("l2", "none"),
             ("decay", "weight"), ("none", "value")]
    ordered = sorted(pairs, key=lambda p: remedy_rank(*p))
    assert [remedy_label(*p) for p in ordered] == [
        "none", "L2", "norm clip", "L2 + norm clip", "value clip", "decay + weight clip"]
    # the clipping remedy sets the line, the regularization remedy the marker
    assert [remedy_style(*p) for p in ordered] == [":", ":", "--", "--", "-.", "-"]
    assert [remedy_marker(*p) for p in ordered] == ["o", "s", "o", "s", "o", "^"]
    assert remedy("none", "clipping") is None
    with pytest.raises(PluginError, match="belongs to regularization, not clipping"):
        remedy("l2", "clipping")
    valid = ", ".join(remedy_names("clipping"))
    with pytest.raises(PluginError, match=rf"unknown clipping 'spectral'; valid: {valid} "):
        remedy("spectral", "clipping")


def test_a_remedy_without_a_default_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"remedy bad: search parameter 'tau' needs a default "
                                         r"range, SearchDefault\(low, high\), got NoneType"):
        Remedy(name="bad", axis="clipping", label="bad", search={"tau": None})
    with pytest.raises(ValueError, match=r"remedy bad: search parameter 'tau': low < high"):
        Remedy(name="bad", axis="clipping", label="bad", search={"tau": SearchDefault(0, 1)})


def test_search_space_follows_the_remedies() -> None:
    spec = config.load("smoke")
    spaces = {c.name: set(config.search_space(spec, c)) for c in config.expand(spec)}
    assert spaces["adding-T10/rnn/none/none"] == {"lr"}
    assert spaces["adding-T10/rnn/l2/norm"] == {"lr", "l2", "clip"}
    assert set(REMEDIES.get("l2").search) == {"l2"}


# --------------------------------------------------------------------------- refusals


def _remedy(name: str, attr: str = "REMEDY", label: str = "") -> str:
    """The text of a module declaring a remedy record ``name`` as ``attr``."""
    return ("from bench.registry import Remedy\n"
            f"{attr} = Remedy(name={name!r}, axis='clipping', label={label or name!r}, "
            "search={})\n")


@pytest.fixture()
def scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, dict[str, str]], Registry[Remedy]]]:
    """Write a package of remedy modules under tmp_path (on the path); its registry scans
    it like a built-in folder. The modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(package: str, modules: dict[str, str]) -> Registry[Remedy]:
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for name, text in modules.items():
            (folder / f"{name}.py").write_text(text)
        importlib.invalidate_caches()
        return Registry("remedy", Remedy, package, "REMEDY")

    yield make
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_a_folder_module_without_its_record_is_refused_naming_it(
    scratch: Callable[[str, dict[str, str]], Registry[Remedy]]
) -> None:
    typo = scratch("scan_typo", {"good": _remedy("good"), "typo": _remedy("typo", "REMEDI")})
    with pytest.raises(RegistryError, match=r"^remedy module scan_typo\.typo \(\S+typo\.py\): "
                                            r"no REMEDY record; it holds a Remedy as REMEDI"):
        typo.names()
    with pytest.raises(RegistryError, match=r"scan_typo\.typo"):
        typo.find("good")  # never hidden as an unknown name
    empty = scratch("scan_empty", {"good": _remedy("good"), "empty": "X = 1\n"})
    with pytest.raises(RegistryError, match=r"module scan_empty\.empty \(.*\): no REMEDY "
                                            r"record \(a module of shared code says HELPER"):
        empty.names()
    wrong = scratch("scan_wrong", {"wrong": "REMEDY = 'l2'\n"})
    with pytest.raises(RegistryError, match=r"its REMEDY is a str, not a Remedy record"):
        wrong.names()
    both = scratch("scan_both", {"both": "HELPER = True\n" + _remedy("both")})
    with pytest.raises(RegistryError, match=r"says HELPER = True but declares REMEDY"):
        both.names()
    helpers = scratch("scan_helpers", {"good": _remedy("good"), "shared": "HELPER = True\n"})
    assert helpers.names() == ("good",)
    assert helpers.where("good") == "scan_helpers.good:REMEDY"


def test_two_built_ins_with_one_name_are_refused_naming_both(
    scratch: Callable[[str, dict[str, str]], Registry[Remedy]]
) -> None:
    twins = scratch("scan_twins", {"first": _remedy("twin"), "second": _remedy("twin")})
    with pytest.raises(RegistryError, match=r"^remedy 'twin' is declared twice: "
                                            r"scan_twins\.first:REMEDY and "
                                            r"scan_twins\.second:REMEDY$"):
        twins.names()


def test_a_plugin_named_like_a_built_in_is_refused_naming_both(
    scratch: Callable[[str, dict[str, str]], Registry[Remedy]], tmp_path: Path
) -> None:
    registry = scratch("scan_taken", {"good": _remedy("good")})
    (tmp_path / "plug_taken.py").write_text(_remedy("good", "OTHER"))
    with pytest.raises(PluginError, match=r"^remedy plug_taken:OTHER: its name 'good' is taken "
                                          r"by a built-in remedy \(scan_taken\.good:REMEDY\)$"):
        registry.get("plug_taken:OTHER")


def test_two_plugins_with_one_name_are_refused_naming_both(
    scratch: Callable[[str, dict[str, str]], Registry[Remedy]], tmp_path: Path
) -> None:
    registry = scratch("scan_plugins", {"good": _remedy("good")})
    (tmp_path / "plug_twins.py").write_text(
        _remedy("twin", "FIRST") + _remedy("twin", "SECOND", label="other") + "AGAIN = FIRST\n")
    first = registry.get("plug_twins:FIRST")
    assert registry.get("plug_twins:AGAIN") is first  # one record by two references
    assert registry.get("twin") is first and registry.where("twin") == "plug_twins:FIRST"
    with pytest.raises(PluginError, match=r"^remedy plug_twins:SECOND: its name 'twin' is taken "
                                          r"by the plugin plug_twins:FIRST$"):
        registry.get("plug_twins:SECOND")


def test_two_entry_points_with_one_name_are_refused_naming_both(
    scratch: Callable[[str, dict[str, str]], Registry[Remedy]], tmp_path: Path
) -> None:
    registry = scratch("scan_points", {"good": _remedy("good")})
    (tmp_path / "plug_points.py").write_text(_remedy("one", "ONE") + _remedy("two", "TWO"))
    for dist, attr in (("first", "ONE"), ("second", "TWO")):
        info = tmp_path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[{registry.group}]\ntwin = plug_points:{attr}\n")
    with pytest.raises(PluginError, match=r"^remedy 'twin': the entry points plug_points:ONE and "
                                          r"plug_points:TWO have one name$"):
        registry.get("twin")


# --------------------------------------------------------------------------- plugins


@pytest.fixture()
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/plugins as the working directory (where a user keeps them)."""
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES, work)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    for module in ("my_models", "my_tasks", "bad_models", "my_remedies", "counting"):
        monkeypatch.delitem(sys.modules, module, raising=False)  # each test writes its own
    return work


def test_example_plugins_load_and_name_their_configurations(plugin_dir: Path) -> None:
    spec = config.load("plugins.yaml")
    names = [c.name for c in config.expand(spec)]
    assert "first-sign-T10/np-rnn/none/norm" in names
    assert spec.models == ("rnn", "my_models:NP_RNN")  # the config keeps the reference
    assert MODELS.get("np-rnn").gain == 1.0  # found by its name once loaded


def test_plugin_model_profile_matches_finite_differences(plugin_dir: Path) -> None:
    from bench.diagnostics import probe_gradients, unroll
    from bench.models import ModelSizes, build_model

    config.load("plugins.yaml")
    task = TASKS.get("first-sign").build({"seq_len": 6, "val_size": 4, "test_size": 4},
                                         seed=0, device=torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model("np-rnn", ModelSizes(1, 2, False), hidden_size=5).double()
    x, y = task.train_batch(3, task.train_generator(1))
    x = x.double()
    grads = probe_gradients(model, task.loss, x, y)
    gen = torch.Generator().manual_seed(2)
    for t in (0, 3, 5):
        v = torch.randn(3, 5, generator=gen, dtype=torch.float64)

        def loss(sign: float, t: int = t, v: torch.Tensor = v) -> float:
            run = unroll(model, x, offsets={("h", t): sign * 1e-5 * v})
            return float(task.loss(run.output, y).detach())

        numeric = (loss(1.0) - loss(-1.0)) / 2e-5
        assert numeric == pytest.approx(float((grads.h[:, t] * v).sum()), rel=1e-5, abs=1e-11)


BAD = {
    "no module": ("models: [rnn, no_such_module:MODEL]",
                  r"models: model no_such_module:MODEL: cannot import no_such_module: "
                  r"ModuleNotFoundError"),
    "no attribute": ("models: [my_models:MISSING]",
                     r"module my_models has no attribute 'MISSING'"),
    "wrong type": ("models: [my_models:init_np]",
                   r"expected a ModelInfo record \(bench.registry.ModelInfo\), got function"),
    "wrong cell": ("models: [bad_models:TANH_CELL_ON_RELU]",
                   r"its cell does not reproduce its layer"),
    "name taken": ("models: [bad_models:NAMED_LSTM]",
                   r"model bad_models:NAMED_LSTM: its name 'lstm' is taken by a built-in model "
                   r"\(bench\.models\.lstm:MODEL\)"),
    "parameter count": ("models: [bad_models:EXTRA_PARAMETER]",
                        r"it has 50 trainable parameters at H=4 from 3 inputs \(head included\) "
                        r"where the closed formula of its 1 gate block\(s\) counts 46"),
    "task import error": ("tasks: {bad_models:BROKEN: {seq_len: 5}}",
                          r"cannot import bad_models: ZeroDivisionError"),
    "remedy on the wrong axis": ("clipping: [none, my_remedies:DECAY]",
                                 r"belongs to regularization, not clipping"),
}


def _bad_files(work: Path, case: str) -> None:
    (work / "bad_models.py").write_text(
        "import torch\n"
        "from bench.models.cells import plain_rnn, rnn_cell\n"
        "from bench.models.lstm import MODEL as LSTM\n"
        "from bench.registry import ModelInfo\n"
        + ("1 / 0\n" if case == "task import error" else "")
        + "TANH_CELL_ON_RELU = ModelInfo(name='wrong', layer=plain_rnn('relu'),\n"
        "    init=lambda layer: None, blocks=('hh',), cell=rnn_cell(torch.tanh),\n"
        "    activations={'h': 'tanh'}, gain=1.0)\n"
        "import dataclasses\n"
        "NAMED_LSTM = dataclasses.replace(LSTM)\n"
        "class Scaled(torch.nn.RNN):  # one parameter more than the formula counts\n"
        "    def __init__(self, input_size, hidden_size):\n"
        "        super().__init__(input_size, hidden_size, batch_first=True)\n"
        "        self.scale = torch.nn.Parameter(torch.ones(hidden_size))\n"
        "EXTRA_PARAMETER = ModelInfo(name='extra', layer=Scaled,\n"
        "    init=lambda layer: None, blocks=('hh',), cell=rnn_cell(torch.tanh),\n"
        "    activations={'h': 'tanh'}, gain=1.0)\n")
    (work / "my_remedies.py").write_text(
        "from bench.registry import Remedy, SearchDefault\n"
        "DECAY = Remedy(name='shrink', axis='regularization', label='shrink',\n"
        "    search={'shrink': SearchDefault(1e-6, 1e-2)},\n"
        "    after_step=lambda model, hp: None)\n")


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_plugin_is_one_line_and_exit_2_before_anything_is_written(
    plugin_dir: Path, case: str
) -> None:
    line, message = BAD[case]
    _bad_files(plugin_dir, case)
    text = (plugin_dir / "plugins.yaml").read_text()
    key = line.split(":")[0]
    kept = [row for row in text.splitlines() if not row.startswith(f"{key}:")]
    if key == "tasks":  # drop the block of task entries under `tasks:`
        kept = [row for row in kept if not row.startswith("  ")
                or row.startswith("  lr") or row.startswith("  clip")]
    (plugin_dir / "bad.yaml").write_text("\n".join([*kept, line]) + "\n")
    with pytest.raises(ConfigError, match=message):
        config.load("bad.yaml")
    runs = plugin_dir / "runs"
    out = subprocess.run([*GRADBENCH, "run", "bad.yaml", "--runs-dir", str(runs)],
                         capture_output=True, text=True, cwd=plugin_dir, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [row for row in out.stderr.splitlines() if row.strip()]
    assert len(lines) == 1 and lines[0].startswith("gradbench: error: bad.yaml: "), out.stderr
    assert not runs.exists()  # nothing written


def test_a_plugin_remedy_acts_through_its_hooks(plugin_dir: Path) -> None:
    from bench.models import ModelSizes, build_model
    from bench.train import TrainConfig, train

    _bad_files(plugin_dir, "")
    calls: list[float] = []
    (plugin_dir / "counting.py").write_text(
        "from bench.registry import Remedy, SearchDefault\n"
        "CALLS = []\n"
        "COUNT = Remedy(name='count', axis='clipping', label='count',\n"
        "    search={'tau': SearchDefault(0.1, 1.0)},\n"
        "    after_step=lambda model, hp, lr: CALLS.append(hp['tau']))\n")
    spec = config.load("plugins.yaml", {"set": ["clipping=[counting:COUNT]",
                                                "search.tau={low: 0.1, high: 1.0}"]})
    assert [c.clipping for c in config.expand(spec)][:1] == ["count"]
    import counting  # type: ignore[import-not-found]

    task = TASKS.get("adding").build({"seq_len": 5, "val_size": 4, "test_size": 4}, seed=0,
                                     device=torch.device("cpu"))
    train(TrainConfig(steps=3, eval_every=3, clipping="count", hparams={"tau": 0.5}), task,
          build_model("rnn", ModelSizes(2, 1, False), hidden_size=3))
    calls = counting.CALLS
    assert calls == [0.5, 0.5, 0.5]
    # A range the config leaves out is the remedy's default.
    spec = config.load("plugins.yaml", {"set": ["clipping=[counting:COUNT]"]})
    assert (spec.search["tau"].low, spec.search["tau"].high) == (0.1, 1.0)


def test_entry_points_register_plugins(plugin_dir: Path) -> None:
    dist = plugin_dir / "np_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: np-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gradbench.models]\nnp-rnn = my_models:NP_RNN\n")
    spec = config.load("plugins.yaml", {"models": ["lstm", "np-rnn"]})
    assert [c.model for c in config.expand(spec)][:2] == ["lstm", "lstm"]
    assert "np-rnn" in {c.model for c in config.expand(spec)}
    valid = ", ".join([*MODELS.names(), "np-rnn"])
    with pytest.raises(ConfigError, match=rf"unknown model 'np-rnx'; valid: {valid} "):
        config.load("plugins.yaml", {"models": ["np-rnx"]})


# --------------------------------------------------------------------------- end to end


def _suite_runs(run_dir: Path, name: str) -> list:
    from bench.report.results import ResultsSource
    from bench.tracking import default_tracking_uri

    return ResultsSource(default_tracking_uri(run_dir), name).search()


@pytest.mark.slow
def test_the_example_plugins_run_as_a_suite_end_to_end(plugin_dir: Path) -> None:
    """Tuning, final seeds, MLflow runs with the exact profiles, and the report."""
    from bench.report.results import ResultsSource
    from bench.tracking import PROFILES_TABLE, default_tracking_uri

    runs = plugin_dir / "runs"
    run = subprocess.run([*GRADBENCH, "run", "plugins.yaml", "--workers", "2", "--runs-dir",
                          str(runs)], capture_output=True, text=True, cwd=plugin_dir,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "first-sign: test acc over all final seeds (higher is better" in run.stdout
    records = _suite_runs(runs / "plugins", "plugins")
    finals = [r for r in records if r.tags.get("role") == "final"]
    assert {r.tags["configuration"] for r in finals} == {
        f"{task}-T10/{model}/none/{clip}" for task in ("first-sign", "adding")
        for model in ("rnn", "np-rnn") for clip in ("none", "norm")}
    assert all(r.status == "FINISHED" for r in records if r.tags.get("role") != "configuration")
    source = ResultsSource(default_tracking_uri(runs / "plugins"), "plugins")
    np_final = next(r for r in finals if r.tags["model"] == "np-rnn")
    profile = source.tables([np_final.run_id], PROFILES_TABLE)
    assert set(profile["kind"]) == {"h", "bound"}  # the record's gain gives the bound
    assert sorted(set(profile["t"])) == list(range(1, 11))
    report = subprocess.run([*GRADBENCH, "report", "plugins", "--runs-dir", str(runs)],
                            capture_output=True, text=True, cwd=plugin_dir, timeout=300)
    assert report.returncode == 0, report.stderr
    page = (plugin_dir / "reports" / "plugins" / "index.html").read_text()
    elsewhere = plugin_dir.parent / "elsewhere"  # the plugins do not import from here
    elsewhere.mkdir()
    again = subprocess.run([*GRADBENCH, "report", "plugins", "--runs-dir", str(runs)],
                           capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert again.returncode == 0, again.stderr
    status = subprocess.run([*GRADBENCH, "status", "plugins", "--runs-dir", str(runs)],
                            capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert status.returncode == 2 and "cannot import my_tasks" in status.stderr
    assert "np-RNN (ReLU)" in page or "np-rnn" in page
    assert "test accuracy &gt;= 0.99" in page or "test accuracy >= 0.99" in page


@pytest.mark.slow
def test_orth_rnn_runs_in_a_suite_like_the_others(tmp_path: Path) -> None:
    from bench.report.results import ResultsSource
    from bench.tracking import PROFILES_TABLE, default_tracking_uri

    runs = tmp_path / "runs"
    run = subprocess.run([*GRADBENCH, "run", "smoke", "--tasks", "adding", "--models",
                          "orth-rnn,rnn", "--runs-dir", str(runs), "--set", "name=orth"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    records = _suite_runs(runs / "orth", "orth")
    finals = [r for r in records if r.tags.get("role") == "final"
              and r.tags["model"] == "orth-rnn"]
    # every configuration's every seed ran to its end (a diverged one too: a result), none
    # failed
    seeds = yaml.safe_load((runs / "orth" / "config.yaml").read_text())["final"]["seeds"]
    per_configuration = Counter(r.tags["configuration"] for r in finals)
    assert per_configuration and set(per_configuration.values()) == {seeds}, per_configuration
    assert [(r.status, r.tags["state"]) for r in finals if r.status != "FINISHED"
            or r.tags["state"] == "failed"] == []
    source = ResultsSource(default_tracking_uri(runs / "orth"), "orth")
    profile = source.tables([finals[0].run_id], PROFILES_TABLE)
    first = profile[(profile["step"] == 0) & (profile["kind"] == "h")]
    assert len(first) == 10  # T=10, at initialisation
    spectra = source.tables([finals[0].run_id], "diagnostics/spectra.csv")
    at_init = spectra[spectra["step"] == 0]
    assert float(at_init["spectral_norm"].iloc[0]) == pytest.approx(1.0, abs=1e-5)  # orthogonal
