"""A suite: configurations x studies, how it starts, resumes and reads.

Where it lives and what this machine must have for it are ``bench.run.inputs``'s, checked
before anything starts. ``prepare`` expands the config, sets the run directory up, creates
every Optuna study before any worker starts, and recovers what an interrupted run left
behind (trials marked interrupted and queued again; their MLflow runs ended as KILLED). The
workers (``bench.run.pool``, ``bench.run.worker``) then claim tuning trials and final seeds
through the storage until every configuration is done. ``leaderboard``, ``status_rows`` and
``progress_snapshot`` read where a suite stands.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import tracking, tuning
from bench.board import Seed, seed_stats
from bench.config import Configuration, SuiteSpec, describe_changes, expand, search_space
from bench.errors import mask_secrets
from bench.links import default_dashboard_url, study_tags
from bench.locks import locked
from bench.outcomes import MLFLOW_STATUS, Outcome
from bench.range_edge import range_edge
from bench.registry import TASKS, PluginError
from bench.run.inputs import check_writable, run_dir_for, runnable_configurations
from bench.tracking import (
    Tracker,
    check_spooled,
    default_tracking_uri,
    provenance,
    relocate_artifacts,
    replay_spooled,
    resolve_uri,
    retries,
)
from bench.tuning import RUNNING, WAITING, worker_gone

PARENT_SETTLE_S = 2.0  # see create_parent_runs


@dataclass
class Suite:
    """A suite ready to run: where it lives and what it will run."""

    spec: SuiteSpec
    run_dir: Path
    configurations: list[Configuration]
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it was left out
    workers: int = 1
    whole: SuiteSpec | None = None  # the suite as recorded when --tasks/--models narrow it

    @property
    def recorded(self) -> SuiteSpec:
        """What is recorded with the suite (run directory, MLflow): the whole of it, and
        ``status`` and ``report`` read that, however narrow this run."""
        return self.whole or self.spec

    @property
    def storage_url(self) -> str | None:
        return self.spec.storage

    @property
    def embedded(self) -> bool:
        """Optuna's journal file in the run directory (one ``gradbench run`` at a time, under
        the run lock), not a database shared by machines."""
        return self.storage_url is None or self.storage_url.startswith("journal:")

    @property
    def tracking_uri(self) -> str:
        return resolve_uri(self.spec.tracking_uri, self.run_dir)

    def jobs_per_configuration(self) -> int:
        return self.spec.tuning.trials + self.spec.final.seeds


# ------------------------------------------------------------------------------ preparation


def check_remote_inputs(spec: SuiteSpec, runs_dir: str | Path | None) -> None:
    """What can be wrong with the input beyond this machine, found before anything is
    written: a storage database and a tracking server (reached; nothing created). The
    device and the tasks' data are ``inputs.check_local_inputs``'s."""
    run_dir = run_dir_for(spec, runs_dir)
    if spec.storage is not None and not spec.storage.startswith("journal:"):
        tuning.open_storage(spec.storage, run_dir)
    tracking.check_reachable(tracking.resolve_uri(spec.tracking_uri, run_dir))


def prepare(spec: SuiteSpec, runs_dir: str | Path | None,
            whole: SuiteSpec | None = None) -> Suite:
    """Everything before the workers: directory, resolved config, studies, recovery.

    ``whole``: the suite without the ``--tasks`` / ``--models`` that narrow this run (what
    is recorded). A change of the settings behind recorded results is refused here,
    before anything is written (``tuning.meaning_changes``).
    """
    run_dir = run_dir_for(spec, runs_dir)
    check_writable(run_dir)
    configurations, skipped = runnable_configurations(spec)
    suite = Suite(spec, run_dir, configurations, skipped, whole=whole)
    check_spooled(run_dir)  # a spooled run that cannot be read: named before anything is written
    journal = tuning.journal_file(spec.storage, run_dir)
    if suite.embedded and journal is not None:  # under the run lock: no worker is appending
        tuning.repair_torn_tail(journal)
    storage = tuning.open_storage(spec.storage, run_dir)  # unreachable: fails before writing
    changes = tuning.meaning_changes(storage, spec, configurations)
    if changes:  # before anything is written
        raise ValueError(describe_changes(spec.name, changes))
    relocate_artifacts(suite.tracking_uri, spec.name, run_dir)  # moved: its own files, once
    tracker = _tracker(suite)
    tracker.experiment_id  # noqa: B018 - reaches the tracking store, or fails clearly
    _write_resolved_config(suite)
    tuning.create_studies(storage, spec, configurations)
    links = tuning.dashboard_links(storage, spec, configurations, default_dashboard_url())
    create_parent_runs(suite, tracker, links=links)
    tracker.set_runs_view(tracking.runs_view(
        [TASKS.get(c.task).metric for c in configurations],
        [tuning.objective_key(spec, c) for c in configurations]))
    recover(suite, storage, tracker=tracker)
    return suite


def _tracker(suite: Suite) -> Any:
    """The main process's tracker: fails fast (10 s of retries) when the store is down."""
    return Tracker(suite.tracking_uri, suite.spec.name, run_dir=suite.run_dir,
                   retry_s=min(retries.RETRY_S, 10.0))


