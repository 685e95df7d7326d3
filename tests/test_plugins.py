"""Registries and plugins: built-ins found by scanning, users' records by reference or entry
point, bad plugins refused in one line before anything is written, and the example plugins
run as a suite end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import config
from bench.config import ConfigError
from bench.registry import (
    MODELS,
    REMEDIES,
    TASKS,
    PluginError,
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


def test_builtin_records_are_found_by_scanning_their_packages() -> None:
    assert MODELS.names() == ("rnn", "irnn", "lstm", "gru", "orth-rnn")
    assert TASKS.names() == ("adding", "copy", "har")
    assert remedy_names("regularization") == ("none", "l2", "l2-all", "decay")
    assert remedy_names("clipping") == ("none", "norm", "value", "weight")


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
    with pytest.raises(PluginError, match=r"unknown clipping 'spectral'; valid: none, norm, "
                                          r"value, weight"):
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
    "name taken": ("models: [bad_models:NAMED_LSTM]", r"its name 'lstm' is taken by a built-in"),
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
        "NAMED_LSTM = dataclasses.replace(LSTM)\n")
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
    with pytest.raises(ConfigError, match=r"unknown model 'np-rnx'; valid: rnn, irnn, lstm, "
                                          r"gru, orth-rnn, np-rnn"):
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
    assert finals and all(r.status in ("FINISHED", "FAILED") for r in finals)
    source = ResultsSource(default_tracking_uri(runs / "orth"), "orth")
    profile = source.tables([finals[0].run_id], PROFILES_TABLE)
    first = profile[(profile["step"] == 0) & (profile["kind"] == "h")]
    assert len(first) == 10  # T=10, at initialisation
    spectra = source.tables([finals[0].run_id], "diagnostics/spectra.csv")
    at_init = spectra[spectra["step"] == 0]
    assert float(at_init["spectral_norm"].iloc[0]) == pytest.approx(1.0, abs=1e-5)  # orthogonal
