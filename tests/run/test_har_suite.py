"""A suite on HAR (the fixture data in the original layout, ``testkit.har``): the test split
leaves no trace on a tuning trial, in MLflow or in Optuna, while the final seeds record
their test metrics and confusion matrix.

The worker runs in this process so that it reads the fixture's window counts (the loader
enforces the official ones by default).
"""

from __future__ import annotations

import functools
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from bench import config
from bench.names import CONFUSION_TABLE
from bench.run import suite as suites
from bench.run import worker
from tasks import har, har_data
from testkit.har import make_fixture, write_dir
from testkit.suites import write_suite

pytestmark = pytest.mark.slow

TRIALS, SEEDS = 2, 2


def _spec(data_dir: Path, cache_dir: Path) -> dict:
    return {
        "name": "harfix",
        "device": "cpu",
        "tasks": {"har": {"data_dir": str(data_dir), "cache_dir": str(cache_dir),
                          "val_subjects": 1, "download": False}},
        "models": ["gru"],
        "regularization": ["none"],
        "clipping": ["none"],
        "model": {"hidden_size": 4},
        "training": {"steps": 4, "batch_size": 8, "eval_every": 2},
        "search": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}},
        "tuning": {"trials": TRIALS, "sampler": "random", "pruner": "none"},
        "final": {"seeds": SEEDS},
        "diagnostics": {"probe_every": 2},
    }


def _mentions_test(text: str) -> bool:
    return "test" in text.lower()


def test_no_tuning_trial_of_a_har_suite_records_anything_of_the_test_split(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    har.clear_memo()
    monkeypatch.setattr(har, "load_har", functools.partial(har_data.load_har,
                                                           expected_windows=None))
    data_dir = write_dir(make_fixture().files, tmp_path / "data")
    spec = config.load(write_suite(tmp_path, _spec(data_dir, tmp_path / "cache")))
    suite = suites.prepare(spec, tmp_path / "runs")
    assert [c.task for c in suite.configurations] == ["har"]
    kinds: list[str] = []
    jobs = worker.Worker(suite, 0, lambda kind, payload: kinds.append(kind)).run()
    assert jobs == TRIALS + SEEDS and kinds.count("end") == TRIALS + SEEDS

    storage = JournalStorage(JournalFileBackend(str(suite.run_dir / "optuna.journal")))
    studies = {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
               for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    tuned = [t for name, s in studies.items() if not name.endswith("/final") for t in s.trials]
    finals = [t for name, s in studies.items() if name.endswith("/final") for t in s.trials]
    assert len(tuned) == TRIALS and len(finals) == SEEDS
    for trial in tuned:
        assert not [k for k in (*trial.user_attrs, *trial.params) if _mentions_test(k)]
        assert not [k for k, v in trial.user_attrs.items() if _mentions_test(str(v))]
    assert all("acc" in t.user_attrs["test"] for t in finals)  # the check can see a test key

    client = MlflowClient(f"sqlite:///{suite.run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("harfix")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("role") == "trial"]
    final_runs = [r for r in runs if r.data.tags.get("role") == "final"]
    assert len(trials) == TRIALS and len(final_runs) == SEEDS
    for run in trials:
        files = _artifacts(client, run.info.run_id)
        assert not [f for f in files if _mentions_test(f)], files
        assert not [k for k in (*run.data.metrics, *run.data.params, *run.data.tags)
                    if _mentions_test(k)]
    for run in final_runs:
        assert CONFUSION_TABLE in _artifacts(client, run.info.run_id)
        assert "test/acc" in run.data.metrics
    for run in trials + final_runs:  # MLflow's Dataset column: the data, digested, and where
        (used,) = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert used.dataset.name == "har" and used.dataset.digest
        assert str(data_dir) in used.dataset.source
        assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "train")]


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run, folders walked."""
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found
