"""Where a suite's tracking store is, and what is set before anything talks to it.

A suite's store is the configured tracking URI, else ``$MLFLOW_TRACKING_URI``, else an
embedded SQLite store in its run directory (``resolve_uri``), whose artifacts sit beside
it (``artifact_root``) and follow the run directory when it is moved (``relocate_artifacts``).

Nothing happens at import: ``configure()`` quiets MLflow's loggers and bounds its HTTP
retries (``Tracker`` and ``RunReader`` call it), ``preload()`` imports the stores a fork
server should hold before it forks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient

from bench.errors import DamagedStore, error_line, mask_secrets
from bench.tracking.retries import (
    NamingClient,
    RetryingClient,
    TrackingUnavailable,
    naming_damage,
)


def configure() -> None:
    """Quiet MLflow's own logging and bound its HTTP retries. Idempotent; called by
    ``Tracker`` and ``RunReader``, and by an entry point before anything else talks to MLflow.

    Table creation and migrations (``mlflow``, ``alembic`` loggers) are not news to a user.
    MLflow's own HTTP retries (7, backoff factor 2) can hang a worker for minutes without a
    word; the tracker retries itself, with a bounded budget, and then fails with a clear
    message. Its "Downloading artifacts" progress bars are off. Values the user set in the
    environment are kept, except one: MLflow's own "View run ... at: URL" lines are always
    off, as they print the tracking URI's password.
    """
    level = logging.INFO if os.environ.get("GRADBENCH_VERBOSE") else logging.WARNING
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(level)
    # logs a store's SQL error (a full disk, a damaged file) as a traceback just before
    # raising it; the command says it in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(
        level if os.environ.get("GRADBENCH_VERBOSE") else logging.CRITICAL)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # a "Downloading artifacts" bar on stderr per artifact read (a report reads dozens)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def preload() -> None:
    """Import the tracking stores of sqlite/postgresql URIs, for a process that forks
    workers: each worker then starts with them loaded."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def resolve_uri(configured: str | None, run_dir: Path) -> str:
    """A suite's tracking URI: the configured one, else ``$MLFLOW_TRACKING_URI``, else the
    embedded store in its run directory."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(run_dir)


def default_tracking_uri(run_dir: Path) -> str:
    """The embedded store: a SQLite database in the suite's run directory."""
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def artifact_root(run_dir: Path) -> str:
    return (run_dir / "artifacts").resolve().as_uri()


def relocate_artifacts(uri: str, experiment: str, run_dir: Path) -> str | None:
    """Point a moved or copied run directory's embedded store at its own ``artifacts/``.

    MLflow records an experiment's artifact location, and each run's, as absolute paths:
    after ``mv runs/a runs/b`` new runs' files would go to the old path (created again), and
    the MLflow UI would find none of the old ones; in a copy they would go into the
    original. Only the embedded store of ``run_dir`` (``default_tracking_uri``) is changed:
    a shared store's locations belong to the machine that created them. Returns the old
    location when it was changed, else None.
    """
    if uri != default_tracking_uri(run_dir) or not (run_dir / "mlflow.db").exists():
        return None
    import sqlalchemy

    new = artifact_root(run_dir)
    engine = sqlalchemy.create_engine(uri)
    try:
        with naming_damage(uri), engine.begin() as db:
            row = db.execute(sqlalchemy.text(
                "SELECT experiment_id, artifact_location FROM experiments WHERE name = :name"),
                {"name": experiment}).first()
            if row is None or row[1] == new or local_dir(str(row[1])) is None:
                return None
            old = str(row[1])
            db.execute(sqlalchemy.text(
                "UPDATE experiments SET artifact_location = :new WHERE experiment_id = :id"),
                {"new": new, "id": row[0]})
            db.execute(sqlalchemy.text(
                "UPDATE runs SET artifact_uri = :new || substr(artifact_uri, :cut) "
                "WHERE experiment_id = :id AND substr(artifact_uri, 1, :n) = :old"),
                {"new": new, "cut": len(old) + 1, "id": row[0], "n": len(old) + 1,
                 "old": old + "/"})
    finally:
        engine.dispose()
    _forget_artifact_locations()
    logging.getLogger(__name__).warning(
        "run directory %s was moved or copied: its artifacts are now looked for and written "
        "there (were %s)", run_dir, local_dir(old))
    return old


