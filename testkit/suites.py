"""Small suites for the tests: a suite spec that trains in seconds, written as a config file,
and an Optuna journal with one study in it, as a suite's workers leave it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml

from bench import tuning

# Two configurations (rnn, lstm on adding T=8), two trials and two final seeds each: 8 runs.
SMALL: dict[str, Any] = {
    "name": "small",
    "device": "cpu",
    "tasks": {"adding": {"seq_len": [8], "val_size": 64, "test_size": 64}},
    "models": ["rnn", "lstm"],
    "regularization": ["none"],
    "clipping": ["norm"],
    "model": {"hidden_size": 8},
    "training": {"steps": 20, "batch_size": 16, "eval_every": 10},
    "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
               "clip": {"low": 0.5, "high": 5.0, "log": True}},
    "tuning": {"trials": 2, "sampler": "tpe", "pruner": "median"},
    "final": {"seeds": 2},
    "diagnostics": {"probe_every": 10},
}

# The study a smoke suite's first configuration tunes.
SMOKE_STUDY = "smoke/adding-T10/rnn/none/none"


def write_suite(folder: Path, spec: dict) -> Path:
    """``spec`` as ``<folder>/<name>.yaml``, the config file ``gradbench run`` takes."""
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def journal_with_a_study(run_dir: Path, study_name: str = SMOKE_STUDY) -> None:
    """A study with a few trials, in the journal file the suite's workers write."""
    storage = tuning.open_storage(None, run_dir)
    study = optuna.create_study(study_name=study_name, storage=storage)
    study.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1e-1, log=True) - 0.01) ** 2,
                   n_trials=6)
