"""Where the workers' time goes: the share that is training, and the rest by kind.

Runs a suite through the real command (``gradbench run SUITE``: worker processes, Optuna
journal storage, MLflow store) into a fresh temporary run directory, reads the breakdown the
workers reported (``timings.json`` in the run directory: ``bench.run.pool.RunStats``), then, in
this process, prices the training steps the suite actually ran with ``bench.cli.cost`` (the
median time of a bare training step for each task variant and model, as ``gradbench cost``
times it) and prints one table per run:

- worker time: every worker process from the moment the pool asked for it to its end, summed;
- training steps, measured: the loop's own time minus evaluation, probes and the pruner's
  reports (``TrainResult``), and priced: steps run x bare step time;
- the rest by kind: evaluation, gradient probes, building task and model, Optuna (reports,
  ``tell``, noting the run), tracking calls on the worker's path (opening the run, handing
  over its records, waiting for the previous run's), process start-up (imports, waiting for
  the suite to be prepared), opening storage and tracker, claims, recovery, waiting for
  work, writing the last records at exit, and what is left (``other``).

``--tracking-uri server`` runs the suite against a local ``mlflow server`` that this script
starts (SQLite store, loopback HTTP) and stops. ``--tracking sync,async`` runs it once with
the records written in the worker's thread (``GRADBENCH_TRACKING_SYNC=1``: as before the
background writer) and once with the background writer, one after the other.

Usage:
    python benchmarks/efficiency.py smoke
    python benchmarks/efficiency.py default --workers 2 --tracking sync,async
    python benchmarks/efficiency.py smoke --set training.steps=60 --tracking-uri server
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py

LABELS = {
    "steps_s": "training steps (measured in the loop)", "eval_s": "evaluation",
    "probe_s": "gradient probes", "build_s": "building task and model",
    "optuna_s": "Optuna (reports, tell)", "open_s": "tracking: opening the run",
    "record_s": "tracking: handing over the records",
    "start_s": "process start-up, waiting for the suite", "setup_s": "opening storage, tracker",
    "claim_s": "claiming work", "recovery_s": "recovering dead workers' trials",
    "idle_s": "waiting for work", "summary_s": "a configuration's summary after its seeds",
    "flush_s": "writing the last records at exit",
    "other_s": "other, inside jobs", "unaccounted_s": "other, outside jobs",
}


def run_suite(suite: str, sets: list[str], workers: int, root: Path,
              tracking_uri: str | None, synchronous: bool) -> tuple[dict[str, Any], float]:
    """``gradbench run`` into a fresh folder; (the workers' breakdown, wall seconds)."""
    runs_dir = root / f"runs-{'sync' if synchronous else 'async'}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "bench", "run", suite, "--runs-dir", str(runs_dir),
           "--workers", str(workers), "--quiet"]
    for item in sets:
        cmd += ["--set", item]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    env = {**os.environ, "GRADBENCH_TRACKING_SYNC": "1" if synchronous else "0"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"gradbench run failed ({done.returncode}): "
                         f"{(done.stdout + done.stderr)[-2000:]}")
    found = sorted(runs_dir.glob("*/timings.json"))
    if not found:
        raise SystemExit(f"no timings.json under {runs_dir}")
    return json.loads(found[0].read_text()), wall


def price(suite: str, sets: list[str], breakdown: dict[str, Any], timed_steps: int,
          side_by_side: int = 1) -> float:
    """Seconds the suite's steps cost in a bare loop (``bench.cli.cost``), timed here; with
    ``side_by_side`` > 1, timed in that many processes at once (as the workers ran: they
    share the host's cores, caches and memory bandwidth), the mean of their step times."""
    ran = {(row["variant"], row["model"]): row["steps"] for row in breakdown["steps_by"]}
    if side_by_side <= 1:
        step_s = _bare_steps(suite, sets, sorted(ran), timed_steps)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        start, results = ctx.Barrier(side_by_side), ctx.Queue()
        procs = [ctx.Process(target=_bare_steps_together,
                             args=(suite, sets, sorted(ran), timed_steps, start, results))
                 for _ in range(side_by_side)]
        for proc in procs:
            proc.start()
        found = [results.get() for _ in procs]
        for proc in procs:
            proc.join()
        step_s = {key: sum(f[key] for f in found) / len(found) for key in found[0]}
    return sum(ran[key] * seconds for key, seconds in step_s.items())


def _bare_steps(suite: str, sets: list[str], keys: list[tuple[str, str]],
                timed_steps: int) -> dict[tuple[str, str], float]:
    """(task variant, model) -> seconds of one bare training step, one torch thread."""
    from bench.cli.cost import offline_spec, time_models, variant_of
    from bench.models import select_device
    from bench.run.inputs import available_configurations
    from bench.train import configure_torch

    configure_torch(threads=1)
    spec = offline_spec(argparse.Namespace(suite=suite, set=list(sets)))
    wanted = set(keys)
    configurations = [c for c in available_configurations(spec)[0]
                      if (variant_of(c), c.model) in wanted]
    timings = time_models(spec, configurations, select_device(spec.device), timed_steps)
    return {(t.variant, t.model): t.step_s for t in timings}


