"""A suite's report in its MLflow experiment: a run of its own (``role=report``), whose
artifacts are the page and its figures, so that the report opens from the MLflow UI.

One such run per experiment: a report written again replaces its files (same paths) and
its description; the run is found by its ``role`` tag. The readers of a suite's runs take
the roles they know (configuration, trial, final) and pass this one by.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from bench.names import DESCRIPTION_TAG, REPORT_ROLE
from bench.tracking.records import provenance
from bench.tracking.writer import Tracker

REPORT_FOLDER = "report"  # the run's artifacts: report/index.html, report/figures/...


def log_report(uri: str, experiment: str, files: Mapping[str, Path], *,
               retry_s: float = 10.0) -> str:
    """Log ``files`` (path in the report's folder -> file) as the artifacts of the
    experiment's report run (created the first time); returns the run's id."""
    tracker = Tracker(uri, experiment, retry_s=retry_s)
    found = tracker.find_runs(f"tags.role = '{REPORT_ROLE}'", max_results=1)
    written = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    tags = {**provenance(), "role": REPORT_ROLE, MLFLOW_RUN_NAME: "report",
            DESCRIPTION_TAG: f"The report of suite `{experiment}`, written {written} by "
                             f"`gradbench report`: open `{REPORT_FOLDER}/index.html` under "
                             f"Artifacts (its figures are PNG files beside it)."}
    if found:
        run_id = str(found[0].info.run_id)
        tracker.set_tags(run_id, tags)
    else:
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags,
                                           run_name="report").info.run_id
    tracker.log_files(run_id, {f"{REPORT_FOLDER}/{name}": path.read_bytes()
                               for name, path in files.items()})
    tracker.end_run(str(run_id), "FINISHED")
    return str(run_id)
