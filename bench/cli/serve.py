"""The local web UIs of ``gradbench ui`` and ``gradbench dashboard``: ports, start, stop.

Each server (the MLflow UI, optuna-dashboard) runs in a process group of its own, so that
stopping it also stops every process it started. A default port in use is replaced by the
next free one, and said so; a link is printed only once its server answers. Any stop
signal (Ctrl-C, ``kill``, a closed terminal) stops them all.

``python -m bench.cli.serve dashboard RUN_DIR HOST PORT`` is optuna-dashboard's process (the
storage URL, if any, comes in ``GRADBENCH_DASHBOARD_STORAGE``: never on a command line,
where ``ps`` would show its password). No server is handed a secret on its command line:
the MLflow UI gets its store's URL in ``MLFLOW_BACKEND_STORE_URI``, and a PostgreSQL
password in ``PGPASSWORD`` (``store_environment``); a process's environment is readable by
its user alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import tuning
from bench.config import SuiteSpec, expand
from bench.errors import error_line, mask_secrets
from bench.links import study_tags

PORT_TRIES = 50
ANSWER_TIMEOUT_S = float(os.environ.get("GRADBENCH_UI_TIMEOUT_S", "120"))
STORAGE_ENV = "GRADBENCH_DASHBOARD_STORAGE"


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, port: int, taken: Collection[int] = ()) -> int:
    """``port``, or the next free one after it (those in ``taken`` are skipped too)."""
    for candidate in range(port, min(port + PORT_TRIES, 65536)):
        if candidate not in taken and port_free(host, candidate):
            return candidate
    raise RuntimeError(f"--port {port}: it and the {PORT_TRIES - 1} ports after it are in use "
                       f"on {host}")


@dataclass
class Server:
    """One UI: what it is, its command, where it answers, and its process once started."""

    name: str
    command: Sequence[str]  # "{port}" stands for the port picked
    host: str
    port: int
    probe: str  # a path that answers 200 once the server is ready
    link: str  # the page to print
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Any = None  # the server's output, kept aside unless --verbose (its error is read)

    def url(self, path: str) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{path}"

    def start(self) -> None:
        """Start the server in a process group of its own. Without ``--verbose`` its output
        (start-up lines, warnings, one line per request) goes to a temporary file, and
        Python's warnings are off in it: the command prints its links and errors only."""
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        env = dict(os.environ if self.env is None else self.env)
        if not os.environ.get("GRADBENCH_VERBOSE"):
            env.setdefault("PYTHONWARNINGS", "ignore")
            self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, env=env, start_new_session=True,
                                     stdout=self.log, stderr=self.log and subprocess.STDOUT)

    def stop(self) -> None:
        """Stop the server's process group; drop its kept output."""
        stop_group(self.proc)
        if self.log is not None:
            self.log.close()

    def last_words(self) -> str:
        """``: <the last line the server printed>`` (its error, passwords masked), when its
        output was kept aside; else nothing (it went to the terminal)."""
        if self.log is None:
            return ""
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").splitlines()
        said = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f": {mask_secrets(said)}" if said else ""

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url(self.probe), timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def pick_ports(servers: Sequence[Server]) -> None:
    """Give each server its port, or the next free one, and say when it moved."""
    taken: dict[int, str] = {}
    for server in servers:
        port = free_port(server.host, server.port, taken)
        if port != server.port:
            why = f"goes to the {taken[server.port]}" if server.port in taken else "is in use"
            print(f"port {server.port} {why}; the {server.name} takes port {port}", flush=True)
            server.port = port
        taken[port] = server.name


