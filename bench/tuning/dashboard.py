"""optuna-dashboard: the page of a study, the links to the pages of a suite's studies, and
the server on a suite's storage (``gradbench dashboard``, ``gradbench ui``), which lists the
tuning studies only (``TuningStudies``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from optuna.storages import BaseStorage

from bench.config import Configuration, SuiteSpec
from bench.tuning.storage import open_storage
from bench.tuning.studies import study_name

if TYPE_CHECKING:  # an annotation only
    from optuna.study._frozen import FrozenStudy


def dashboard_path(storage: BaseStorage, study: str) -> str:
    """The path of a study's page on optuna-dashboard (``/dashboard/studies/<id>``)."""
    return f"/dashboard/studies/{storage.get_study_id_from_name(study)}"


def dashboard_links(storage: BaseStorage, spec: SuiteSpec,
                    configurations: Sequence[Configuration], base: str
                    ) -> dict[str, tuple[str, str]]:
    """Configuration -> (its tuning study, the study's page on optuna-dashboard at ``base``)."""
    out = {}
    for configuration in configurations:
        name = study_name(spec, configuration)
        out[configuration.name] = (name, base + dashboard_path(storage, name))
    return out


class TuningStudies(BaseStorage):
    """A suite's storage as its optuna-dashboard lists it: the tuning studies, without the
    final seeds' (``<study>/final``), whose "best trial" would be a seed. Nothing else
    changes: the studies are where they were (a run directory made before reads as ever),
    each call goes to the storage, and a final study's trials stay there for ``status``
    and the report; only its page leaves the dashboard's list."""

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage

    def get_all_studies(self) -> list[FrozenStudy]:
        return [s for s in self.storage.get_all_studies() if not _final(s)]


def _final(study: FrozenStudy) -> bool:
    """A final seeds' study: its role, or its name where it was made before roles."""
    return study.user_attrs.get("role") == "final" or study.study_name.endswith("/final")


def _passed_on(name: str) -> Any:
    def call(self: TuningStudies, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.storage, name)(*args, **kwargs)

    call.__name__ = name
    return call


for _name in BaseStorage.__abstractmethods__ - {"get_all_studies"}:
    setattr(TuningStudies, _name, _passed_on(_name))
TuningStudies.__abstractmethods__ = frozenset()


def serve_dashboard(url: str | None, run_dir: Path, host: str, port: int) -> None:
    """Serve optuna-dashboard on the suite's storage until the process is stopped.

    The storage object is built here (``open_storage``) and handed to the dashboard's WSGI
    app, as its tuning studies (``TuningStudies``): the dashboard's own loader for journal
    files builds the backend with a lock of its own (``JournalFileOpenLock``), not the one
    the workers use, and takes no RDB heartbeats.
    """
    # Here, not at the top: optuna-dashboard takes seconds to import, and only the
    # dashboard's own process needs it.
    from optuna_dashboard import wsgi

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # one line per request would drown the links the command printed

    app = wsgi(TuningStudies(open_storage(url, run_dir)))  # type: ignore[abstract]
    with make_server(host, port, app, handler_class=Quiet) as server:
        server.serve_forever()
