"""Faults on two machines sharing a suite: what finishes, what is lost or doubled, how fast.

Two ``gradbench run`` processes (one worker each, their own run directories) stand for two
machines sharing a suite through PostgreSQL (Optuna) and ``mlflow server`` (tracking), both
real servers on loopback (the test helpers in ``testkit/servers.py`` start them). In each
scenario one fault is injected once both machines train a trial:

- ``worker``: ``kill -9`` of A's worker process (A's command reports its worker died);
- ``command``: ``kill -9`` of A's ``gradbench run`` alone (its worker stops by itself);
- ``machine``: ``kill -9`` of A's whole process group (command and worker);
- ``tracking``: the MLflow server killed, restarted 5 s later on the same port;
- ``postgres``: the PostgreSQL server restarted (``pg_ctl restart -m fast``).

And one row without a fault, ``load`` (not in the default list): ``--machines`` commands
(default 4, one worker each) on a suite of short trials (``--load-steps``, default 200), one
PostgreSQL and one MLflow server, all on loopback; it prints runs per minute, the claim
latency (a worker's tell to the start of its next trial: recording, ranking, claiming;
median and p99), and the runs lost, doubled and stuck RUNNING at the end. A load on the
machine it runs on, for regressions: not the servers' capacity.

And two rows that damage a machine's own stores (one command, one worker, the embedded
Optuna journal and MLflow SQLite in its run directory; no server needed):

- ``torn``: once 3 runs have finished, ``kill -9`` of the command (a power loss), then the
  journal's last record cut in half, as a write cut short leaves it; the same command
  resumes. It prints whether the suite finished, the runs lost and doubled, whether the
  repair's warning line was printed and the original journal kept beside it;
- ``disk``: the runs directory on a 3 MB tmpfs, 1.9 MB of it taken by a filler file, so
  the run fills it; the command's exit status and its one error line; then the filler is
  deleted and the tmpfs remounted at 64 MB, and the same command resumes: runs finished,
  lost, doubled and stuck RUNNING. Skipped, with the reason, where mounting is not allowed
  (it needs root).

For each: runs finished (complete trials and final seeds in Optuna, against the suite's
budget), lost (missing at the end), doubled (a trial or seed recorded FINISHED twice in
MLflow, or more complete runs than the budget), the seconds from the fault to the next
completed run, and each machine's exit status (A first). Heartbeats every 1 s, stale after
8 s (``GRADBENCH_HEARTBEAT_S`` / ``GRADBENCH_GRACE_S``) to keep the scenarios short.

Usage (from the repository root; PostgreSQL 15 binaries as in scripts/system-deps.sh):
    python benchmarks/chaos.py                       # every scenario
    python benchmarks/chaos.py --scenarios worker,postgres --steps 1500
    python benchmarks/chaos.py --scenarios load --machines 4
    python benchmarks/chaos.py --scenarios torn,disk --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testkit/

from testkit.servers import MlflowServer, as_postgres, create_database, postgres_server  # noqa: E402

SCENARIOS = ("worker", "command", "machine", "tracking", "postgres")  # the default list
DAMAGE = ("torn", "disk")  # one machine on its embedded stores: no server
ENV = {"GRADBENCH_HEARTBEAT_S": "1", "GRADBENCH_GRACE_S": "8"}


def suite(steps: int) -> dict:
    return {
        "name": "chaos", "device": "cpu",
        "tasks": {"adding": {"seq_len": [8], "val_size": 64, "test_size": 64}},
        "models": ["rnn", "gru"], "regularization": ["none"], "clipping": ["norm"],
        "model": {"hidden_size": 8},
        "training": {"steps": steps, "batch_size": 16, "eval_every": steps // 2},
        "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
                   "clip": {"low": 0.5, "high": 5.0, "log": True}},
        "tuning": {"trials": 3, "sampler": "tpe", "pruner": "none"},
        "final": {"seeds": 2}, "diagnostics": {"probe_every": steps},
    }


def load_suite(steps: int) -> dict:
    """Short trials, many of them: 4 configurations x (8 trials + 2 seeds) = 40 runs."""
    spec = suite(steps)
    spec["name"] = "load"
    spec["tasks"]["adding"]["seq_len"] = [8, 16]
    spec["tuning"]["trials"] = 8
    spec["training"]["eval_every"] = max(1, steps // 4)
    return spec


class Scenario:
    """Two machines on a fresh database and tracking server; one fault."""

    def __init__(self, root: Path, pg: str, config: Path, spec: dict) -> None:
        self.root, self.pg, self.config, self.spec = root, pg, config, spec
        self.url = create_database(pg, f"chaos_{root.name}")
        self.server = MlflowServer(root / "mlflow").start()
        self.procs: list[subprocess.Popen] = []

    @property
    def tracking(self) -> str:
        return self.server.url

    def start(self, name: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "bench", "run", str(self.config), "--runs-dir",
               str(self.root / name), "--storage", self.url, "--tracking-uri", self.server.url]
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed by the process end
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **ENV})
        self.procs.append(proc)
        return proc

    def outcomes(self) -> dict[tuple[str, int], str]:
        from bench import tuning

        try:
            return tuning.trial_ends(tuning.open_storage(self.url, self.root))[0]
        except Exception:  # the database is restarting
            return {}

    def complete(self) -> int:
        return sum(1 for v in self.outcomes().values() if v == "complete")

    def running_worker_of(self, proc: subprocess.Popen) -> int | None:
        """The pid of a worker of ``proc`` that is training a trial now."""
        import optuna

        storage = optuna.storages.RDBStorage(self.url)
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for t in study.get_trials(deepcopy=False,
                                      states=(optuna.trial.TrialState.RUNNING,)):
                pid = int(str(t.user_attrs.get("worker", "x:0")).split(":")[1])
                if pid and _pgid(pid) == proc.pid:
                    return pid
        return None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.server.stop()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def inject(kind: str, s: Scenario, a: subprocess.Popen, worker: int) -> None:
    if kind == "worker":
        os.kill(worker, signal.SIGKILL)
    elif kind == "command":
        os.kill(a.pid, signal.SIGKILL)
    elif kind == "machine":
        os.killpg(a.pid, signal.SIGKILL)
    elif kind == "tracking":
        s.server.stop()
        time.sleep(5)
        s.server.start()
    elif kind == "postgres":
        data = Path(s.pg_data)
        bindir = Path(s.pg_bin)
        subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                    "-l", str(data / "server.log"), "-w", "restart"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_scenario(kind: str, pg: str, pg_data: str, pg_bin: str, steps: int,
                 root: Path) -> dict:
    spec = suite(steps)
    config = root / "chaos.yaml"
    config.write_text(yaml.safe_dump(spec))
    s = Scenario(root, pg, config, spec)
    s.pg_data, s.pg_bin = pg_data, pg_bin  # type: ignore[attr-defined]
    expected = len(spec["models"]) * (spec["tuning"]["trials"] + spec["final"]["seeds"])
    try:
        a = s.start("a")
        deadline = time.monotonic() + 180
        worker = None
        while worker is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind}: machine A never trained a trial")
            time.sleep(0.3)
            worker = s.running_worker_of(a)
        b = s.start("b")
        while s.running_worker_of(b) is None:  # B has joined and trains too
            if time.monotonic() > deadline + 120 or b.poll() is not None:
                raise RuntimeError(f"{kind}: machine B never trained a trial")
            time.sleep(0.3)
        worker = s.running_worker_of(a) or worker
        before = s.complete()
        fault = time.monotonic()
        inject(kind, s, a, worker)
        recovered = None
        while any(p.poll() is None for p in (a, b)):
            if recovered is None and s.complete() > before:
                recovered = time.monotonic() - fault
            if time.monotonic() - fault > 900:
                break
            time.sleep(0.5)
        if recovered is None and s.complete() > before:
            recovered = time.monotonic() - fault
        return {"scenario": kind, **count(s, expected), "recover_s": recovered,
                "exit": f"{a.poll()}/{b.poll()}"}
    finally:
        s.stop()


def run_load(pg: str, steps: int, machines: int, root: Path) -> dict:
    """``machines`` commands of one worker each on one suite, no fault: how fast, how the
    claims wait, and whether anything is lost, doubled or left RUNNING."""
    spec = load_suite(steps)
    config = root / "load.yaml"
    config.write_text(yaml.safe_dump(spec))
    s = Scenario(root, pg, config, spec)
    expected = 4 * (spec["tuning"]["trials"] + spec["final"]["seeds"])
    try:
        procs = [s.start(f"m{i}") for i in range(machines)]
        deadline = time.monotonic() + 1200
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(1)
        return {"scenario": f"load x{machines}", **count(s, expected), **_pace(s),
                "exit": "/".join(str(p.poll()) for p in procs)}
    finally:
        s.stop()


def _said(errors: list[str], traces: int) -> str:
    """The command's error lines, and the tracebacks printed besides them."""
    text = "; ".join(f"`{line}`" for line in errors) or "no error line"
    return text + (f" (and {traces} traceback(s) before it)" if traces else "")


