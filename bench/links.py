"""Where the local web UIs answer by default: the ports of ``gradbench ui`` and the link to
optuna-dashboard that a suite writes on its MLflow runs.

Below every stage and importing nothing: the run stage writes the link without reaching into
the command layer, and ``gradbench --help`` shows the ports without importing Optuna.
"""

MLFLOW_PORT = 5000  # the defaults of `gradbench ui`
DASHBOARD_PORT = 8080


def default_dashboard_url() -> str:
    """Where ``gradbench ui`` serves optuna-dashboard when its port is free."""
    return f"http://127.0.0.1:{DASHBOARD_PORT}"