def _bare_steps_together(suite: str, sets: list[str], keys: list[tuple[str, str]],
                         timed_steps: int, start: Any, results: Any) -> None:
    """``_bare_steps`` in a process of its own, begun with the others (``start``: a
    barrier); its step times go to ``results``."""
    import bench.cli.cost  # noqa: F401 - imports done before the barrier

    start.wait()
    results.put(_bare_steps(suite, sets, keys, timed_steps))


def table(title: str, breakdown: dict[str, Any], priced_s: float, wall: float,
          together_s: float | None = None) -> str:
    total = breakdown["worker_s"]
    kinds = {**breakdown["kinds"], "unaccounted_s": breakdown["unaccounted_s"]}
    lines = [f"{title}: {breakdown['jobs']} runs, {breakdown['steps']:,} training steps, "
             f"{breakdown['workers']} worker(s), {wall:.0f} s wall, "
             f"{total:.1f} s of worker time",
             f"  {'kind':42} {'seconds':>9} {'share':>7}",
             f"  {'training steps, priced (bare loop)':42} {priced_s:9.1f} "
             f"{priced_s / total:7.1%}"]
    if together_s is not None:
        label = f"  ... {breakdown['workers']} bare loops side by side"
        lines.append(f"{label:44} {together_s:9.1f} {together_s / total:7.1%}")
    for kind, label in LABELS.items():
        seconds = kinds.get(kind, 0.0)
        lines.append(f"  {label:42} {seconds:9.1f} {seconds / total:7.1%}")
    tracking = kinds["open_s"] + kinds["record_s"]
    together = "" if together_s is None else f", {together_s / total:.1%} priced side by side"
    lines.append(f"  tracking on the path, of run time: {tracking:.1f} s of "
                 f"{breakdown['job_s']:.1f} s ({tracking / breakdown['job_s']:.1%}); training "
                 f"steps of worker time: {kinds['steps_s'] / total:.1%} measured, "
                 f"{priced_s / total:.1%} priced{together}")
    return "\n".join(lines)


def prices(args: argparse.Namespace, breakdown: dict[str, Any]) -> tuple[float, float | None]:
    """The steps priced alone, and side by side as many as the suite had workers (None
    with one worker)."""
    alone = price(args.suite, args.set, breakdown, args.timed_steps)
    workers = int(breakdown.get("workers", 1))
    together = (price(args.suite, args.set, breakdown, args.timed_steps, workers)
                if workers > 1 else None)
    return alone, together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", help="a packaged suite name or a config file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tracking-uri", default=None,
                        help="a tracking URI, or `server`: a local mlflow server started here")
    parser.add_argument("--tracking", default="async",
                        help="sync, async or both (sync,async): where records are written")
    parser.add_argument("--timed-steps", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--from-run", type=Path, default=None, metavar="RUN_DIR",
                        help="price a suite already run there (its timings.json, e.g. after "
                             "`make run`: runs/default) instead of running it")
    args = parser.parse_args(argv)
    if args.from_run is not None:
        return from_run(args)
    modes = [m.strip() for m in args.tracking.split(",") if m.strip()]
    if not modes or any(m not in ("sync", "async") for m in modes):
        raise SystemExit(f"--tracking: sync, async or sync,async, got {args.tracking!r}")
    figures = []
    with tempfile.TemporaryDirectory(prefix="gradbench-efficiency-") as tmp:
        root = Path(tmp)
        server = None
        uri = args.tracking_uri
        if uri == "server":
            from testkit.servers import MlflowServer

            server = MlflowServer(root / "mlflow").start()
            uri = server.url
        try:
            for mode in modes:
                breakdown, wall = run_suite(args.suite, args.set, args.workers, root, uri,
                                            synchronous=mode == "sync")
                priced, together = prices(args, breakdown)
                where = "mlflow server" if server else (uri or "embedded store")
                print(table(f"{args.suite} ({where}, records written {mode})", breakdown,
                            priced, wall, together), flush=True)
                figures.append({"suite": args.suite, "set": args.set, "tracking": mode,
                                "server": server is not None, "wall_s": wall,
                                "priced_s": priced, "priced_together_s": together,
                                **breakdown})
        finally:
            if server is not None:
                server.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def from_run(args: argparse.Namespace) -> int:
    """The table of a suite run before (``timings.json`` in ``RUN_DIR``); wall time as the
    command measured it (the workers' span)."""
    path = args.from_run / "timings.json"
    if not path.is_file():
        raise SystemExit(f"--from-run: no timings.json in {args.from_run} (written by every "
                         f"`gradbench run` since the breakdown exists)")
    breakdown = json.loads(path.read_text())
    priced, together = prices(args, breakdown)
    print(table(f"{args.suite} (run in {args.from_run})", breakdown, priced,
                float(breakdown.get("wall_s", math.nan)), together), flush=True)
    if args.json:
        args.json.write_text(json.dumps([{"suite": args.suite, "priced_s": priced,
                                          "priced_together_s": together, **breakdown}],
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
