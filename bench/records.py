"""The old home of a finished run's tracking records; they are built in ``bench.tracking``.

``bench.tracking`` owns the names of the metrics (``namespace/name``) on the side that writes
them and on the side that reads them back, so the functions that turn a ``TrainResult`` into
metric points, the steps table and params live there. This module keeps their old import path
working; new code imports them from ``bench.tracking``.
"""

from bench.tracking import (
    MAX_CURVE_POINTS,
    MetricPoint,
    curve,
    diagnostic_metrics,
    normalized_score,
    result_metrics,
    run_params,
    step_rows,
)

__all__ = ["MAX_CURVE_POINTS", "MetricPoint", "curve", "diagnostic_metrics", "normalized_score",
           "result_metrics", "run_params", "step_rows"]