def run_servers(servers: Sequence[Server], on_ports: Callable[[], None] | None = None) -> int:
    """Start the servers, print each link once it answers, and wait for a stop signal.
    ``on_ports`` is called once every server has its port, before any starts.

    Returns 0 when stopped by a signal; 1 when a server ended on its own (its code said).
    """
    pick_ports(servers)
    if on_ports is not None:
        on_ports()
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)  # also a `kill`, a closed terminal, a background job
    try:
        for server in servers:
            server.start()
        for server in servers:
            _wait_until_answers(server)
            print(f"{server.name}: {server.url(server.link)}", flush=True)
        print("Ctrl-C stops " + ("it" if len(servers) == 1 else "them"), flush=True)
        while True:
            for server in servers:
                assert server.proc is not None
                if server.proc.poll() is not None:
                    print(f"gradbench: the {server.name} stopped (exit code "
                          f"{server.proc.returncode}){server.last_words()}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        for server in servers:
            server.stop()


def _wait_until_answers(server: Server) -> None:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while not server.answers():
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise RuntimeError(f"the {server.name} did not start (exit code "
                               f"{server.proc.returncode}){server.last_words()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {server.name} did not answer on "
                               f"{server.url(server.probe)} within {ANSWER_TIMEOUT_S:.0f} s")
        time.sleep(0.3)


def _interrupt(signum: int, frame: Any) -> None:
    """Any stop signal ends the command as Ctrl-C does, so that its servers stop with it."""
    raise KeyboardInterrupt


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server and every process it started (its own process group)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def dashboard_server(storage: str | None, run_dir: Path, host: str, port: int,
                     link: str = "/dashboard") -> Server:
    """optuna-dashboard on a suite's Optuna storage (its journal file, or ``storage``). A
    database storage is opened here first: one that refuses us (a missing password, say)
    is said in one line before any server starts."""
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
    if storage is not None:
        tuning.open_storage(storage, run_dir)  # raises StorageUnavailable, one line
        env[STORAGE_ENV] = storage
    command = [sys.executable, "-m", "bench.cli.serve", "dashboard", str(run_dir), host, "{port}"]
    return Server("optuna-dashboard", command, host, port, "/api/meta", link, env)


def mlflow_server(uri: str, host: str, port: int, link: str) -> Server:
    """The MLflow UI on a tracking store (one worker; no job execution). The store's URL
    goes in the server's environment, never on its command line (``store_environment``)."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", "{port}",
               "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           **store_environment(uri)}
    return Server("MLflow UI", command, host, port, "/health", link, env)


def store_environment(uri: str) -> dict[str, str]:
    """The environment that hands ``mlflow server`` its backend store ``uri`` without a
    command line (``MLFLOW_BACKEND_STORE_URI``, which it reads and passes on to its own
    workers the same way). A PostgreSQL password leaves the URL for ``PGPASSWORD``, which
    libpq reads: it then sits in no URL that MLflow might show. Another scheme's password
    stays in the URL, in the environment only, which its user alone can read."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None or not parts.scheme.startswith("postgresql"):
        return {"MLFLOW_BACKEND_STORE_URI": uri}
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    netloc = f"{user}@{parts.netloc.rpartition('@')[2]}"
    env = {"MLFLOW_BACKEND_STORE_URI": urllib.parse.urlunsplit(parts._replace(netloc=netloc))}
    if parts.password != "***":  # a masked (recorded) one: PGPASSWORD or ~/.pgpass, as set
        env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
    return env


def link_dashboard(spec: SuiteSpec, run_dir: Path, uri: str, dashboard: Server) -> None:
    """Point each parent run's link to its study (``links.study_tags``) at the dashboard's
    port: it was written with the default one, and ``ui`` may take another. A store that
    cannot be written leaves the old links, said in one line."""
    from bench.tracking import Tracker  # MLflow: only where the links are written

    try:
        storage = tuning.open_storage(spec.storage, run_dir)
        existing = tuning.study_names(storage)
        started = [c for c in expand(spec) if tuning.study_name(spec, c) in existing]
        found = tuning.dashboard_links(storage, spec, started, dashboard.url(""))
        Tracker(uri, spec.name, retry_s=5.0).tag_parents(
            {name: study_tags(*link) for name, link in found.items()})
    except Exception as err:  # the links are a convenience: the servers start anyway
        print(f"gradbench: the runs' links to optuna-dashboard were not updated "
              f"({mask_secrets(error_line(err))})", file=sys.stderr)


def _main(argv: Sequence[str]) -> int:
    """The dashboard's own process: ``dashboard RUN_DIR HOST PORT``."""
    _, run_dir, host, port = argv
    tuning.configure()
    with contextlib.suppress(KeyboardInterrupt):
        tuning.serve_dashboard(os.environ.get(STORAGE_ENV), Path(run_dir), host, int(port))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
