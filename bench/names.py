"""The names of what a run records: metric keys and artifact paths (SPEC section 4).

Both sides use them: the tracking layer writes under these names (``bench.tracking``), the
report reads them back (``bench.report``). This module imports nothing, so a module that
needs only the names (``bench.report.analysis``, pure pandas) never loads MLflow.
"""

from __future__ import annotations

# Artifacts of a run (paths inside its artifact folder).
STEPS_TABLE = "curves.csv"  # a run's every step: step, train_loss, grad_norm, clipped
CONFIG_FILE = "config.yaml"  # the resolved suite config, on each configuration run
CONFUSION_TABLE = "test/confusion.csv"  # HAR final seeds: true, predicted, count
FIGURES = "figures"  # a final run's PNG figures, and the flow heatmap on its parent run
FLOW_FIGURE = f"{FIGURES}/gradient_flow.png"  # on a configuration's parent run


def diagnostics_table(name: str) -> str:
    """The artifact path of a diagnostics table (``profiles`` -> ``diagnostics/profiles.csv``)."""
    return f"diagnostics/{name}.csv"


PROFILES_TABLE = diagnostics_table("profiles")  # per-time-step gradient norms at probe steps
FACTORS_TABLE = diagnostics_table("factors")  # the exact split per probe, over its steps
FACTOR_STEPS_TABLE = diagnostics_table("factor_steps")  # the exact split per probe and step
# A parent run's way to its Optuna study: the study's name, its page on optuna-dashboard, and
# MLflow's description of the run (shown on the run's page).
STUDY_TAG = "optuna.study"
DASHBOARD_TAG = "optuna.dashboard"
DESCRIPTION_TAG = "mlflow.note.content"
# MLflow's own source tags (its runs table's Source column, the run page's git commit)
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# The runs table's view a suite's links open (``?viewStateShareKey=gradbench``): MLflow keeps
# a shared view of its runs table as an experiment tag of this prefix and key. MLflow lets no
# client set the table's default columns (the UI keeps them in the browser).
RUNS_VIEW_KEY = "gradbench"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
REPORT_ROLE = "report"  # the role tag of the run that holds a suite's report (its HTML, figures)

# The metrics a report reads back by name (every key is ``namespace/name``).
TRAIN_LOSS = "train/loss"  # task loss per step (thinned; every step in STEPS_TABLE)
GRAD_NORM = "grad/norm"  # global gradient norm before clipping, per step (thinned)
VAL_LOSS = "val/loss"  # validation loss at the evaluation steps
TEST_LOSS = "test/loss"
TEST_NORMALIZED = "test/normalized"  # test loss / the trivial predictor's (same test set)
STEPS_TO_SOLVE = "val/steps_to_solve"  # first evaluation step meeting the solved rule
BASELINE = "baseline"  # namespace of the trivial predictor's metrics: baseline/test_loss, ...
UNCAPPED = "uncapped"  # a final seed's test metrics as measured, before the cap (bench.scores)
SPECTRAL_RADIUS = "weights/spectral_radius"  # of W_hh, largest over gate blocks
FACTORS = "factors"  # the exact split of the decay (means over the steps), at each probe
# the columns of FACTORS_TABLE recorded as metrics factors/<name> (a NaN is not recorded)
FACTOR_NAMES = ("available", "fprime_log10", "w_hh_log10", "step_log10_ratio", "slope",
                "carry_share", "dropped", "residual")


def metric_key(namespace: str, name: str) -> str:
    """A metric's key: ``metric_key("test", "mse")`` -> ``test/mse``."""
    return f"{namespace}/{name}"