def _forget_artifact_locations() -> None:
    """Drop MLflow's per-process cache of each run's artifact location (run id -> folder):
    after a move, a run this process wrote to before (a report of the original, then of the
    copy, in one process) would otherwise still be written to the old folder."""
    from mlflow.tracking._tracking_service import utils

    with contextlib.suppress(AttributeError):  # a private cache: gone in another version
        utils._artifact_repos_cache.clear()


def is_local(uri: str) -> bool:
    """Whether ``uri`` is a store this process opens itself (a database), not a server."""
    return uri.startswith(("sqlite:", "file:", "postgresql", "mysql")) or "://" not in uri


def local_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file://`` artifact location."""
    if artifact_uri.startswith("file:"):
        return Path(unquote(urlparse(artifact_uri).path))
    if artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def check_reachable(uri: str, retry_s: float = 10.0) -> None:
    """Fail now, in one line, when a tracking server cannot be reached or refuses us; reads
    only. A local store (SQLite, a database URL) is opened later, where it is used.

    Raises:
        TrackingUnavailable: unreachable after ``retry_s`` of retries, or refused.
    """
    if is_local(uri):
        return
    configure()
    client = RetryingClient(MlflowClient(tracking_uri=uri), uri, retry_s)
    try:
        client.search_experiments(max_results=1)
    except TrackingUnavailable:
        raise
    except Exception as err:
        hint = ""
        if "Invalid Host header" in str(err):
            hint = ("; the server checks the Host header: start it with "
                    "--allowed-hosts naming the host and port of this URI")
        raise TrackingUnavailable(f"tracking store {mask_secrets(uri)} refused the request: "
                                  f"{error_line(err)}{hint}") from None


def _connect_once(uri: str, timeout_s: int = 10) -> None:
    """Open and close one connection to a PostgreSQL store: its error (no password, wrong
    database, down) at once. MLflow's client retries every error of a new store for about
    two minutes, a missing password included."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool,
                                      connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def mlflow_client(uri: str) -> MlflowClient:
    """MLflow's client on the store at ``uri``. It opens a SQLite store at once: a damaged
    file is a ``DamagedStore`` naming it (``retries.naming_damage``)."""
    with naming_damage(uri):
        return MlflowClient(tracking_uri=uri)


def find_experiment_id(uri: str, name: str) -> str | None:
    """The id of the experiment ``name`` in the store at ``uri``, or None (creates nothing)."""
    found = find_experiment(uri, name)
    return None if found is None else found[0]


def find_experiment(uri: str, name: str) -> tuple[str, dict[str, str]] | None:
    """(id, tags) of the experiment ``name`` in the store at ``uri``, or None (creates
    nothing).

    Raises:
        TrackingUnavailable: a database store that refuses the connection (a missing
            password, say), in one line.
    """
    configure()
    try:
        if uri.startswith("postgresql"):  # MLflow tries a database for 2 minutes: once here
            _connect_once(uri)
        found = NamingClient(mlflow_client(uri), uri).get_experiment_by_name(name)
    except DamagedStore:
        raise
    except Exception as err:
        if not uri.startswith(("postgresql", "mysql")):
            raise
        hint = "; PGPASSWORD or ~/.pgpass gives libpq the password" \
            if "password" in str(err) and uri.startswith("postgresql") else ""
        raise TrackingUnavailable(f"tracking store {mask_secrets(uri)} cannot be read: "
                                  f"{error_line(err)}{hint}") from None
    return None if found is None else (str(found.experiment_id), dict(found.tags))
