"""The tracking layer: the only package that imports mlflow.

Layout (SPEC section 4): one MLflow experiment per suite; a parent run per configuration
(tags: task, seq_len, model, regularization, clipping, config hash); nested runs per trial
(``role=trial``) and per final seed (``role=final``). Metrics are ``namespace/name`` with the
global step, logged in batches with ``MlflowClient.log_batch`` (one call per 1,000 points);
tables (gradient profiles, spectra, ...) go to CSV artifacts, and so does every training
step (``STEPS_TABLE``), whose curves are metrics only thinned.

This package owns that layout on both sides: where a suite's store is (``resolve_uri``), how
a finished run becomes metrics, tables and params (``result_metrics``, ``step_rows``,
``run_params``), writing (``Tracker``) and reading back (``RunReader``, plain ``RunRecord``
values: no MLflow type leaves this package on the read side). The names of the metrics and
artifacts are ``bench.names``' (re-exported here), so that code which only needs the names
does not load MLflow.

The modules: ``store`` (where the store is, ``configure``, ``preload``, moved run
directories, reachability), ``retries`` (calls made again while the store does not answer,
for ``retries.RETRY_S`` seconds: each tracker reads it there), ``records`` (a run's records
as plain values), ``writer`` (``Tracker``), ``spool`` (records kept on disk and sent from a
thread, opens first, replay on resume) and ``reader`` (``RunReader``). Callers use the names
re-exported here. ``store``, ``writer`` and ``reader`` import mlflow (3-4 s), ``figures``
(a run's PNG figures) matplotlib; they are loaded on first use of one of their names:
importing this package (``bench.report.results`` does) loads neither.

Nothing happens at import: ``configure()`` quiets MLflow's loggers and bounds its HTTP
retries (``Tracker`` and ``RunReader`` call it), ``preload()`` imports the stores a fork
server should hold before it forks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bench.names import (
    BASELINE,
    CONFIG_FILE,
    CONFUSION_TABLE,
    DASHBOARD_TAG,
    DESCRIPTION_TAG,
    FACTOR_NAMES,
    FACTORS,
    GRAD_NORM,
    PROFILES_TABLE,
    SPECTRAL_RADIUS,
    STEPS_TABLE,
    STEPS_TO_SOLVE,
    STUDY_TAG,
    TEST_LOSS,
    TEST_NORMALIZED,
    TRAIN_LOSS,
    VAL_LOSS,
    diagnostics_table,
    metric_key,
)
from bench.tracking.records import (
    MAX_CURVE_POINTS,
    MetricPoint,
    RunRecord,
    RunRecords,
    best_points,
    csv_text,
    curve,
    diagnostic_metrics,
    normalized_score,
    provenance,
    result_metrics,
    run_description,
    run_params,
    runs_view,
    step_rows,
)
from bench.tracking.retries import RETRY_S, TRANSIENT, TrackingUnavailable
from bench.tracking.spool import (
    OPEN_FIRST_S,
    OPENS_LOCK,
    SEND_BACKLOG,
    BackgroundWriter,
    Spool,
    check_spooled,
    opening,
    opens_first,
    replay_spooled,
)

# The names of the modules that import mlflow, loaded by ``__getattr__`` on first use.
_LOADED_ON_USE = {
    "store": ("artifact_root", "check_reachable", "configure", "default_tracking_uri",
              "find_experiment", "find_experiment_id", "preload", "relocate_artifacts",
              "resolve_uri"),
    "writer": ("BATCH", "PARAM_BATCH", "UPLOADS", "Tracker"),
    "reader": ("PAGE", "RunReader"),
    "figures": ("gradient_flow_png", "log_flow", "run_figures"),  # matplotlib: where it draws
    "report_run": ("log_report",),
    "inputs": ("log_dataset",),
}

if TYPE_CHECKING:
    from bench.tracking.figures import gradient_flow_png, log_flow, run_figures
    from bench.tracking.inputs import log_dataset
    from bench.tracking.reader import PAGE, RunReader
    from bench.tracking.report_run import log_report
    from bench.tracking.store import (
        artifact_root,
        check_reachable,
        configure,
        default_tracking_uri,
        find_experiment,
        find_experiment_id,
        preload,
        relocate_artifacts,
        resolve_uri,
    )
    from bench.tracking.writer import BATCH, PARAM_BATCH, UPLOADS, Tracker
else:

    def __getattr__(name: str) -> Any:
        """A name of ``store``, ``writer`` or ``reader``: its module imported (with mlflow)
        the first time one is asked for, the name kept here after."""
        module = next((m for m, names in _LOADED_ON_USE.items() if name in names), None)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value


__all__ = [
    "BASELINE",
    "BATCH",
    "CONFIG_FILE",
    "CONFUSION_TABLE",
    "DASHBOARD_TAG",
    "DESCRIPTION_TAG",
    "FACTORS",
    "FACTOR_NAMES",
    "GRAD_NORM",
    "MAX_CURVE_POINTS",
    "OPENS_LOCK",
    "OPEN_FIRST_S",
    "PAGE",
    "PARAM_BATCH",
    "PROFILES_TABLE",
    "RETRY_S",
    "SEND_BACKLOG",
    "SPECTRAL_RADIUS",
    "STEPS_TABLE",
    "STEPS_TO_SOLVE",
    "STUDY_TAG",
    "TEST_LOSS",
    "TEST_NORMALIZED",
    "TRAIN_LOSS",
    "TRANSIENT",
    "UPLOADS",
    "VAL_LOSS",
    "BackgroundWriter",
    "MetricPoint",
    "RunReader",
    "RunRecord",
    "RunRecords",
    "Spool",
    "Tracker",
    "TrackingUnavailable",
    "artifact_root",
    "check_reachable",
    "best_points",
    "check_spooled",
    "configure",
    "csv_text",
    "curve",
    "default_tracking_uri",
    "diagnostic_metrics",
    "diagnostics_table",
    "find_experiment",
    "find_experiment_id",
    "log_dataset",
    "log_flow",
    "log_report",
    "metric_key",
    "normalized_score",
    "opening",
    "opens_first",
    "preload",
    "provenance",
    "relocate_artifacts",
    "replay_spooled",
    "resolve_uri",
    "result_metrics",
    "run_description",
    "run_figures",
    "gradient_flow_png",
    "run_params",
    "runs_view",
    "step_rows",
]
