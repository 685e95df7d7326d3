"""Speed of ``gradbench report`` on a suite of about 1,000 runs (SPEC section 8: under 30 s).

A synthetic suite is written with the real tracking layer (``bench.tracking.Tracker``) into
a temporary SQLite store, with the layout ``gradbench run`` produces: a parent run per
configuration with provenance and ``config.yaml``; nested trial and final-seed runs with
tags, params, per-step curves (``train/loss``, ``grad/norm``: thinned metrics, and every step
in ``curves.csv``), evaluation and probe-step metrics, the diagnostics tables under
``diagnostics/``, ``task.yaml`` and, for HAR final seeds, ``test/confusion.csv``. The Optuna
studies are real too (journal file, trials asked and told through ``bench.tuning``), so
hyperparameter importance is part of the timing.

Default grid: adding T in {50, 100}, copy T = 20 and HAR, x 4 models x 2 x 2 remedies = 64
configurations x (11 trials + 4 seeds) + 64 parents = 1,024 runs.

Printed: the time to write the suite (not the figure of merit), then the time to build the
report in this process (``build_report``: read, compute, draw, write) and the wall time of
the command line (``gradbench report ...`` in a fresh process, imports included).

Usage:
    python benchmarks/report_speed.py                    # temp dir, removed afterwards
    python benchmarks/report_speed.py --keep /tmp/speed  # keep (and reuse) the suite there
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import TrialState

from bench import config, tuning
from bench.config import Configuration, SuiteSpec, expand, search_space
from bench.run.suite import parent_tags
from bench.tracking import (
    CONFIG_FILE,
    CONFUSION_TABLE,
    STEPS_TABLE,
    Tracker,
    curve,
    default_tracking_uri,
    diagnostics_table,
    provenance,
    step_rows,
)
from bench.train import TrainResult

LIMIT_S = 30.0
NAME = "speed"
QUALITY = {"rnn": 0.95, "irnn": 0.6, "lstm": 0.08, "gru": 0.05}  # test loss / baseline
BASELINE = {"adding": 1 / 6, "copy": 10 * math.log(8) / 40, "har": math.log(6)}
METRIC = {"adding": ("mse", "minimize"), "copy": ("recall_acc", "maximize"),
          "har": ("acc", "maximize")}
CLASSES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING",
           "LAYING")


def suite_spec(trials: int, seeds: int, steps: int) -> SuiteSpec:
    return config.load(config.resolve_config("default"), {
        "trials": trials, "seeds": seeds, "steps": steps,
        "set": [f"name={NAME}", "tasks.adding.seq_len=[50,100]", "tasks.copy.seq_len=[20]",
                "diagnostics.probe_every=100"]})


# ------------------------------------------------------------------------------ one run


def headline(task: str, ratio: float) -> float:
    """The task metric for a run whose test loss is ``ratio`` x the baseline."""
    if task == "adding":
        return ratio * BASELINE["adding"]
    return max(0.0, min(1.0, 1.0 - 0.9 * ratio))


def step_curves(rng: random.Random, steps: int, ratio: float,
                diverged_at: int | None) -> tuple[list[float], list[float]]:
    """Training loss and gradient norm at every step."""
    losses, norms = [], []
    for step in range(1, (diverged_at or steps) + 1):
        progress = step / steps
        losses.append((1.0 - (1.0 - ratio) * progress) * (1 + 0.1 * rng.random()))
        norms.append((0.5 + 2 * rng.random()) * (1 + 20 * progress if diverged_at else 1))
    return losses, norms


def probe_tables(rng: random.Random, model: str, seq_len: int, steps: int) -> dict[str, list]:
    """The diagnostics tables of one run: profiles, summaries, spectra, groups, ..."""
    decay = {"rnn": 0.15, "irnn": 0.05, "lstm": 0.01, "gru": 0.008}[model]
    tables: dict[str, list] = {k: [] for k in ("profiles", "summaries", "spectra", "groups",
                                               "saturation", "factors")}
    for step in sorted({0, 100, 200, steps}):
        for t in range(1, seq_len + 1):
            norm = 0.05 * math.exp(-decay * (seq_len - t)) * (1 + 0.05 * rng.random())
            tables["profiles"].append({"step": step, "t": t, "norm": norm, "kind": "h"})
            if model in ("rnn", "irnn"):
                tables["profiles"].append({"step": step, "t": t, "kind": "bound",
                                           "norm": 0.05 * 1.02 ** (seq_len - t)})
        tables["summaries"].append({"step": step, "kind": "h", "log10_ratio": -decay * seq_len
                                    / math.log(10), "decay_rate": decay, "horizon": 3 / decay,
                                    "flag": "ok", "loss": 0.1})
        tables["spectra"].append({"step": step, "block": "hh", "spectral_norm": 1.1,
                                  "spectral_radius": 0.9 + 0.001 * step})
        tables["groups"] += [{"step": step, "group": g, "norm": rng.random(), "source": "probe"}
                             for g in ("input", "recurrent", "bias", "head")]
        tables["saturation"].append({"step": step, "block": "h", "measure": "saturated",
                                     "value": rng.random() * 0.1})
        tables["factors"].append({"step": step, "path": "W_hh, tanh'", "split": "plain",
                                  "available": True, "reason": "", "fprime_log10": -0.01,
                                  "w_hh_log10": -0.05, "step_log10_ratio": -0.06,
                                  "slope": -decay / math.log(10), "carry_share": math.nan,
                                  "steps_used": seq_len - 1, "dropped": 0,
                                  "injected_steps": 0, "residual": 1e-7,
                                  "fprime_all_units": -0.02})
    tables["steps"] = [{"steps": steps, "clip_rate": 0.1, "n_clipped": steps // 10,
                        "n_nonfinite": 0, "first_nonfinite": "", "max_grad_norm": 3.0,
                        "median_grad_norm": 1.0}]
    return tables


class SyntheticRun:
    """Everything one trial or final seed logs, made up but shaped like the real thing."""

    def __init__(self, rng: random.Random, spec: SuiteSpec, c: Configuration,
                 params: dict[str, Any]) -> None:
        self.rng, self.spec, self.c, self.params = rng, spec, c, params
        steps = spec.training.steps
        unsafe = c.clipping == "none" and c.model in ("rnn", "irnn")
        self.diverged_at = rng.randint(10, steps) if unsafe and rng.random() < 0.3 else None
        self.ratio = QUALITY[c.model] * (0.7 + 0.6 * rng.random())
        self.seq_len = c.seq_len or 128
        self.steps = steps
        self.losses, self.norms = step_curves(rng, steps, self.ratio, self.diverged_at)

    @property
    def state(self) -> str:
        return "diverged" if self.diverged_at else "complete"

    def metrics(self) -> list[tuple[str, float, int]]:
        points = curve("train/loss", self.losses) + curve("grad/norm", self.norms)
        metric, _ = METRIC[self.c.task]
        base = BASELINE[self.c.task]
        end = self.diverged_at or self.steps
        for step in range(self.spec.training.eval_every, end + 1, self.spec.training.eval_every):
            loss = base * (1 - (1 - self.ratio) * step / self.steps)
            points += [("val/loss", loss, step),
                       (f"val/{metric}", headline(self.c.task, loss / base), step)]
        if not self.diverged_at:
            test = base * self.ratio
            points += [("test/loss", test, end), (f"test/{metric}",
                                                  headline(self.c.task, self.ratio), end),
                       ("test/normalized", self.ratio, end),
                       ("test/solved", float(self.ratio < 0.06), end)]
        points += [("grad/clip_rate", 0.1, end), ("train/wall_time", 12.0, end),
                   ("train/steps_done", float(end), end)]
        for step in (0, 100, 200, self.steps):
            points += [("grad/log10_ratio", -1.0, step), ("grad/decay_rate", 0.1, step),
                       ("grad/horizon", 20.0, step), ("weights/spectral_radius", 0.95, step)]
        return points

    def tags(self) -> dict[str, str]:
        metric, direction = METRIC[self.c.task]
        return {"state": self.state, "device": "cpu", "diverged_at": str(self.diverged_at or ""),
                "reason": "nonfinite loss" if self.diverged_at else "",
                "solved": str(self.ratio < 0.06 and not self.diverged_at), "metric": metric,
                "direction": direction}

    def log(self, tracker: Tracker, run_id: str, final: bool) -> None:
        c = self.c
        tracker.log_params(run_id, {**self.params, "task": c.task, "seq_len": c.seq_len,
                                    "model": c.model, "regularization": c.regularization,
                                    "clipping": c.clipping, "hidden_size": 32,
                                    "n_params": 5000, "steps": self.steps})
        tracker.set_tags(run_id, self.tags())
        tracker.log_metrics(run_id, self.metrics())
        steps = TrainResult(self.state, len(self.losses), train_loss=self.losses,
                            grad_norm=self.norms, clipped=[n > 1.0 for n in self.norms])
        tracker.log_table(run_id, step_rows(steps), STEPS_TABLE)
        for table, rows in probe_tables(self.rng, c.model, self.seq_len if c.task != "copy"
                                        else self.seq_len + 20, self.steps).items():
            tracker.log_table(run_id, rows, diagnostics_table(table))
        tracker.log_text(run_id, yaml.safe_dump({"task": c.task, "seq_len": self.seq_len,
                                                 "baseline": BASELINE[c.task]}), "task.yaml")
        if final and c.task == "har" and not self.diverged_at:
            tracker.log_table(run_id, confusion_rows(self.rng, self.ratio), CONFUSION_TABLE)
        tracker.end_run(run_id, "FAILED" if self.diverged_at else "FINISHED")


def confusion_rows(rng: random.Random, ratio: float) -> list[dict[str, Any]]:
    rows = []
    for i, true in enumerate(CLASSES):
        for j, predicted in enumerate(CLASSES):
            right = int(500 * (1 - ratio))
            count = right if i == j else int(500 * ratio / 5 * (1 + rng.random()))
            rows.append({"true": true, "predicted": predicted, "count": count})
    return rows


# ------------------------------------------------------------------------------ the suite


def write_suite(run_dir: Path, spec: SuiteSpec) -> int:
    """Parents, trials (with their Optuna trials) and final seeds; returns the run count."""
    rng = random.Random(0)
    tracker = Tracker(default_tracking_uri(run_dir), spec.name, run_dir=run_dir)
    storage = tuning.open_storage(None, run_dir)
    configurations = expand(spec)
    tuning.create_studies(storage, spec, configurations)
    info, text = provenance(), yaml.safe_dump(spec.to_dict(), sort_keys=False)
    (run_dir / "config.yaml").write_text(text)  # as gradbench run leaves it
    count = 0
    for c in configurations:
        tags = parent_tags(spec, c)
        parent = tracker.parent_run(c.name, tags)
        tracker.set_tags(parent, info)
        tracker.log_text(parent, text, CONFIG_FILE)
        study = tuning.load_study(storage, spec, c)
        best: tuple[float, dict[str, Any]] = (math.inf, {})
        for _ in range(spec.tuning.trials):
            trial = study.ask()
            params = tuning.suggest(trial, search_space(spec, c))
            run = SyntheticRun(rng, spec, c, params)
            run_id = tracker.start_run(parent, f"trial-{trial.number}", {
                **tags, "configuration": c.name, "role": "trial", "study": study.study_name,
                "trial_number": str(trial.number), "seed": str(spec.seed), "worker": "0"})
            run.log(tracker, run_id, final=False)
            if run.diverged_at:
                trial.set_user_attr("outcome", "diverged")
                study.tell(trial, state=TrialState.FAIL)
            else:
                value = BASELINE[c.task] * run.ratio
                study.tell(trial, value)
                best = min(best, (value, params), key=lambda b: b[0])
            count += 1
        for seed in tuning.final_seeds(spec):
            run = SyntheticRun(rng, spec, c, best[1])
            run_id = tracker.start_run(parent, f"final-seed{seed}", {
                **tags, "configuration": c.name, "role": "final",
                "study": f"{study.study_name}/final", "trial_number": str(seed - 1000),
                "seed": str(seed), "worker": "0"})
            run.log(tracker, run_id, final=True)
            count += 1
        tracker.end_run(parent, "FINISHED")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write (or reuse) the suite in this folder")
    parser.add_argument("--trials", type=int, default=11)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        run_dir = root / "runs" / NAME
        spec = suite_spec(args.trials, args.seeds, args.steps)
        if not (run_dir / "mlflow.db").exists():
            started = time.perf_counter()
            run_dir.mkdir(parents=True, exist_ok=True)
            n = write_suite(run_dir, spec)
            print(f"wrote {n} runs in {time.perf_counter() - started:.0f} s (not timed)")
        return measure(root, run_dir)


def measure(root: Path, run_dir: Path) -> int:
    from bench.report import build_report
    from bench.report.results import ResultsSource

    started = time.perf_counter()
    source = ResultsSource(default_tracking_uri(run_dir), NAME)
    storage = tuning.open_storage(None, run_dir)
    out = build_report(source, root / "reports" / NAME / "index.html", storage=storage)
    built = time.perf_counter() - started
    runs = len(source.search())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", "report", NAME, "--runs-dir",
                           str(root / "runs"), "--out", str(root / "reports" / "cli")],
                          capture_output=True, text=True)
    if done.returncode:
        print(done.stdout + done.stderr, file=sys.stderr)
        return 2
    cli = time.perf_counter() - started
    size = out.stat().st_size / 1e6
    print(f"report of {runs} runs: build_report {built:.1f} s; gradbench report (fresh "
          f"process, imports included) {cli:.1f} s; {size:.1f} MB; limit {LIMIT_S:.0f} s")
    print(f"report: {out}")
    return 0 if max(built, cli) < LIMIT_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