def parent_tags(spec: SuiteSpec, configuration: Configuration) -> dict[str, str]:
    return {**configuration.tags(), "config_hash": spec.config_hash(), "suite": spec.name}


def create_parent_runs(suite: Suite, tracker: Any,
                       links: Mapping[str, tuple[str, str]] | None = None) -> None:
    """One MLflow parent run per configuration, with the resolved config and provenance.

    ``links``: configuration -> (its study, the study's page on optuna-dashboard as
    ``gradbench ui`` serves it by default), as tags and as the run's description.

    With a shared storage other machines may be preparing the same suite right now: their
    parent runs get ``PARENT_SETTLE_S`` to become visible before the earliest is chosen
    (an embedded storage has one ``gradbench run`` at a time: no wait).
    """
    config_text = yaml.safe_dump(recorded_config(suite), sort_keys=False)
    info = provenance()
    parents = tracker.ensure_parent_runs(
        {c.name: parent_tags(suite.spec, c) for c in suite.configurations},
        settle_s=0.0 if suite.embedded else PARENT_SETTLE_S)
    for name, (run_id, created) in parents.items():
        if created:
            tracker.set_tags(run_id, {**info, **study_tags(*(links or {}).get(name, ("", "")))})
            tracker.log_text(run_id, config_text, "config.yaml")


def recorded_config(suite: Suite) -> dict[str, Any]:
    """The suite as recorded (``Suite.recorded``), passwords masked, with the tracking URI
    it used even where it came from ``$MLFLOW_TRACKING_URI`` (not the embedded store's:
    that one follows the run directory)."""
    data = suite.recorded.public_dict()
    if data["tracking_uri"] is None and suite.tracking_uri != default_tracking_uri(
            suite.run_dir):
        data["tracking_uri"] = mask_secrets(suite.tracking_uri)
    return data


def _write_resolved_config(suite: Suite) -> None:
    target = suite.run_dir / "config.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(recorded_config(suite), sort_keys=False))
    tmp.replace(target)


# ------------------------------------------------------------------------------ resuming


def recover(suite: Suite, storage: Any, *, at_start: bool = True,
            tracker: Any = None) -> dict[str, int]:
    """Mark trials of dead workers as interrupted, queue them again, end their MLflow runs.

    At start-up on an embedded (journal) storage every RUNNING trial is dead: the run lock
    is held. On an RDB storage only trials whose heartbeat went stale are; workers call
    this now and then (``at_start=False``) to pick up the work of a worker that died.
    ``storage`` is the one ``tuning.open_storage`` returned.
    """
    all_dead = suite.embedded and at_start
    found = tuning.recover(storage, suite.spec, suite.configurations, all_running=all_dead)
    tracker = tracker or _tracker(suite)
    if at_start:  # what workers of this run directory left unsent, before their runs end
        replay_spooled(suite.run_dir, tracker)
    outcomes, workers = tuning.trial_ends(storage)
    end_orphan_runs(tracker, outcomes, workers=None if all_dead else workers)
    return found


