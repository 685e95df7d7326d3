"""A run's input data set (MLflow's Dataset column): the one real data set, HAR, whose
arrays MLflow digests; the synthetic tasks' generator settings are params already."""

from __future__ import annotations

import warnings
from typing import Any

from mlflow.data.numpy_dataset import from_numpy
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from bench.tracking.writer import Tracker

# data set -> MLflow's entity, built (digested) once per process: (name, id of the
# features array, source); the arrays are the task's, shared and never changed
_BUILT: dict[tuple[str, int, str], Any] = {}


def log_dataset(tracker: Tracker, run_id: str, name: str, features: Any, targets: Any,
                source: str, context: str = "train") -> None:
    """Numpy ``features`` and ``targets`` read from ``source`` (a path or URL) as an input
    of the run, with its digest, in the ``context`` it was used (``mlflow.data.context``)."""
    key = (name, id(features), source)
    if key not in _BUILT:
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways"
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_numpy(features, targets=targets, source=source, name=name)
        _BUILT[key] = dataset._to_mlflow_entity()
    tracker.client.log_inputs(run_id, datasets=[
        DatasetInput(_BUILT[key], tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])
