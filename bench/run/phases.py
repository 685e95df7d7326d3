"""Where a worker's seconds go: each job's by phase, and the worker's own outside its jobs.

A job's phases (``job_phases``) and the worker's kinds (``Stopwatch``: claims, recovery,
waiting for work, summaries, the last flush) are what ``pool.RunStats`` sums into a suite's
``timings.json``. ``OpenedRun`` follows a job's MLflow run, opened while the job trains, and
counts the seconds spent noting it on the trial.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future

from bench import tuning
from bench.train import TrainResult


class Stopwatch:
    """Seconds by kind (``times``): ``with stopwatch("claim_s"): ...`` adds the block's."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times[kind] += time.perf_counter() - started


class OpenedRun:
    """A job's MLflow run, opened by the worker's opener thread while the job trains.

    ``note`` records the run's id on the trial (``tuning.started``) once it is known:
    at once when the opener is synchronous, else at the first evaluation after it opened,
    or after training at the latest (``wait``, which waits for it and returns it).
    """

    def __init__(self, claim: tuning.Claim, opened: Future[str]) -> None:
        self.claim, self.opened = claim, opened
        self.run_id: str | None = None
        self.noted_s = 0.0  # seconds in tuning.started
        self.in_loop = False  # noted at an evaluation: timed with the loop's reports

    def note(self, *, in_loop: bool = False) -> None:
        """Note the run if it is open; a failure to open it waits for ``wait`` (raised
        there, after training: the claim is then left to recovery as interrupted, not
        failed as an error of the training would be)."""
        if self.run_id is None and self.opened.done() and self.opened.exception() is None:
            self._note(in_loop)

    def wait(self) -> str:
        """The run's id, noted on the trial; a failure to open the run is raised here."""
        return self.run_id if self.run_id is not None else self._note(False)

    def _note(self, in_loop: bool) -> str:
        run_id = self.opened.result()
        started = time.perf_counter()
        tuning.started(self.claim, run_id)
        self.noted_s, self.in_loop = time.perf_counter() - started, in_loop
        self.run_id = run_id
        return run_id


def job_phases(result: TrainResult, *, build_s: float, open_s: float, record_s: float,
               optuna_s: float, job_s: float) -> dict[str, float]:
    """Where one job's seconds went, by kind: building its task (once per worker) and model,
    the training steps proper, evaluation, gradient probes, Optuna (the pruner's reports,
    ``tell``, noting the run on the trial), the tracking calls on the worker's path (opening
    the MLflow run; handing its records to the writer, which waits until the previous run's
    are kept on disk),
    and the rest (``other_s``)."""
    inside = result.eval_s + result.probe_s + result.report_s
    phases = {"build_s": build_s, "steps_s": max(0.0, result.wall_time - inside),
              "eval_s": result.eval_s, "probe_s": result.probe_s,
              "optuna_s": optuna_s + result.report_s, "open_s": open_s, "record_s": record_s}
    phases["other_s"] = max(0.0, job_s - sum(phases.values()))
    return phases
