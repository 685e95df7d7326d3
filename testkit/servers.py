"""Real servers for the tests and benchmarks: a PostgreSQL cluster and an MLflow tracking
server.

Both run on free loopback ports in their own temporary directories and are stopped by PID
(PostgreSQL with ``pg_ctl stop``, MLflow by killing its process group). A port found free
can be taken before the server binds it: each then starts again on another port.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

_HANDED_OUT: set[int] = set()
PORT_TRIES = 5  # a server whose port was taken meanwhile starts again on another


def free_port() -> int:
    """A loopback port free now, never one this process handed out before. The socket that
    found it is closed (a server cannot take an inherited socket), so another process may
    take the port before the server binds it: the servers here start again on another port
    when that happens (``port_taken``)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_taken(log: str) -> bool:
    """Whether a server's log says it could not bind its port (PostgreSQL, uvicorn and
    gunicorn all say "Address already in use", in some case)."""
    return "address already in use" in log.lower()


def postgres_bin() -> Path | None:
    """Directory of initdb / pg_ctl (Debian: /usr/lib/postgresql/<v>/bin), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server(password: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free port; yields the server's base URL. Every
    connection is trusted, or with ``password`` must give it (scram-sha-256, user
    ``postgres``)."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="gradbench-pg-"))
    data = root / "data"
    auth = ["-A", "trust"]
    if password is not None:
        (root / "password").write_text(password)
        auth = ["-A", "scram-sha-256", f"--pwfile={root / 'password'}"]
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        for path in (root, *root.iterdir()):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(as_postgres([str(bindir / "initdb"), "-D", str(data), *auth,
                                "-U", "postgres"]), check=True, capture_output=True)
    port = _start_postgres(bindir, data)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                    "-w", "stop"]), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _start_postgres(bindir: Path, data: Path) -> int:
    """Start the cluster in ``data`` on a free port, another one when that port was taken
    between finding it and binding it; returns the port."""
    log = data / "server.log"
    for _ in range(PORT_TRIES):
        port = free_port()
        seen = log.stat().st_size if log.exists() else 0
        # one server serves every test of a test process: several machines' workers, their
        # MLflow servers' pools and the tests' own storages (100, the default, ran out)
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=300"
        started = subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o",
                                              options, "-l", str(log), "-w", "start"]),
                                 capture_output=True, text=True)
        if started.returncode == 0:
            return port
        said = log.read_text(errors="replace")[seen:] if log.exists() else ""
        if not port_taken(said):
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}{said[-2000:]}")
    raise RuntimeError(f"PostgreSQL found its port taken {PORT_TRIES} times")


def create_database(server: str, name: str) -> str:
    """A new database on ``server``; returns its SQLAlchemy URL (with a dummy password)."""
    import psycopg2

    host, port = server.split(":")
    conn = psycopg2.connect(host=host, port=int(port), user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    # Trust authentication ignores the password; it is there to check that it is masked.
    return f"postgresql+psycopg2://postgres:s3cret-pw@{server}/{name}"


class MlflowServer:
    """``mlflow server`` on a SQLite store in ``root``, in its own process group."""

    def __init__(self, root: Path, port: int | None = None, *, backend: str | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.port = port or free_port()
        # A port of our choosing moves when taken, until the server first answers; after
        # that (a restart) and when given, clients know it, and it stays.
        self.movable = port is None
        self.backend = backend  # a database URL; default: SQLite in root
        self.extra = extra  # more `mlflow server` options (--allowed-hosts ...)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MlflowServer:
        """Start the server and wait until it answers; on a port of our choosing that was
        taken meanwhile, start it again on another."""
        for _ in range(PORT_TRIES):
            if self._start_once(timeout):
                self.movable = False
                return self
            self.port = free_port()
        raise RuntimeError(f"mlflow server found its port taken {PORT_TRIES} times")

    def _start_once(self, timeout: float) -> bool:
        """True once the server answers; False when its port was taken and may move."""
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", self.backend or f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", str(self.root / "artifacts"), *self.extra]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log_path = self.root / "server.log"
        seen = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = log_path.read_text(errors="replace")[seen:]
                self.proc = None
                if self.movable and port_taken(said):
                    return False
                raise RuntimeError(f"mlflow server exited: {said[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200 and self.proc.poll() is None:
                        return True
            except OSError as err:  # not listening yet
                last = err
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url}/health within "
                           f"{timeout:.0f} s (last error: {last})")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # workers it left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
