"""Reading a suite's runs back: plain ``RunRecord`` values, no MLflow type leaves here.

``RunReader`` reads one experiment and never writes (nothing is created); ``search_runs``
and ``download_text`` are the reads the writing side shares (its runs by filter, a table it
wrote).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from bench.errors import DamagedStore, mask_secrets
from bench.tracking.records import RunRecord
from bench.tracking.retries import NamingClient, TrackingUnavailable
from bench.tracking.store import configure, local_dir, mlflow_client

PAGE = 1000  # search_runs page size (MLflow's maximum per request)


def _record(run: Any) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(run_id=str(info.run_id), parent_id=data.tags.get(MLFLOW_PARENT_RUN_ID, ""),
                     name=data.tags.get(MLFLOW_RUN_NAME, ""), status=str(info.status),
                     artifact_uri=info.artifact_uri or "", start_time=info.start_time,
                     end_time=info.end_time, tags=dict(data.tags), params=dict(data.params),
                     metrics=dict(data.metrics))


class RunReader:
    """The runs of one suite's experiment, read and never written (nothing is created).

    Raises:
        FileNotFoundError: an embedded (SQLite) store that does not exist, or no experiment
            of that name in the store.
    """

    def __init__(self, uri: str, experiment: str) -> None:
        configure()
        self.uri, self.experiment = uri, experiment
        database = uri.removeprefix("sqlite:///")
        if uri.startswith("sqlite:///") and not Path(database).exists():
            raise FileNotFoundError(f"no tracking store at {database}")  # don't create one
        self._client = NamingClient(mlflow_client(uri), uri)
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            raise FileNotFoundError(f"no MLflow experiment {experiment!r} at "
                                    f"{mask_secrets(uri)}; run the suite first")
        self.experiment_id = str(found.experiment_id)
        self._artifact_uri: dict[str, str] = {}
        # an embedded store's artifacts sit beside it (``artifact_root``), where they are
        # looked for when the run directory was moved or copied since they were written
        self._beside = Path(database).parent / "artifacts" if uri.startswith("sqlite:///") \
            else None

    def runs(self) -> list[RunRecord]:
        """Every run of the experiment (all statuses), in pages of 1,000."""
        records = [_record(run) for run in search_runs(self._client, self.experiment_id)]
        self._artifact_uri.update((r.run_id, r.artifact_uri) for r in records)
        return records

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every logged (step, value) of one metric of a run, in logging order."""
        return [(int(m.step), float(m.value))
                for m in self._client.get_metric_history(run_id, key)]

    def text(self, run_id: str, path: str) -> str | None:
        """An artifact as text, or None when the run has no such artifact. Artifacts in a
        local folder are read directly (much faster than a download)."""
        local = local_dir(self._artifact_uri.get(run_id, ""))
        if local is not None:
            if not local.exists() and self._beside is not None:
                local = self._beside.joinpath(*local.parts[-2:])  # <run id>/artifacts
            target = local / path
            return target.read_text() if target.is_file() else None
        return download_text(self._client, run_id, path)


def search_runs(client: Any, experiment_id: str, filter_string: str = "",
                max_results: int | None = None) -> Iterator[Any]:
    """The runs of an experiment matching a filter (all of them: ``max_results`` None), in
    pages of up to 1,000 (MLflow's maximum per request)."""
    token, count = None, 0
    while True:
        size = PAGE if max_results is None else min(max_results, PAGE)
        page = client.search_runs([experiment_id], filter_string, max_results=size,
                                  page_token=token)
        yield from page
        count += len(page)
        token = page.token
        if not token or (max_results is not None and count >= max_results):
            return


def download_text(client: Any, run_id: str, path: str) -> str | None:
    """An artifact of a run as text, or None when the run has no such artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return Path(client.download_artifacts(run_id, path, tmp)).read_text()
        except (TrackingUnavailable, DamagedStore):
            raise
        except Exception:  # absent artifact: MlflowException / OSError, by store
            return None