class Local:
    """One machine on its embedded stores: the Optuna journal and MLflow's SQLite in the run
    directory ``runs/<name>``; its commands' output goes to ``<root>/<name>.log``."""

    def __init__(self, root: Path, runs: Path, steps: int) -> None:
        self.root, self.runs, self.spec = root, runs, suite(steps)
        self.config = root / "chaos.yaml"
        self.config.write_text(yaml.safe_dump(self.spec))
        self.run_dir = runs / self.spec["name"]
        self.tracking = f"sqlite:///{self.run_dir / 'mlflow.db'}"
        self.expected = len(self.spec["models"]) * (self.spec["tuning"]["trials"]
                                                    + self.spec["final"]["seeds"])

    def start(self, name: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "bench", "run", str(self.config), "--runs-dir",
               str(self.runs)]
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed by the process end
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **ENV})

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def outcomes(self) -> dict[tuple[str, int], str]:
        from bench import tuning

        if not (self.run_dir / "optuna.journal").exists():
            return {}
        try:
            return tuning.trial_ends(tuning.open_storage(None, self.run_dir))[0]
        except Exception:  # a record being written
            return {}

    def complete(self) -> int:
        return sum(1 for v in self.outcomes().values() if v == "complete")

    def resume(self, since: float) -> tuple[subprocess.Popen, float | None]:
        """The same command again, to its end; with the seconds from ``since`` (the fault
        mended) to the first run it finishes."""
        before, proc, recovered = self.complete(), self.start("resume"), None
        while proc.poll() is None and time.monotonic() - since < 900:
            if recovered is None and self.complete() > before:
                recovered = time.monotonic() - since
            time.sleep(0.5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if recovered is None and self.complete() > before:
            recovered = time.monotonic() - since
        return proc, recovered


def run_torn(steps: int, root: Path) -> dict:
    """A power loss mid-write: the command killed, the journal's last record cut in half;
    then the same command resumes."""
    m = Local(root, root / "runs", steps)
    first = m.start("first")
    deadline = time.monotonic() + 600
    while m.complete() < 3 and first.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if first.poll() is None:
        os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    journal = m.run_dir / "optuna.journal"
    data = journal.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # the last record
    journal.write_bytes(data[: start + (len(data) - start) // 2])
    resume, recovered = m.resume(time.monotonic())
    said = [line for line in m.log("resume").splitlines() if "ended in an unfinished" in line]
    backups = list(m.run_dir.glob("optuna.journal.torn-*"))
    return {"scenario": "torn", **count(m, m.expected), "recover_s": recovered,
            "exit": f"{first.returncode}/{resume.returncode}",
            "seen": ("warning line" if len(said) == 1 else f"{len(said)} warning lines")
            + (", backup kept" if backups else ", no backup")}


def run_disk(steps: int, root: Path) -> dict:
    """The runs directory on a 3 MB tmpfs that the run fills; space freed, then resumed."""
    m = Local(root, root / "runs", steps)
    m.runs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(m.runs)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        return {"scenario": "disk", "skipped": "cannot mount a small file system here: "
                + (mounted.stderr.strip() or f"mount exited {mounted.returncode}")}
    try:
        filler = m.runs / "filler"
        filler.write_bytes(b"\0" * 1_900_000)
        first = m.start("first")
        first.wait(timeout=900)
        said = m.log("first")
        errors = [line.strip() for line in said.splitlines()
                  if line.startswith(("error:", "gradbench: error:"))]
        traces = said.count("Traceback (most recent call last)")
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(m.runs)], check=True)
        resume, recovered = m.resume(time.monotonic())
        return {"scenario": "disk", **count(m, m.expected), "recover_s": recovered,
                "exit": f"{first.returncode}/{resume.returncode}",
                "seen": _said(errors, traces)}
    finally:
        subprocess.run(["umount", "-l", str(m.runs)], check=False)


def _pace(s: Scenario) -> dict:
    """Runs per minute (first start to last end), the claim latency (median, p99) and the
    trials left RUNNING, from the storage."""
    import optuna

    from bench import tuning

    storage = tuning.open_storage(s.url, s.root)
    trials = [t for name in tuning.study_names(storage)
              for t in optuna.load_study(study_name=name, storage=storage).get_trials()]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done))
    by_worker: dict[str, list] = {}
    for t in trials:
        if t.datetime_start and t.datetime_complete and "worker" in t.user_attrs:
            by_worker.setdefault(t.user_attrs["worker"], []).append(t)
    waits = [(after.datetime_start - before.datetime_complete).total_seconds()
             for runs in by_worker.values()
             for before, after in itertools.pairwise(sorted(runs, key=lambda t: t.datetime_start))]
    return {"runs_per_min": len(done) / (span.total_seconds() / 60),
            "claim_median_s": statistics.median(waits),
            "claim_p99_s": statistics.quantiles(waits, n=100)[98] if len(waits) > 1
            else waits[0],
            "stuck_running": sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)}


