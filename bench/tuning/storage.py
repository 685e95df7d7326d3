"""The Optuna storage: a journal file under the run directory or a database, opened once per
process; reads and claims made again while a database does not answer (``retrying``); and the
heartbeats of an RDB storage, which tell a dead worker's trial from a live one.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna
from optuna.storages import BaseStorage, RDBStorage

from bench import retry
from bench.errors import error_line, mask_secrets
from bench.tuning.journal import open_journal


def configure() -> None:
    """Quiet Optuna for a command line: warnings and errors only, and no notice that the
    heartbeat arguments the project relies on are experimental. Called at the entry points
    (the CLI, a worker process); idempotent."""
    if os.environ.get("GRADBENCH_VERBOSE"):  # --verbose: Optuna's notices and warnings too
        optuna.logging.set_verbosity(optuna.logging.INFO)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats are recorded here rather than by Study.optimize, which Optuna expects.
    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)


# RDB storages: a RUNNING trial without a heartbeat for GRACE_S seconds is stale.
HEARTBEAT_S = int(os.environ.get("GRADBENCH_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("GRADBENCH_GRACE_S", "40"))


def open_storage(url: str | None, run_dir: Path, *, wait: bool = False) -> BaseStorage:
    """The Optuna storage: a journal file under ``run_dir`` by default, else ``url``.

    RDB URLs (``postgresql://``, ``sqlite:///``, ``mysql://``) get heartbeats so that a
    trial whose worker was killed is detected and retried. ``wait``: a database that does
    not answer (a restart) is asked again for up to ``GRADBENCH_STORAGE_RETRY_S``, as a
    worker starting mid-run does; the command itself fails at once, so that a wrong URL is
    one line without a wait.
    """
    if url is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        return open_journal(run_dir / "optuna.journal")
    if url.startswith("journal:"):
        return open_journal(url.removeprefix("journal:"))
    deadline, delay, attempt = time.monotonic() + (STORAGE_RETRY_S if wait else 0.0), 0.5, 0
    while True:  # fresh databases: two processes may create the tables at once
        attempt += 1
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              engine_kwargs={"pool_pre_ping": True})
        except ModuleNotFoundError as err:
            raise StorageUnavailable(_no_driver(url, err.name)) from err
        except Exception as err:  # sqlalchemy errors: unreachable, bad credentials, races
            if "already exists" in str(err) and attempt < 3:
                continue
            if wait and _transient(err) and time.monotonic() + delay < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if "Failed to import DB access module" in str(err):
                raise StorageUnavailable(_no_driver(url, None)) from None
            raise StorageUnavailable(f"storage {mask_secrets(url)} unreachable: "
                                     f"{error_line(err)}") from err


def _no_driver(url: str, module: str | None) -> str:
    """The one-line error for a database driver that is not installed, with the fix."""
    scheme = url.split("://", 1)[0]
    which = f" ({module})" if module else ""
    hint = ("pip install 'rnn-gradbench[postgres]' and name its driver in the URL: "
            "postgresql+psycopg2://..." if scheme.startswith("postgresql")
            else "install the driver the URL names, or name an installed one (scheme+driver://)")
    return f"storage {mask_secrets(url)}: the database driver of {scheme}:// is not " \
           f"installed{which}; {hint}"


class StorageUnavailable(RuntimeError):
    """The Optuna storage cannot be opened, or stayed unreachable."""


STORAGE_RETRY_S = float(os.environ.get("GRADBENCH_STORAGE_RETRY_S", "60"))
T = TypeVar("T")


def retrying(call: Callable[[], T], retry_s: float | None = None, *,
             landed: Callable[[], bool] | None = None) -> T:
    """``call()``, made again with backoff while the database does not answer (a restart,
    a network blip: Optuna's StorageInternalError) for up to ``retry_s`` seconds (default
    ``GRADBENCH_STORAGE_RETRY_S``, 60), then StorageUnavailable in one line. For reads and
    claims, which are safe to repeat; a write passes ``landed`` (see ``write``)."""
    limit = STORAGE_RETRY_S if retry_s is None else retry_s

    def give_up(err: BaseException, attempts: int) -> BaseException:
        return StorageUnavailable(f"the Optuna storage did not answer for {limit:.0f} s: "
                                  f"{error_line(err.__cause__ or err)}")

    return retry.retrying(
        call, limit_s=limit, give_up=give_up, max_delay_s=5.0, landed=landed,
        transient=_transient)


def _transient(err: BaseException) -> bool:
    """An error a restart or a network blip raises: Optuna's StorageInternalError (a failed
    commit), or SQLAlchemy's OperationalError / InterfaceError, which a read or a new
    connection raises as it is (e.g. "the database system is shutting down")."""
    if isinstance(err, optuna.exceptions.StorageInternalError):
        return True
    return type(err).__module__.startswith("sqlalchemy") and \
        type(err).__name__ in ("OperationalError", "InterfaceError")


def write(call: Callable[[], object], landed: Callable[[], bool] | None = None,
          retry_s: float | None = None) -> None:
    """A write a worker makes (a trial's attribute, its state, a heartbeat, a queued
    trial), made again as ``retrying`` does while the database does not answer. Optuna
    raises the same StorageInternalError for a commit whose connection dropped after the
    database kept it; so before each repeat ``landed`` re-reads the store (is the trial in
    that state, does the attribute hold that value?) and a write found there is not made
    again: no trial told twice, no "already finished". Without ``landed`` the write must be
    safe to repeat (a heartbeat, a re-read-and-queue)."""
    with contextlib.suppress(retry.Landed):
        retrying(call, retry_s, landed=landed)


def _heartbeats(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats, as the storage itself answers: an RDB storage
    opened by ``open_storage`` does, and so does the caching wrapper that a study loaded
    from it holds (its type is not RDBStorage); a journal file does not."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


def _record_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    """A trial's heartbeat, on a storage that records them (``_heartbeats``): RDB storages and
    the caching wrapper around them, which the type BaseStorage does not tell."""
    storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]


def _trial_id(storage: BaseStorage, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def storage_exists(url: str | None, run_dir: Path) -> bool:
    """Whether the suite's storage is there to read (a journal file, or any database URL)."""
    if url is None:
        return (run_dir / "optuna.journal").exists()
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).exists()
    return True
