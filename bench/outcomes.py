"""How a run ended: one type, mapped once to Optuna trial states (in ``tuning``) and once to
MLflow run statuses (``MLFLOW_STATUS``, here).

- ``complete``: trained to the end.
- ``pruned``: stopped early by the pruner (a tuning trial only).
- ``diverged``: a non-finite loss or gradient, or a final validation loss above
  ``training.diverge_factor`` times the trivial predictor's (``bench.scores``); a result, and
  it counts in the budget.
- ``interrupted``: the worker was stopped or died; the trial is run again.
- ``failed``: an unexpected error while training; reported, not run again.

The values are the strings written to Optuna (user attribute ``outcome``), to MLflow (tag
``state``) and to the progress view, as before this type existed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.train import TrainResult


class Outcome(StrEnum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @classmethod
    def of(cls, result: TrainResult) -> Outcome:
        """The outcome of a finished training run (``TrainResult.status``)."""
        return _OF_STATUS[result.status]

    @classmethod
    def parse(cls, value: str) -> Outcome | None:
        """The outcome a recorded string names; None for anything else (``running``...)."""
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def kept(self) -> bool:
        """A result: told to Optuna and counted in the budget (not run again)."""
        return self in (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED)


_OF_STATUS = {"completed": Outcome.COMPLETE, "stopped": Outcome.PRUNED,
              "diverged": Outcome.DIVERGED}

# The status a run's MLflow run ends with.
MLFLOW_STATUS: dict[Outcome, str] = {
    Outcome.COMPLETE: "FINISHED",
    Outcome.PRUNED: "FINISHED",
    Outcome.DIVERGED: "FAILED",
    Outcome.INTERRUPTED: "KILLED",
    Outcome.FAILED: "FAILED",
}

# The ``state`` tag of a configuration's parent run that a T sweep left out (``tuning.horizon``:
# a shorter T of the same model and remedies was solved by none of its final seeds).
BEYOND_HORIZON = "beyond_horizon"
