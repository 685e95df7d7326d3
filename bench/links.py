"""Where the local web UIs answer by default: the ports of ``gradbench ui`` and the link to
optuna-dashboard that a suite writes on its MLflow runs.

Below every stage and importing only the names: the run stage writes the link without
reaching into the command layer, and ``gradbench --help`` shows the ports without importing
Optuna. A suite writes each parent run's link with the default port when it creates the
run; ``gradbench ui`` writes it again with the port its dashboard took, so that the link on
the run's page opens while ``ui`` serves it.
"""

from bench.names import DASHBOARD_TAG, DESCRIPTION_TAG, RUNS_VIEW_KEY, STUDY_TAG

# MLflow 3's UI opens an experiment on its GenAI pages unless told the classic-ML workflow:
# by the experiment's tag (``mlflow.experimentKind``, set when a suite creates it) and by
# this query parameter of a link.
CLASSIC_VIEW = "workflowType=machine_learning"

MLFLOW_PORT = 5000  # the defaults of `gradbench ui`
DASHBOARD_PORT = 8080


def default_dashboard_url() -> str:
    """Where ``gradbench ui`` serves optuna-dashboard when its port is free."""
    return f"http://127.0.0.1:{DASHBOARD_PORT}"


def study_tags(study: str, url: str) -> dict[str, str]:
    """A parent run's tags that lead to its Optuna study (none when unknown): its name, its
    page on optuna-dashboard and the run's description saying so."""
    if not study:
        return {}
    return {STUDY_TAG: study, DASHBOARD_TAG: url,
            DESCRIPTION_TAG: f"Optuna study `{study}`: {url} (optuna-dashboard as `gradbench "
                             f"ui` serves it; `ui` rewrites this link with the port it takes)"}


def mlflow_runs_path(experiment_id: str, *, view: bool = False) -> str:
    """The path (after the UI's address) of an experiment's runs table in the classic-ML
    view; ``view``: with the suite's columns (``names.RUNS_VIEW_KEY``: the experiment must
    have that view's tag, or MLflow says the key does not exist)."""
    shared = f"&viewStateShareKey={RUNS_VIEW_KEY}" if view else ""
    return f"/#/experiments/{experiment_id}/runs?{CLASSIC_VIEW}{shared}"


def mlflow_run_path(experiment_id: str, run_id: str) -> str:
    """The path of a run's page, in the classic-ML view."""
    return f"/#/experiments/{experiment_id}/runs/{run_id}?{CLASSIC_VIEW}"
