"""The MLflow boundary: only ``bench.tracking`` imports mlflow (and loads it on first use),
nothing is set at import, the read side hands out plain records, and a suite's store is
resolved in one place."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import tracking

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p for package in ("bench", "tasks") for p in (ROOT / package).rglob("*.py"))


def _imports_mlflow(path: Path) -> list[int]:
    """Lines of ``path`` that import mlflow or one of its modules, at any depth."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(ROOT).as_posix() for p in MODULES])
def test_only_tracking_imports_mlflow(path: Path) -> None:
    lines = _imports_mlflow(path)
    if path.parent == ROOT / "bench" / "tracking" and path.stem in ("store", "writer", "reader"):
        assert lines, f"bench.tracking.{path.stem} is where mlflow is imported"
    elif path.parent != ROOT / "bench" / "tracking":
        assert lines == [], f"{path.relative_to(ROOT)} imports mlflow at line(s) {lines}"


def test_names_and_analysis_load_no_mlflow() -> None:
    """The names of metrics and artifacts, and the report's pure analysis, load no MLflow;
    neither does ``bench.tracking`` itself, until a name of its MLflow side is used."""
    code = (
        "import sys\n"
        "import bench.names, bench.report.analysis\n"
        "assert 'mlflow' not in sys.modules, 'bench.names or bench.report.analysis'\n"
        "import bench.tracking\n"
        "assert 'mlflow' not in sys.modules, 'bench.tracking'\n"
        "from bench.tracking import Tracker, RunReader\n"
        "assert 'mlflow' in sys.modules\n"
        "import bench.tracking.writer as writer\n"
        "assert Tracker is writer.Tracker\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_every_name_of_the_package_is_there() -> None:
    """``__all__`` names what callers use; the names of its MLflow side arrive on use."""
    for name in tracking.__all__:
        assert getattr(tracking, name) is not None, name
    assert tracking.STEPS_TABLE == "curves.csv" and tracking.RETRY_S > 0
    with pytest.raises(AttributeError, match="no attribute 'Trackr'"):
        tracking.Trackr  # type: ignore[attr-defined]  # noqa: B018


def test_the_check_sees_imports_at_any_depth(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from mlflow.entities import Metric\n"
                      "    import mlflow.store.tracking.sqlalchemy_store\n")
    assert _imports_mlflow(source) == [4, 5]


def test_importing_sets_nothing() -> None:
    """Environment, loggers and the plotting theme are set by the set-up calls only."""
    code = (
        "import logging, os, sys\n"
        "import matplotlib\n"
        "grid = matplotlib.rcParams['axes.grid']\n"
        "import bench.tracking, bench.report.results, bench.report, bench.report.plots\n"
        "assert 'MLFLOW_HTTP_REQUEST_MAX_RETRIES' not in os.environ\n"
        "assert 'MLFLOW_HTTP_REQUEST_TIMEOUT' not in os.environ\n"
        "assert logging.getLogger('mlflow').level < logging.WARNING\n"
        "assert matplotlib.rcParams['axes.grid'] == grid\n"
        "bench.tracking.configure(); bench.tracking.configure()\n"
        "assert os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES'] == '0'\n"
        "assert os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] == '20'\n"
        "assert logging.getLogger('mlflow').level == logging.WARNING\n"
        "bench.report.plots.configure(); bench.report.plots.configure()\n"
        "assert matplotlib.get_backend().lower() == 'agg'\n"
        "assert matplotlib.rcParams['axes.grid']\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_HTTP_REQUEST", "MLFLOW_LOGGING", "GRADBENCH_VERBOSE"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_configure_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    tracking.configure()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


def test_resolve_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = tracking.default_tracking_uri(tmp_path)
    assert tracking.resolve_uri(None, tmp_path) == default
    assert default == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.resolve_uri(None, tmp_path) == "http://tracking:5000"
    assert tracking.resolve_uri("sqlite:////x.db", tmp_path) == "sqlite:////x.db"


def test_runs_read_back_as_plain_records(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    writer = tracking.Tracker(uri, "suite", run_dir=tmp_path)
    parent = writer.parent_run("adding-T8/rnn/none/none", {"task": "adding", "model": "rnn"})
    child = writer.start_run(parent, "final-0", {"role": "final", "seed": "1000"})
    writer.log_run(child, params={"lr": 0.01}, tags={"state": "complete"},
                   metrics=[(tracking.VAL_LOSS, 0.5, 10), (tracking.VAL_LOSS, 0.25, 20)],
                   files={tracking.PROFILES_TABLE: "step,t,norm\n0,1,0.5\n"})
    writer.end_run(child)

    reader = tracking.RunReader(uri, "suite")
    assert reader.experiment_id == tracking.find_experiment_id(uri, "suite")
    records = {r.name: r for r in reader.runs()}
    run = records["final-0"]
    assert isinstance(run, tracking.RunRecord)
    assert run.parent_id == parent and run.status == "FINISHED"
    assert run.tags["role"] == "final" and run.params["lr"] == "0.01"
    assert run.metrics[tracking.VAL_LOSS] == 0.25  # the latest value
    assert records["adding-T8/rnn/none/none"].tags["role"] == "configuration"
    assert reader.metric_history(child, tracking.VAL_LOSS) == [(10, 0.5), (20, 0.25)]
    assert reader.text(child, tracking.PROFILES_TABLE) == "step,t,norm\n0,1,0.5\n"
    assert reader.text(child, tracking.CONFUSION_TABLE) is None
    assert writer.load_table(child, tracking.PROFILES_TABLE) == [
        {"step": "0", "t": "1", "norm": "0.5"}]


def test_reading_creates_nothing(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tracking store"):
        tracking.RunReader(uri, "suite")
    assert not (tmp_path / "mlflow.db").exists()
    tracking.Tracker(uri, "other", run_dir=tmp_path).experiment_id  # noqa: B018
    with pytest.raises(FileNotFoundError, match="no MLflow experiment 'suite'"):
        tracking.RunReader(uri, "suite")
    assert tracking.find_experiment_id(uri, "suite") is None


def test_metric_keys_are_namespace_slash_name() -> None:
    assert tracking.metric_key("test", "mse") == "test/mse"


def _written(tracker: tracking.Tracker, parent: str, i: int) -> tuple[str, object]:
    """A nested run and the write that records it and ends it."""
    run_id = tracker.start_run(parent, f"trial-{i}", {"trial_number": str(i)})

    def write() -> None:
        tracker.log_run(run_id, params={"lr": 0.1 * i}, tags={"state": "complete"},
                        metrics=[("train/loss", float(s), s) for s in range(1500)],
                        files={tracking.STEPS_TABLE: "step,train_loss\n0,1.0\n"})
        tracker.end_run(run_id, "FINISHED")

    return run_id, write


def test_background_writer_records_every_run(tmp_path: Path) -> None:
    """Runs handed to the writer are all written (params, every metric point, artifacts,
    their end), and at most one is in flight when ``submit`` returns."""
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "writer",
                               run_dir=tmp_path)
    parent = tracker.parent_run("c", {})
    writer = tracking.BackgroundWriter(synchronous=False)
    ids = []
    for i in range(4):
        run_id, write = _written(tracker, parent, i)
        writer.submit(write)
        assert writer._queue.unfinished_tasks <= 1
        ids.append(run_id)
    writer.close()
    reader = tracking.RunReader(tracker.uri, "writer")
    runs = {r.run_id: r for r in reader.runs()}
    for i, run_id in enumerate(ids):
        assert runs[run_id].status == "FINISHED"
        assert runs[run_id].params["lr"] == str(0.1 * i)
        assert len(reader.metric_history(run_id, "train/loss")) == 1500
        assert reader.text(run_id, tracking.STEPS_TABLE) == "step,train_loss\n0,1.0\n"


@pytest.mark.parametrize("synchronous", [False, True])
def test_background_writer_raises_what_writing_raised(tmp_path: Path,
                                                      synchronous: bool) -> None:
    """A store that does not answer: the tracker's retries end in TrackingUnavailable, which
    the next ``submit`` (or ``flush``) raises in the caller's thread; nothing is dropped
    silently, and the writer works again afterwards."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once out of this block: nothing listens there
    down = tracking.Tracker(f"http://127.0.0.1:{port}", "writer", retry_s=1.0)
    writer = tracking.BackgroundWriter(synchronous=synchronous)
    write = lambda: down.end_run("0" * 32, "FINISHED")  # noqa: E731
    if synchronous:
        with pytest.raises(tracking.TrackingUnavailable, match="unreachable"):
            writer.submit(write)
    else:
        writer.submit(write)  # returns at once: the thread meets the error
        with pytest.raises(tracking.TrackingUnavailable, match="unreachable"):
            writer.submit(lambda: None)
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "writer",
                               run_dir=tmp_path)
    run_id, good = _written(tracker, tracker.parent_run("c", {}), 0)
    writer.submit(good)
    writer.close()
    assert tracker.run_status(run_id) == "FINISHED"


def test_background_writer_raises_at_close(tmp_path: Path) -> None:
    writer = tracking.BackgroundWriter(synchronous=False)

    def broken() -> None:
        raise RuntimeError("disk full, say")

    writer.submit(broken)
    with pytest.raises(RuntimeError, match="disk full"):
        writer.close()


def test_spooled_records_of_a_dead_process_are_written_on_resume(tmp_path: Path) -> None:
    """What a killed worker kept but had not sent: written by ``replay_spooled`` in the
    order kept; a run whose first batch had landed gets no metric point twice; a run that
    recovery had ended as incomplete loses that tag; a live process's spool is left alone;
    a file that cannot be read, or whose run is not in the store, stays, named in a
    warning."""
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "spool",
                               run_dir=tmp_path)
    parent = tracker.parent_run("c", {})

    def records(i: int) -> tracking.RunRecords:
        run_id = tracker.start_run(parent, f"trial-{i}", {"trial_number": str(i)})
        return tracking.RunRecords(run_id, {"lr": 0.1 * (i + 1)}, {"state": "complete"},
                                   [("train/loss", float(s), s) for s in range(20)],
                                   {tracking.STEPS_TABLE: f"step\n{i}\n"}, "FINISHED")

    fresh, landed, repaired, live = (records(i) for i in range(4))
    tracker.log_run(landed.run_id, params=landed.params, tags={}, metrics=landed.metrics,
                    files={})  # the first batch landed, then the kill
    tracker.set_tags(repaired.run_id, {"tracking": "incomplete"})
    tracker.end_run(repaired.run_id, "FINISHED")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    spool = tracking.Spool(tmp_path)
    spool.folder = tmp_path / "spool" / str(dead.pid)
    for kept in (fresh, landed, repaired):
        spool.keep(kept)
    (spool.folder / "00000009-broken.json").write_text("{not json")
    gone = tracking.RunRecords("f" * 32, {}, {}, [], {}, "FINISHED")  # no such run
    (spool.folder / "00000010-gone.json").write_text(gone.to_json())
    tracking.Spool(tmp_path).keep(live)  # this process's own: alive

    assert tracking.replay_spooled(tmp_path, tracker) == 3
    reader = tracking.RunReader(tracker.uri, "spool")
    runs = {r.run_id: r for r in reader.runs()}
    for kept in (fresh, landed, repaired):
        run = runs[kept.run_id]
        assert run.status == "FINISHED" and "tracking" not in run.tags, kept.run_id
        assert run.params["lr"] == str(kept.params["lr"]) and run.tags["state"] == "complete"
        assert len(reader.metric_history(kept.run_id, "train/loss")) == 20
        assert reader.text(kept.run_id, tracking.STEPS_TABLE) == kept.files[tracking.STEPS_TABLE]
    assert runs[live.run_id].status == "RUNNING"
    assert sorted(p.name for p in spool.folder.iterdir()) == ["00000009-broken.json",
                                                              "00000010-gone.json"]
    assert len(list((tmp_path / "spool" / str(os.getpid())).glob("*.json"))) == 1


def test_a_sender_with_a_backlog_waits_only_when_it_is_full() -> None:
    """``backlog=3``: three runs may wait for the store; the fourth hand-over waits for the
    first; everything is written in the order handed over, ``follows`` writes included."""
    import threading
    import time

    gate, done = threading.Event(), []
    writer = tracking.BackgroundWriter(synchronous=False, backlog=3)
    for i in range(3):  # a hand-over that waited would find the gate shut until 60 s
        writer.submit(lambda i=i: (gate.wait(60), done.append(i)))
    writer.submit(lambda: done.append("parent"), follows=True)
    assert done == []  # every hand-over returned, none written: none waited
    before = writer.waited_s
    timed: list[float] = []

    def fourth() -> None:
        timed.append(time.perf_counter())
        writer.submit(lambda: done.append(3))
        timed.append(time.perf_counter())

    sender = threading.Thread(target=fourth)
    sender.start()
    sender.join(0.3)
    assert sender.is_alive() and done == []  # waits for the first slot
    gate.set()
    sender.join(60)
    assert not sender.is_alive()
    # the wait is counted, and no more than the caller's own clock saw
    assert 0 < writer.waited_s - before <= timed[1] - timed[0]
    writer.close()
    assert done == [0, 1, 2, "parent", 3]


@pytest.mark.slow
def test_a_run_sent_to_a_server_arrives_whole(mlflow_server, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """Over HTTP a run's files go up in parallel beside its metric batches: every file lands
    at its path, every metric point and param arrives, also for a run this tracker did not
    start (its artifact location asked of the server), each request after the caller's wait
    (``before_each``: opens first); an upload that fails is raised after the others ended."""
    tracker = tracking.Tracker(mlflow_server.url, "http")
    parent = tracker.parent_run("c", {})
    files = {tracking.STEPS_TABLE: "step,train_loss\n1,0.5\n",
             tracking.PROFILES_TABLE: "step,t,norm\n0,1,0.5\n",
             tracking.diagnostics_table("spectra"): "step,block\n0,h\n",
             tracking.CONFUSION_TABLE: "true,predicted,count\n0,0,3\n",
             "task.yaml": "name: adding\n"}
    ours = tracker.start_run(parent, "trial-0", {"trial_number": "0"})
    theirs = tracking.Tracker(mlflow_server.url, "http").start_run(parent, "trial-1", {})
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    requests, waits = [], []  # every request of a run's records comes after a wait
    for name in ("log_batch", "set_terminated"):
        call = getattr(tracker.client, name)
        monkeypatch.setattr(tracker.client, name,
                            lambda *a, _call=call, _name=name, **k: (requests.append(_name),
                                                                     _call(*a, **k))[1])
    upload = HttpArtifactRepository.log_artifact
    monkeypatch.setattr(HttpArtifactRepository, "log_artifact",
                        lambda self, *a: (requests.append("file"), upload(self, *a))[1])
    for run_id in (ours, theirs):
        tracker.write(tracking.RunRecords(
            run_id, {f"p{i}": i for i in range(150)}, {"state": "ok"},
            [("train/loss", float(s), s) for s in range(2500)], files, "FINISHED"),
            before_each=lambda: waits.append(1))
    # per run: params 100 + 50 in two batches, 2,500 points in three, 5 files, the end
    assert len(requests) == len(waits) == 2 * (4 + len(files) + 1)
    monkeypatch.undo()
    reader = tracking.RunReader(mlflow_server.url, "http")
    for run_id in (ours, theirs):
        for path, text in files.items():
            assert reader.text(run_id, path) == text, path
        assert len(reader.metric_history(run_id, "train/loss")) == 2500
        record = next(r for r in reader.runs() if r.run_id == run_id)
        assert len(record.params) == 150 and record.status == "FINISHED"

    sent = []

    def failing(self, local_file, artifact_path=None):  # noqa: ANN001, ANN202
        if local_file.endswith("profiles.csv"):
            raise ValueError("refused: profiles.csv")
        upload(self, local_file, artifact_path)
        sent.append(local_file)

    monkeypatch.setattr(HttpArtifactRepository, "log_artifact", failing)
    broken = tracker.start_run(parent, "trial-2", {})
    with pytest.raises(ValueError, match="refused: profiles.csv"):
        tracker.log_run(broken, params={}, tags={}, metrics=[], files=files)
    assert len(sent) == len(files) - 1  # the others went up, from a folder still there


HANG_S = 60.0  # a bound on a wait that should not happen: only a hang reaches it


def test_opens_go_first_on_one_machine(tmp_path: Path) -> None:
    """A run being opened (``opening``, by any worker of the run directory) holds up the
    next request of every sender (``opens_first``) until it is open, at most ``limit_s``;
    opens do not wait for each other, and a process that dies while opening holds up
    nothing."""
    import threading
    import time

    # A limit no wait here reaches: returning before it means it did not wait for it.
    assert tracking.opens_first(tmp_path, limit_s=HANG_S) < HANG_S  # nothing being opened
    returned = []
    with tracking.opening(tmp_path), tracking.opening(tmp_path):  # two opens at once
        sender = threading.Thread(target=lambda: returned.append(
            (tracking.opens_first(tmp_path, limit_s=HANG_S), time.monotonic())))
        sender.start()
        sender.join(0.4)
        assert sender.is_alive(), "a request went out while a run was being opened"
        released = time.monotonic()
    sender.join(HANG_S)
    waited, at = returned[0]
    assert at >= released and waited < HANG_S  # went on once the opens ended
    with tracking.opening(tmp_path):  # held: it waits its limit, then goes on
        assert tracking.opens_first(tmp_path, limit_s=0.2) >= 0.2
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; h = open(sys.argv[1], 'a'); "
        "fcntl.flock(h, fcntl.LOCK_SH); print('held', flush=True); time.sleep(60)"),
        str(tmp_path / tracking.OPENS_LOCK)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert tracking.opens_first(tmp_path, limit_s=0.3) >= 0.3
    holder.kill()
    holder.wait()
    assert tracking.opens_first(tmp_path, limit_s=HANG_S) < HANG_S  # its lock went with it


def test_a_copied_run_directory_gets_its_own_artifact_folder(tmp_path: Path) -> None:
    """``relocate_artifacts`` points a copied embedded store at the copy's ``artifacts/``
    (experiment and runs), once; the original and stores that are not a run directory's
    own embedded store are left alone."""
    import shutil

    first = tmp_path / "a" / "suite"
    first.mkdir(parents=True)
    tracker = tracking.Tracker(tracking.default_tracking_uri(first), "suite", run_dir=first)
    run_id = tracker.start_run(tracker.parent_run("c", {}), "trial-0", {})
    tracker.log_text(run_id, "x", "task.yaml")
    copy = tmp_path / "b" / "suite"
    shutil.copytree(first, copy)
    uri = tracking.default_tracking_uri(copy)
    assert tracking.relocate_artifacts(tracking.default_tracking_uri(first), "suite", copy) \
        is None  # not the copy's own store
    assert tracking.relocate_artifacts(uri, "suite", copy) == tracking.artifact_root(first)
    assert tracking.relocate_artifacts(uri, "suite", copy) is None  # done already
    moved = {r.run_id: r.artifact_uri for r in tracking.RunReader(uri, "suite").runs()}
    assert all(u.startswith(tracking.artifact_root(copy) + "/") for u in moved.values())
    assert tracking.RunReader(uri, "suite").text(run_id, "task.yaml") == "x"
    kept = tracking.RunReader(tracking.default_tracking_uri(first), "suite").runs()
    assert all(r.artifact_uri.startswith(tracking.artifact_root(first) + "/") for r in kept)


def test_a_concurrent_upsert_is_tried_again() -> None:
    """Two machines setting the same tag at once on a PostgreSQL-backed MLflow server: the
    loser gets a unique-key violation, which another try resolves (the row then exists)."""
    from bench.tracking.retries import transient

    conflict = RuntimeError("RestException: BAD_REQUEST: (psycopg2.errors.UniqueViolation) "
                            "duplicate key value violates unique constraint \"experiment_tag_pk\"")
    assert transient(conflict)
    assert not transient(RuntimeError("RESOURCE_ALREADY_EXISTS: experiment 'x' already exists"))
    assert not transient(ValueError("INVALID_PARAMETER_VALUE: Changing param values"))