def end_orphan_runs(tracker: Any, outcomes: Mapping[tuple[str, int], str], *,
                    workers: Mapping[tuple[str, int], str] | None = None) -> int:
    """End nested MLflow runs left RUNNING by a worker that died.

    Its trial was interrupted: KILLED. Its trial finished but the worker died (or lost the
    tracking server) before closing the run: the outcome's status, tagged
    ``tracking=incomplete``. A trial still running or queued keeps its run open.

    ``workers`` (trial -> ``host:pid`` of its worker; None: every worker is gone, as under
    an embedded storage's run lock at start): a finished trial's run is ended only if its
    worker is gone from this host. A live worker may still be sending its records (they
    wait in its spool), and a dead worker's on another host are written when that machine
    resumes the suite (``tracking.replay_spooled``).
    """
    running = tracker.find_runs("attributes.status = 'RUNNING' and tags.role != 'configuration'")
    ended = 0
    for run in running:
        key = (run.data.tags.get("study", ""), int(run.data.tags.get("trial_number", -1)))
        state = outcomes.get(key, Outcome.INTERRUPTED)
        if state in (RUNNING, WAITING):
            continue
        outcome = Outcome.parse(state) or Outcome.INTERRUPTED
        if outcome.kept and workers is not None and not worker_gone(workers.get(key)):
            continue
        tags = {"state": str(outcome)}
        if outcome.kept:
            tags["tracking"] = "incomplete"
        tracker.set_tags(run.info.run_id, tags)
        tracker.end_run(run.info.run_id, MLFLOW_STATUS[outcome])
        ended += 1
    return ended


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Only one ``gradbench run`` of a suite at a time on an embedded storage."""
    path = run_dir / ".run.lock"
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(locked(path, wait=False))
        except BlockingIOError:
            pid = path.read_text().strip() or "?"
            raise RuntimeError(f"suite {run_dir.name!r} is already running (pid {pid}); "
                               f"wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


# ------------------------------------------------------------------------------ where it stands


def leaderboard(suite: Suite) -> list[dict[str, Any]]:
    """Per configuration: the final seeds' test metric (mean, std), solved and diverged rates
    (``board_row``). Read after the workers ran, so the storage is known to be right: a
    database that restarts meanwhile is waited for (``tuning.retrying``), as the workers do."""
    storage = tuning.open_storage(suite.storage_url, suite.run_dir, wait=True)
    return tuning.retrying(lambda: _board(suite, storage))


def _board(suite: Suite, storage: Any) -> list[dict[str, Any]]:
    rows = []
    for configuration in suite.configurations:
        trials, finals = records(storage, suite.spec, configuration)
        row = board_row(configuration, trials, finals)
        row["range_edge"] = edge_of(suite.spec, configuration, trials)
        # suites begun before trials recorded a direction
        row["direction"] = row["direction"] or _task_direction(row["task"])
        row["beyond_horizon"] = not row["seeds"] and tuning.horizon_gate(
            storage, suite.spec, configuration) == tuning.BEYOND
        rows.append(row)
    return rows


def records(storage: Any, spec: SuiteSpec, configuration: Configuration
            ) -> tuple[list[Any], list[Any]]:
    """A configuration's tuning trials and its current final seeds (those of the best
    parameters; seeds of superseded parameters are left out), as ``tuning.TrialRecord``s."""
    trials = tuning.trial_records(storage, spec, configuration)
    finals = tuning.trial_records(storage, spec, configuration, final=True)
    direction = tuning.objective_direction(spec, configuration)
    return trials, tuning.current_finals(trials, finals, direction)


def board_row(configuration: Configuration, trials: Sequence[Any],
              finals: Sequence[Any]) -> dict[str, Any]:
    """One configuration's leaderboard row from its tuning trials and current final seeds
    (``records``): the terminal's, its statistics from ``bench.board.seed_stats``.

    ``metric`` and ``direction`` are what the trials recorded (``tuning.tell``), or "".
    The mean and std are over every final seed done: a diverged seed counts with the
    trivial predictor's test score, which it records (``test_from=trivial``); none is
    dropped. ``diverged_rate`` says how many those are.
    """
    metric = _recorded(finals, "metric")
    direction = _recorded([*finals, *trials], "direction")
    done = [t for t in finals if t.outcome in (Outcome.COMPLETE, Outcome.DIVERGED)]
    stats = seed_stats([_seed(t, metric) for t in done])
    c = tuning.counts(trials)
    return {
        "configuration": configuration.name,
        "task": configuration.task,
        "seq_len": configuration.seq_len,
        "model": configuration.model,
        "regularization": configuration.regularization,
        "clipping": configuration.clipping,
        "metric": metric,
        "direction": direction,
        "mean": stats.mean,
        # one seed: 0, as the parent run's final/<metric>_std has always recorded it
        "std": 0.0 if stats.n_values == 1 else stats.std,
        "seeds": stats.seeds,
        "steps_to_solve": stats.steps_to_solve,
        "solved_rate": stats.solved_rate,
        "diverged_rate": stats.diverged_rate,
        "complete": c["complete"], "pruned": c["pruned"], "diverged": c["diverged"],
        "running": c["running"],
    }


def _seed(trial: Any, metric: str) -> Seed:
    """A final seed's trial record (``tuning.TrialRecord``) as ``bench.board`` reads it."""
    test = trial.attrs.get("test", {})
    return Seed(score=float(test[metric]) if metric in test else None,
                solved=bool(trial.attrs.get("solved")),
                solved_at=float(trial.attrs["solved_at"]) if "solved_at" in trial.attrs
                else None,
                diverged=trial.outcome == Outcome.DIVERGED)