def count(s: Scenario | Local, expected: int) -> dict:
    from mlflow import MlflowClient

    outcomes = s.outcomes()
    finished = sum(1 for v in outcomes.values() if v == "complete")
    client = MlflowClient(s.tracking)
    experiment = client.get_experiment_by_name(s.spec["name"])
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=1000) if experiment else []
    keys = [(r.data.tags.get("study"), r.data.tags.get("trial_number")) for r in runs
            if r.data.tags.get("role") in ("trial", "final")]
    doubled = (len(keys) - len(set(keys))) + max(0, finished - expected)
    return {"finished": f"{finished}/{expected}", "lost": max(0, expected - finished),
            "doubled": doubled,
            "stuck_running": sum(1 for v in outcomes.values() if v == "running")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma separated, of {', '.join((*SCENARIOS, 'load', *DAMAGE))} "
                        "(default: the first five)")
    parser.add_argument("--steps", type=int, default=1500, help="steps per run (default 1500)")
    parser.add_argument("--machines", type=int, default=4,
                        help="commands of one worker each in the load row (default 4)")
    parser.add_argument("--load-steps", type=int, default=200,
                        help="steps per run in the load row (default 200)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each scenario this many times (default 1)")
    args = parser.parse_args()
    from bench import tuning

    tuning.configure()
    kinds = [k for k in args.scenarios.split(",") for _ in range(args.repeat)]
    rows: dict[str, list[dict]] = {"fault": [], "load": [], "damage": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        pg = (stack.enter_context(postgres_server())
              if any(k not in DAMAGE for k in kinds) else "")
        for n, kind in enumerate(kinds):
            started = time.perf_counter()
            table, row = _run_one(kind, args, pg, tmp / f"{kind}{n}")
            row["wall_s"] = time.perf_counter() - started
            rows[table].append(row)
            print(_line(row), flush=True)
    _tables(rows["fault"], rows["load"])
    _damage_table(rows["damage"])


def _run_one(kind: str, args: argparse.Namespace, pg: str, root: Path) -> tuple[str, dict]:
    """Which table the scenario's row goes to, and the row."""
    root.mkdir()
    if kind == "torn":
        return "damage", run_torn(args.steps, root)
    if kind == "disk":
        return "damage", run_disk(args.steps, root)
    if kind == "load":
        return "load", run_load(pg, args.load_steps, args.machines, root)
    from testkit.servers import postgres_bin

    return "fault", run_scenario(kind, pg, _cluster_dir(pg), str(postgres_bin()), args.steps,
                                 root)


def _tables(rows: list[dict], loads: list[dict]) -> None:
    print()
    if loads:
        print("| load | runs finished | runs/min | claim median | claim p99 | lost | doubled "
              "| stuck RUNNING | exit |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in loads:
            print(f"| {r['scenario']} | {r['finished']} | {r['runs_per_min']:.1f} | "
                  f"{r['claim_median_s']:.2f} s | {r['claim_p99_s']:.2f} s | {r['lost']} | "
                  f"{r['doubled']} | {r['stuck_running']} | {r['exit']} |")
        print()
    if not rows:
        return
    print("| fault | runs finished | lost | doubled | to the next finished run | exit A/B |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        recover = "-" if r["recover_s"] is None else f"{r['recover_s']:.0f} s"
        print(f"| {r['scenario']} | {r['finished']} | {r['lost']} | {r['doubled']} | "
              f"{recover} | {r['exit']} |")


def _damage_table(rows: list[dict]) -> None:
    if not rows:
        return
    print()
    print("| damage | runs finished | lost | doubled | stuck RUNNING | to the next finished run "
          "| exit first/resume | seen |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['scenario']} | skipped: {r['skipped']} | | | | | | |")
            continue
        recover = "-" if r["recover_s"] is None else f"{r['recover_s']:.0f} s"
        print(f"| {r['scenario']} | {r['finished']} | {r['lost']} | {r['doubled']} | "
              f"{r['stuck_running']} | {recover} | {r['exit']} | {r['seen']} |")


def _cluster_dir(server: str) -> str:
    """The data directory of the cluster ``postgres_server`` started (its socket lives there)."""
    port = server.split(":")[1]
    found = sorted(Path(tempfile.gettempdir()).glob("gradbench-pg-*/data"),
                   key=lambda p: p.stat().st_mtime)
    for data in reversed(found):
        opts = (data / "postmaster.opts").read_text()
        if f"-p {port}" in opts or f'"{port}"' in opts:
            return str(data)
    raise RuntimeError("cannot find the PostgreSQL data directory")


def _line(row: dict) -> str:
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items())


if __name__ == "__main__":
    main()
