"""Every study names its value (``Study.set_metric_names``: optuna-dashboard's axis, the
``trials_dataframe`` columns), studies of a run directory made before they were named too."""

from __future__ import annotations

from pathlib import Path

import optuna

from bench import config, tuning
from testkit.suites import SMALL, write_suite


def test_every_study_names_its_value_and_old_ones_get_a_name(tmp_path: Path) -> None:
    spec = config.load(write_suite(tmp_path, {**SMALL, "tuning": {
        **SMALL["tuning"], "objective": "val_metric"}}))
    configurations = config.expand(spec)
    storage = tuning.open_storage(None, tmp_path)
    first = tuning.study_name(spec, configurations[0])
    optuna.create_study(study_name=first, storage=storage)  # as a suite made it before
    assert optuna.load_study(study_name=first, storage=storage).metric_names is None
    tuning.create_studies(storage, spec, configurations)
    for configuration in configurations:
        for final, name in ((False, "val mse"), (True, "val mse (final seed)")):
            study = optuna.load_study(study_name=tuning.study_name(spec, configuration, final),
                                      storage=storage)
            assert study.metric_names == [name]