def edge_of(spec: SuiteSpec, configuration: Configuration, trials: Sequence[Any]) -> str:
    """Whether the best trial's log-scale parameters lie at the edge of their ranges
    (``bench.range_edge``, the report's check too)."""
    best = tuning.best_trial(trials, tuning.objective_direction(spec, configuration))
    return range_edge(search_space(spec, configuration), best.params if best else None,
                      tuning.counts(trials)["complete"])


def _recorded(trials: Sequence[Any], attr: str) -> str:
    return str(next((t.attrs[attr] for t in trials if attr in t.attrs), ""))


def _task_direction(task: str) -> str:
    """The task's direction from the registry, "" where it has no record of the task."""
    try:
        return TASKS.get(task).direction
    except PluginError:
        return ""


def progress_snapshot(suite: Suite, storage: Any = None) -> dict[str, int]:
    """Jobs done per configuration (finished tuning trials + finished final seeds).
    ``storage``: one opened before, for a caller that asks again and again. Asked once the
    suite is prepared (the storage is known to be right), a restarting database is waited for.
    """
    if storage is None:
        storage = tuning.open_storage(suite.storage_url, suite.run_dir, wait=True)
        return tuning.retrying(lambda: progress_snapshot(suite, storage))
    spec, done = suite.spec, {}
    for configuration in suite.configurations:
        trials, finals = records(storage, spec, configuration)
        c, f = tuning.counts(trials), tuning.counts(finals)
        tuned = min(spec.tuning.trials, c["complete"] + c["pruned"] + c["diverged"])
        if tuning.horizon_gate(storage, spec, configuration) == tuning.BEYOND or (
                tuning.tuning_done(trials, spec.tuning.trials)
                and tuning.best_trial(trials) is None):
            done[configuration.name] = suite.jobs_per_configuration()  # nothing to re-run
        else:
            done[configuration.name] = tuned + min(spec.final.seeds,
                                                   f["complete"] + f["diverged"])
    return done


def status_rows(spec: SuiteSpec, run_dir: Path) -> list[dict[str, Any]]:
    """Per configuration: trials by outcome, best objective (``tuning.objective``), final
    seeds done."""
    if spec.storage is None and not (run_dir / "optuna.journal").exists():
        return []
    storage = tuning.open_storage(spec.storage, run_dir)
    existing = tuning.study_names(storage)
    if not any(tuning.study_name(spec, c) in existing for c in expand(spec)):
        return []
    rows = []
    for configuration in expand(spec):
        if tuning.study_name(spec, configuration) not in existing:  # not started yet
            rows.append({"configuration": configuration.name, **tuning.counts([]),
                         "best": math.nan, "finals": f"0/{spec.final.seeds}",
                         "range_edge": ""})
            continue
        trials, finals = records(storage, spec, configuration)
        best = tuning.best_trial(trials, tuning.objective_direction(spec, configuration))
        f = tuning.counts(finals)
        beyond = not trials and tuning.horizon_gate(storage, spec, configuration) == tuning.BEYOND
        rows.append({"configuration": configuration.name, **tuning.counts(trials),
                     "best": best.value if best is not None and best.value is not None
                     else math.nan,
                     "finals": "beyond horizon" if beyond
                     else f"{f['complete'] + f['diverged']}/{spec.final.seeds}",
                     "range_edge": edge_of(spec, configuration, trials)})
    return rows
