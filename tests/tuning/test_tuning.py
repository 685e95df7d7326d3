"""Tuning: sampler seeding, halving rungs, claims, telling, recovery; reading a suite."""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from bench import config, tuning
from bench.outcomes import MLFLOW_STATUS, Outcome
from bench.run.suite import board_row, end_orphan_runs
from bench.train import TrainResult


def _first_draws(spec: config.SuiteSpec, configuration: config.Configuration,
                 trials: int) -> list[float]:
    """log10 lr of the first random draw of each trial number's sampler (as a worker asks)."""
    draws = []
    for salt in range(trials):
        study = optuna.create_study(sampler=tuning.make_sampler(spec, configuration, salt))
        trial = study.ask()
        draws.append(math.log10(trial.suggest_float("lr", 1e-3, 3e-2, log=True)))
    return draws


def test_sampler_seeds_are_hashed_not_a_progression() -> None:
    spec = config.load("classic")
    configurations = [c for c in config.expand(spec)  # one per task variant and model
                      if (c.regularization, c.clipping) == ("none", "none")]
    seeds = [[tuning.sampler_seed(spec, c, salt) for salt in range(20)] for c in configurations]
    flat = [s for row in seeds for s in row]
    assert len(set(flat)) == len(flat) and all(0 <= s < 2**31 for s in flat)
    for row in seeds:  # no constant step from one trial to the next
        assert len({b - a for a, b in zip(row, row[1:], strict=False)}) == len(row) - 1
    assert statistics.pstdev(flat) > 0.25 * 2**31  # spread over the range (uniform: 0.29)
    other = config.load("classic", {"set": ["seed=1"]})
    assert tuning.sampler_seed(other, configurations[0], 0) != seeds[0][0]


def test_configurations_that_differ_in_remedies_draw_the_same_rates_and_seeds(
        tmp_path: Path) -> None:
    """Common random numbers: trial k of every remedy of a model gets the same start-up
    learning rate and the same training seed, so remedies are compared on equal draws."""
    spec = config.load("clipping-sgd", {"set": ["tuning.sampler=random"]})
    storage = tuning.open_storage(None, tmp_path)
    by_clipping: dict[str, list[tuple[float, int]]] = {}
    rnn = [c for c in config.expand(spec) if c.model == "rnn"]
    tuning.create_studies(storage, spec, rnn)
    for configuration in rnn:
        claims = [tuning.claim(storage, spec, configuration).claim for _ in range(3)]
        by_clipping[configuration.clipping] = [(c.params["lr"], c.seed) for c in claims]
    assert len(by_clipping) == 4 and all(v == by_clipping["none"]
                                         for v in by_clipping.values())
    assert len({lr for lr, _ in by_clipping["none"]}) == 3  # trials still differ
    irnn = next(c for c in config.expand(spec) if c.model == "irnn")
    assert tuning.trial_seed(spec, irnn, 0) != by_clipping["none"][0][1]  # models do not


@pytest.mark.filterwarnings("ignore")
def test_start_up_trials_spread_over_the_search_range() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = config.load("default")
    draws = _first_draws(spec, config.expand(spec)[0], 12)
    assert max(draws) - min(draws) > 0.7  # of the 1.48 decades searched


def test_halving_rungs_start_near_a_ninth_on_evaluation_steps() -> None:
    spec = config.load("default", {"set": ["training.steps=300", "training.eval_every=50"]})
    assert tuning.halving_rungs(spec) == [50, 150]
    spec = config.load("default", {"set": ["training.steps=1500", "training.eval_every=100"]})
    assert tuning.halving_rungs(spec) == [200, 600]
    spec = config.load("default", {"set": ["training.steps=20", "training.eval_every=10"]})
    assert tuning.halving_rungs(spec) == [10]


# ------------------------------------------------------------------------------ claims


def _expected_trial_seed(suite_seed: int, variant: str, model: str, number: int) -> int:
    """The documented rule, written out here: the first 4 bytes (little-endian) of the
    SHA-256 of ``<suite seed>/<task variant>/<model>/trial/<number>``, modulo 2**31."""
    digest = hashlib.sha256(f"{suite_seed}/{variant}/{model}/trial/{number}".encode())
    return int.from_bytes(digest.digest()[:4], "little") % 2**31


def _smoke(*sets: str) -> tuple[config.SuiteSpec, config.Configuration]:
    spec = config.load("smoke", {"set": list(sets)})
    return spec, config.expand(spec)[1]  # adding-T10/rnn/none/norm: lr and clip searched


def _result(status: str = "completed", loss: float = 0.25, test: bool = True) -> TrainResult:
    return TrainResult(status, steps_done=20, val={"loss": loss, "mse": loss},
                       test={"loss": loss, "mse": loss} if test else {}, solved=False)


def test_a_claim_is_plain_data_and_tell_keeps_metric_and_direction(tmp_path: Path) -> None:
    spec, configuration = _smoke()
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    claim = tuning.claim(storage, spec, configuration).claim
    assert claim is not None and (claim.role, claim.number) == ("trial", 0)
    assert claim.seed == _expected_trial_seed(spec.seed, "adding-T10", "rnn", 0) != spec.seed
    assert claim.study_name == tuning.study_name(spec, configuration)
    assert set(claim.params) == {"lr", "clip"} and not claim.final
    should_stop = tuning.pruning_callback(claim)
    assert should_stop(10, {"loss": 0.5}) is False  # too early for the median pruner
    assert should_stop(20, {"loss": math.nan}) is False  # not reported
    tuning.started(claim, "run-1")
    with tuning.heartbeat(claim):  # a journal file: no heartbeat, nothing to do
        pass
    result = _result(test=False)  # a tuning trial's: validation only
    assert tuning.tell(claim, result, metric="mse", direction="minimize") == Outcome.COMPLETE
    [record] = tuning.trial_records(storage, spec, configuration)
    assert (record.outcome, record.value, record.last_report) == ("complete", 0.25, 0.5)
    assert dict(record.params) == claim.params
    assert {k: record.attrs[k] for k in ("metric", "direction", "mlflow_run_id", "seed")} == {
        "metric": "mse", "direction": "minimize", "mlflow_run_id": "run-1", "seed": claim.seed}
    assert "test" not in record.attrs and "solved" not in record.attrs


def test_each_trial_has_its_own_seed_and_a_retry_keeps_it(tmp_path: Path) -> None:
    spec, configuration = _smoke("tuning.trials=3")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    claims = [tuning.claim(storage, spec, configuration).claim for _ in range(2)]
    seeds = [c.seed for c in claims if c is not None]
    assert len(set(seeds)) == 2 and seeds == [_expected_trial_seed(spec.seed, "adding-T10",
                                                                   "rnn", n) for n in (0, 1)]
    other = next(c for c in config.expand(spec) if c.model != configuration.model)
    assert tuning.trial_seed(spec, other, 0) != seeds[0]  # per task variant and model
    assert tuning.trial_seed(config.load("smoke", {"set": ["seed=1"]}), configuration, 0) \
        != seeds[0]  # and per suite seed
    tuning.tell(claims[0], _result(test=False), metric="mse", direction="minimize")
    tuning.fail(claims[1], Outcome.INTERRUPTED)
    tuning.recover(storage, spec, [configuration], all_running=True)
    retry = tuning.claim(storage, spec, configuration).claim
    assert retry is not None and retry.number == 2 and retry.seed == seeds[1]


def test_the_objective_can_be_the_tasks_validation_metric(tmp_path: Path) -> None:
    spec, configuration = _smoke("tuning.objective=val_metric", "tuning.trials=2")
    copy = next(c for c in config.expand(spec) if c.task == "copy")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [copy])
    claims = [tuning.claim(storage, spec, copy).claim for _ in range(2)]
    assert all(c is not None and c.objective == "recall_acc" for c in claims)
    for claim, acc in zip(claims, (0.9, 0.3), strict=True):
        result = TrainResult("completed", steps_done=20, val={"loss": 1.0, "recall_acc": acc})
        tuning.tell(claim, result, metric="recall_acc", direction="maximize")
    trials = tuning.trial_records(storage, spec, copy)
    assert [t.value for t in trials] == [0.9, 0.3]
    best = tuning.best_trial(trials, tuning.objective_direction(spec, copy))
    assert best is not None and best.number == 0  # the higher recall, the task's direction
    final = tuning.claim(storage, spec, copy)
    assert final.queued is not None and final.queued.number == 0


def test_final_seeds_are_claimed_with_the_best_parameters(tmp_path: Path) -> None:
    spec, configuration = _smoke("final.seeds=2")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    claims = [tuning.claim(storage, spec, configuration).claim for _ in range(2)]
    assert tuning.claim(storage, spec, configuration) == tuning.Attempt(pending=True)
    for claim, loss in zip(claims, (0.3, 0.2), strict=True):
        assert claim is not None
        tuning.tell(claim, _result(loss=loss, test=False), metric="mse", direction="minimize")
    attempt = tuning.claim(storage, spec, configuration)
    final = attempt.claim
    assert attempt.queued is not None and attempt.queued.number == 1
    assert final is not None and final.final and final.params == claims[1].params
    assert final.seed == tuning.final_seeds(spec)[0] == spec.seed + 1000
    assert tuning.pruning_callback(final)(20, {"loss": 9.0}) is False  # never pruned
    tuning.tell(final, _result("diverged"), metric="mse", direction="minimize")
    second = tuning.claim(storage, spec, configuration)
    assert second.claim is not None and second.claim.seed == spec.seed + 1001
    assert second.queued is None  # queued once
    outcomes = [t.outcome for t in tuning.trial_records(storage, spec, configuration, True)]
    assert outcomes == ["diverged", "running"]


def test_a_seed_queued_twice_runs_once_though_its_first_copy_has_not_read_it(
        tmp_path: Path) -> None:
    """Two machines queue the same final seeds. Workers pop the first copy of each and have
    not suggested their seed yet when another worker pops the second copies: those are
    dropped, not run a second time."""
    spec, configuration = _smoke("final.seeds=2")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    claims = [tuning.claim(storage, spec, configuration).claim for _ in range(2)]
    for claim, loss in zip(claims, (0.3, 0.2), strict=True):
        assert claim is not None
        tuning.tell(claim, _result(loss=loss, test=False), metric="mse", direction="minimize")
    final = tuning.load_study(storage, spec, configuration, final=True)
    for _ in range(2):  # each machine saw the seeds missing
        tuning.enqueue_finals(final, claims[1].params, tuning.final_seeds(spec), best_number=1)
    popped = [final.ask() for _ in range(2)]  # the first copies, seeds not suggested yet
    assert all(not t.params for t in popped)
    attempt = tuning.claim(storage, spec, configuration)
    assert attempt.claim is None and attempt.pending
    outcomes = [t.outcome for t in tuning.trial_records(storage, spec, configuration, True)]
    assert outcomes == ["running", "running", "over_budget", "over_budget"]


def test_a_failed_claim_is_neither_counted_nor_run_again(tmp_path: Path) -> None:
    spec, configuration = _smoke()
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    failed = tuning.claim(storage, spec, configuration).claim
    interrupted = tuning.claim(storage, spec, configuration).claim
    assert failed is not None and interrupted is not None
    tuning.fail(failed, Outcome.FAILED)
    tuning.fail(interrupted, Outcome.INTERRUPTED)
    trials = tuning.trial_records(storage, spec, configuration)
    assert [t.outcome for t in trials] == ["failed", "interrupted", "waiting"]  # queued at once
    found = tuning.recover(storage, spec, [configuration], all_running=True)
    assert found == {"interrupted": 0, "requeued": 0}
    assert tuning.used_budget(trials) == 1 and tuning.counts(trials)["failed"] == 1
    retry = tuning.claim(storage, spec, configuration).claim
    assert retry is not None and retry.params == interrupted.params  # the same parameters


def test_recovery_fails_a_stale_trial_and_keeps_a_fresh_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an RDB storage (here sqlite), a claim writes a first heartbeat at once; recovery
    fails only the trials whose last heartbeat is older than the grace period."""
    monkeypatch.setattr(tuning.storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tuning.storage, "GRACE_S", 2)
    spec, configuration = _smoke()
    storage = tuning.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    stale = tuning.claim(storage, spec, configuration).claim
    time.sleep(3.5)  # its worker died right after claiming: no heartbeat since
    fresh = tuning.claim(storage, spec, configuration).claim
    assert stale is not None and fresh is not None
    found = tuning.recover(storage, spec, [configuration], all_running=False)
    assert found == {"interrupted": 1, "requeued": 1}
    outcomes = {t.number: t.outcome for t in tuning.trial_records(storage, spec, configuration)}
    assert outcomes == {stale.number: "interrupted", fresh.number: "running", 2: "waiting"}


def test_outcomes_map_train_results_and_mlflow_statuses() -> None:
    assert [Outcome.of(_result(s)) for s in ("completed", "stopped", "diverged")] == [
        Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED]
    assert set(MLFLOW_STATUS) == set(Outcome)
    assert MLFLOW_STATUS[Outcome.INTERRUPTED] == "KILLED"
    assert MLFLOW_STATUS[Outcome.DIVERGED] == MLFLOW_STATUS[Outcome.FAILED] == "FAILED"
    assert f"{Outcome.PRUNED}" == "pruned" and Outcome.parse("running") is None


# ------------------------------------------------------------------------------ reading a suite


def test_a_leaderboard_row_from_trial_records() -> None:
    _, configuration = _smoke()
    acc = {"metric": "acc", "direction": "maximize"}
    finals = [tuning.TrialRecord(0, "complete", 0.1, {}, {**acc, "test": {"acc": 0.9},
                                                          "solved": True, "solved_at": 100}),
              tuning.TrialRecord(1, "complete", 0.1, {}, {**acc, "test": {"acc": 0.7}}),
              tuning.TrialRecord(2, "diverged", None, {}, {**acc, "test": {"acc": 0.2},
                                                           "test_from": "trivial"}),
              tuning.TrialRecord(3, "running")]
    trials = [tuning.TrialRecord(0, "complete", 0.2), tuning.TrialRecord(1, "pruned"),
              tuning.TrialRecord(2, "interrupted")]
    row = board_row(configuration, trials, finals)
    assert (row["metric"], row["direction"], row["seeds"]) == ("acc", "maximize", 3)
    # The diverged seed counts with the trivial predictor's accuracy: never dropped.
    assert row["mean"] == pytest.approx(0.6) and row["std"] == pytest.approx(0.3606, abs=1e-4)
    assert row["steps_to_solve"] == 100
    assert row["solved_rate"] == pytest.approx(1 / 3)
    assert row["diverged_rate"] == pytest.approx(1 / 3)
    assert (row["complete"], row["pruned"], row["diverged"], row["running"]) == (1, 1, 0, 0)
    empty = board_row(configuration, [], [])
    assert (empty["metric"], empty["direction"], empty["seeds"]) == ("", "", 0)
    assert math.isnan(empty["mean"]) and math.isnan(empty["solved_rate"])


class _Tracker:
    """The part of ``tracking.Tracker`` that ``end_orphan_runs`` uses, in memory."""

    def __init__(self, runs: dict[str, tuple[str, int]]) -> None:
        self.runs = [SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(
            tags={"study": study, "trial_number": str(number)}))
            for run_id, (study, number) in runs.items()]
        self.tags: dict[str, dict] = {}
        self.status: dict[str, str] = {}

    def find_runs(self, filter_string: str) -> list:
        return self.runs

    def set_tags(self, run_id: str, tags: dict) -> None:
        self.tags[run_id] = dict(tags)

    def end_run(self, run_id: str, status: str) -> None:
        self.status[run_id] = status


def test_orphan_runs_end_with_their_trials_outcome() -> None:
    tracker = _Tracker({"done": ("s", 0), "bad": ("s", 1), "live": ("s", 2), "lost": ("s", 3),
                        "gone": ("other", 0)})
    outcomes = {("s", 0): "pruned", ("s", 1): "failed", ("s", 2): "running",
                ("s", 3): "over_budget"}
    assert end_orphan_runs(tracker, outcomes) == 4
    assert tracker.status == {"done": "FINISHED", "bad": "FAILED", "lost": "KILLED",
                              "gone": "KILLED"}
    assert tracker.tags["done"] == {"state": "pruned", "tracking": "incomplete"}
    assert tracker.tags["bad"] == {"state": "failed"}
    assert tracker.tags["gone"] == {"state": "interrupted"}


def test_a_finished_trials_run_is_left_open_while_its_worker_may_still_send_it() -> None:
    """With the trials' workers known (recovery while others work): a finished trial's
    open run is ended only when its worker is gone from this host; an interrupted trial's
    run is ended whoever ran it."""
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    tracker = _Tracker({"sending": ("s", 0), "orphan": ("s", 1), "elsewhere": ("s", 2),
                        "killed": ("s", 3)})
    outcomes = {("s", 0): "complete", ("s", 1): "complete", ("s", 2): "pruned",
                ("s", 3): "interrupted"}
    workers = {("s", 0): f"{here}:{os.getpid()}", ("s", 1): f"{here}:{dead.pid}",
               ("s", 2): "another-host:1", ("s", 3): f"{here}:{os.getpid()}"}
    assert end_orphan_runs(tracker, outcomes, workers=workers) == 2
    assert tracker.status == {"orphan": "FINISHED", "killed": "KILLED"}
    assert tracker.tags["orphan"] == {"state": "complete", "tracking": "incomplete"}


def test_a_suite_job_takes_the_tasks_budget_and_reads_the_test_split_only_when_final() -> None:
    from bench.run.job import suite_job

    spec = config.load("smoke", {"set": ["tasks.copy.steps=50", "training.warmup_steps=5",
                                         "training.stop_when_solved=true"]})
    copy, adding = (next(c for c in config.expand(spec) if c.task == name)
                    for name in ("copy", "adding"))
    trial = suite_job(spec, copy, {"lr": 1e-3}, seed=7)
    final = suite_job(spec, copy, {"lr": 1e-3}, seed=1000, final=True)
    assert (trial.train.steps, trial.train.test, final.train.test) == (50, False, True)
    assert suite_job(spec, adding, {"lr": 1e-3}, seed=7).train.steps == spec.training.steps
    assert trial.train.warmup_steps == 5 and trial.train.stop_when_solved
    assert not final.train.stop_when_solved  # a final seed trains its whole budget
    assert trial.train.diverge_factor == spec.training.diverge_factor == 10.0
    # The pruner's rungs follow the task's budget.
    halving = config.load("smoke", {"set": ["tasks.copy.steps=900", "training.eval_every=10"]})
    assert tuning.halving_rungs(halving, 900) == [100, 300]
    assert tuning.halving_rungs(halving) == [10]


# ------------------------------------------------------------------------------ resuming


def _run_tuning(storage, spec, configuration, losses) -> None:
    for loss in losses:
        claim = tuning.claim(storage, spec, configuration).claim
        assert claim is not None and claim.role == "trial"
        tuning.tell(claim, _result(loss=loss), metric="mse", direction="minimize")


def _run_finals(storage, spec, configuration) -> list[tuning.Claim]:
    done = []
    while (attempt := tuning.claim(storage, spec, configuration)).claim is not None:
        assert attempt.claim.final
        tuning.tell(attempt.claim, _result(), metric="mse", direction="minimize")
        done.append(attempt.claim)
    assert not attempt.pending  # nothing left, nothing to wait for
    return done


def test_more_trials_that_find_better_parameters_run_the_finals_again(tmp_path: Path) -> None:
    spec, configuration = _smoke("tuning.trials=2", "final.seeds=1")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    _run_tuning(storage, spec, configuration, (0.3, 0.2))
    [old] = _run_finals(storage, spec, configuration)
    more, _ = _smoke("tuning.trials=3", "final.seeds=2")  # resumed: one more trial, one seed
    assert tuning.meaning_changes(storage, more, [configuration]) == []
    _run_tuning(storage, more, configuration, (0.1,))  # better than trial 1
    new = _run_finals(storage, more, configuration)
    trials = tuning.trial_records(storage, more, configuration)
    assert [c.seed for c in new] == [1000, 1001] and all(c.params == trials[2].params
                                                          for c in new)
    finals = tuning.trial_records(storage, more, configuration, final=True)
    current = tuning.current_finals(trials, finals)
    assert sorted(t.number for t in current) == [c.number for c in new]
    assert old.number not in {t.number for t in current}  # superseded, kept in the storage
    assert tuning.finals_done(current, more.final.seeds)


def test_more_seeds_alone_are_scheduled(tmp_path: Path) -> None:
    spec, configuration = _smoke("tuning.trials=1", "final.seeds=1")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    _run_tuning(storage, spec, configuration, (0.3,))
    assert [c.seed for c in _run_finals(storage, spec, configuration)] == [1000]
    more, _ = _smoke("tuning.trials=1", "final.seeds=3")
    assert [c.seed for c in _run_finals(storage, more, configuration)] == [1001, 1002]


def test_a_change_of_meaning_is_found_key_by_key(tmp_path: Path) -> None:
    spec, configuration = _smoke()
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    budgets, _ = _smoke("tuning.trials=9", "final.seeds=4", "tuning.sampler=random",
                        "device=auto")
    assert tuning.meaning_changes(storage, budgets, [configuration]) == []
    changed, _ = _smoke("training.steps=40", "search.lr.high=0.5", "tuning.pruner=none")
    found = tuning.meaning_changes(storage, changed, [configuration])
    assert sorted(found) == [("budget", 20, 40), ("search.lr.high", 0.01, 0.5),
                             ("tuning.pruner", "median", "none")]
    line = config.describe_changes("smoke", found)
    assert "\n" not in line and "budget was 20, now 40" in line and "--set name=" in line


def test_heartbeats_are_read_through_the_study_wrapper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study loaded from an RDB storage holds Optuna's caching wrapper: the heartbeat is
    still written at claim time, and a fresh trial is not taken as stale."""
    monkeypatch.setattr(tuning.storage, "GRACE_S", 30)
    spec, configuration = _smoke()
    rdb = tuning.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path)
    wrapper = optuna.storages.get_storage(rdb)
    assert type(wrapper) is not type(rdb)
    tuning.create_studies(rdb, spec, [configuration])
    claim = tuning.claim(wrapper, spec, configuration).claim
    assert claim is not None and claim._trial_id is not None  # first heartbeat written
    study = tuning.load_study(wrapper, spec, configuration)
    assert tuning.fail_stale(wrapper, study, all_running=False) == []
    assert [t.outcome for t in tuning.trial_records(rdb, spec, configuration)] == ["running"]
    journal = tuning.open_storage(None, tmp_path / "journal")
    assert not tuning.storage._heartbeats(journal) and tuning.storage._heartbeats(wrapper)


def test_a_trial_taken_over_meanwhile_is_not_told_twice(tmp_path: Path) -> None:
    """A worker that stalled past the grace period finds its trial interrupted and queued
    again by another: telling it raises TrialTaken (one line), and the retry is intact."""
    spec, configuration = _smoke()
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    claim = tuning.claim(storage, spec, configuration).claim
    assert claim is not None
    tuning.recover(storage, spec, [configuration], all_running=True)  # "stale": taken
    with pytest.raises(tuning.TrialTaken, match=r"trial 0 of .* was taken over"):
        tuning.tell(claim, _result(), metric="mse", direction="minimize")
    outcomes = [t.outcome for t in tuning.trial_records(storage, spec, configuration)]
    assert outcomes == ["interrupted", "waiting"]


def _solved(loss: float = 0.001) -> TrainResult:
    result = _result(loss=loss)
    result.val_solved = True  # the gate reads validation: the test metrics say unsolved
    return result


def test_a_horizon_sweep_waits_for_the_shorter_t_and_stops_where_nothing_solved(
        tmp_path: Path) -> None:
    spec = config.load("smoke", {"set": ["tasks.adding.seq_len=[5,10,20]", "models=[lstm]",
                                         "regularization=[none]", "clipping=[none]",
                                         "tuning.trials=1", "final.seeds=2",
                                         "tuning.horizon=true"]})
    t5, t10, t20 = [c for c in config.expand(spec) if c.task == "adding"]
    assert (config.shorter(spec, t5), config.shorter(spec, t10), config.shorter(spec, t20)) == (
        None, t5, t10)
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [t5, t10, t20])
    for longer in (t10, t20):  # nothing may start before T=5 has its final seeds
        assert tuning.claim(storage, spec, longer) == tuning.Attempt(pending=True)
    _run_tuning(storage, spec, t5, (0.01,))
    first = tuning.claim(storage, spec, t5).claim
    assert first is not None
    tuning.tell(first, _solved(), metric="mse", direction="minimize")  # one seed of two solved
    assert tuning.horizon_gate(storage, spec, t10) == tuning.WAIT  # the other still to run
    _run_finals(storage, spec, t5)
    assert tuning.horizon_gate(storage, spec, t10) == tuning.OPEN
    assert tuning.horizon_gate(storage, spec, t20) == tuning.WAIT
    _run_tuning(storage, spec, t10, (0.2,))
    _run_finals(storage, spec, t10)  # neither seed solves T=10
    assert tuning.claim(storage, spec, t20) == tuning.Attempt(pending=False, beyond=True)
    assert tuning.trial_records(storage, spec, t20) == []  # nothing ran beyond the horizon
    without = config.load("smoke", {"set": ["tasks.adding.seq_len=[5,10,20]"]})
    assert config.shorter(without, config.expand(without)[-1]) is None  # off by default
    assert "horizon" not in without.to_dict()["tuning"]  # the hash of other suites is kept


def test_the_grid_sampler_runs_every_point_once_and_resumes(tmp_path: Path) -> None:
    sets = ("tuning.sampler=grid", "tuning.trials=4", "final.seeds=1",
            "search.lr={low: 1.0e-3, high: 1.0, log: true, grid: 4}",
            "search.clip={choices: [1.0]}", "search.l2={choices: [1.0e-4]}")
    spec, configuration = _smoke(*sets)
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    first = tuning.claim(storage, spec, configuration).claim
    assert first is not None
    tuning.tell(first, _result(test=False), metric="mse", direction="minimize")
    running = tuning.claim(storage, spec, configuration).claim  # its process is killed
    assert running is not None
    tuning.recover(storage, spec, [configuration], all_running=True)  # the command resumed
    again, _ = _smoke(*sets)  # a new process: a new sampler
    claims = [tuning.claim(storage, again, configuration).claim for _ in range(3)]
    assert all(c is not None and c.role == "trial" for c in claims)
    assert claims[0].params == running.params  # the interrupted point runs again first
    for claim in claims:
        tuning.tell(claim, _result(test=False), metric="mse", direction="minimize")
    done = [t for t in tuning.trial_records(storage, again, configuration)
            if t.outcome == Outcome.COMPLETE]
    assert sorted(t.params["lr"] for t in done) == [1e-3, 1e-2, 0.1, 1.0]  # each point once
    assert len({t.attrs["seed"] for t in done}) == 4
    final = tuning.claim(storage, again, configuration).claim
    assert final is not None and final.final  # the budget is the grid: then the final seed


@pytest.mark.parametrize("test", ["absent", "agrees", "contradicts"])
def test_the_horizon_gate_never_reads_a_test_metric(tmp_path: Path, test: str) -> None:
    """The same validation gives the same gate, whatever the final seeds' test metrics say
    (absent, agreeing or contradicting it)."""
    spec = config.load("smoke", {"set": ["tasks.adding.seq_len=[5,10]", "models=[lstm]",
                                         "regularization=[none]", "clipping=[none]",
                                         "tuning.trials=1", "final.seeds=1",
                                         "tuning.horizon=true"]})
    gates = []
    for val_solved in (True, False):
        t5, t10 = [c for c in config.expand(spec) if c.task == "adding"]
        storage = tuning.open_storage(None, tmp_path / str(val_solved))
        tuning.create_studies(storage, spec, [t5, t10])
        _run_tuning(storage, spec, t5, (0.01,))
        final = tuning.claim(storage, spec, t5).claim
        assert final is not None and final.final
        result = _result(test=test != "absent")
        result.val_solved = val_solved
        result.solved = val_solved if test == "agrees" else not val_solved
        tuning.tell(final, result, metric="mse", direction="minimize")
        gates.append(tuning.horizon_gate(storage, spec, t10))
    assert gates == [tuning.OPEN, tuning.BEYOND]


def test_importance_needs_ten_complete_trials() -> None:
    storage = optuna.storages.InMemoryStorage()
    for name, trials in (("few", 9), ("enough", 10)):
        study = optuna.create_study(study_name=name, storage=storage,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True)
                       + t.suggest_float("clip", 0.1, 1.0) / 100, n_trials=trials)
    found = tuning.param_importances(storage, ["few", "enough", "missing"])
    assert found["few"] == "too few trials (9 complete, 10 needed)"
    enough = found["enough"]
    assert isinstance(enough, dict) and set(enough) == {"lr", "clip"}
    assert sum(enough.values()) == pytest.approx(1.0)
    assert found["missing"] == "no such study in the Optuna storage"


def test_a_tasks_own_budget_is_in_the_resume_check(tmp_path: Path) -> None:
    spec, _ = _smoke("tasks.copy.steps=50")
    copy = next(c for c in config.expand(spec) if c.task == "copy")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [copy])
    recorded = tuning.load_study(storage, spec, copy).user_attrs["meaning"]
    assert recorded["budget"] == 50  # the steps its runs train, as recorded with the study

    def changes(resumed: config.SuiteSpec) -> list[tuple[str, object, object]]:
        cells = [c for c in config.expand(resumed) if c == copy]  # its own budget
        return tuning.meaning_changes(storage, resumed, cells)

    assert changes(_smoke("tasks.copy.steps=80")[0]) == [("budget", 50, 80)]
    # training.steps does not reach a task with its own steps: no change of meaning.
    assert changes(_smoke("tasks.copy.steps=50", "training.steps=40")[0]) == []
    # --steps is every run's budget, the task's own included.
    flag = config.load("smoke", {"set": ["tasks.copy.steps=50"], "steps": 30})
    assert changes(flag) == [("budget", 50, 30)]


def test_a_key_an_old_record_lacks_reads_as_its_old_value() -> None:
    spec, configuration = _smoke()
    now = config.meaning(spec, configuration)
    # Made before the budget, the evaluation interval and the divergence factor were
    # recorded: training.steps stands in for the budget, the factor reads as its default.
    old = {k: v for k, v in now.items() if k not in ("budget", "training.eval_every")}
    assert "training.diverge_factor" not in now  # at its default: left out, as in old records
    assert config.meaning_changes(old, now) == []
    longer, _ = _smoke("training.steps=40")
    assert config.meaning_changes(old, config.meaning(longer, configuration)) == [
        ("training.steps", 20, 40)]
    looser, _ = _smoke("training.diverge_factor=100", "training.eval_every=5")
    assert config.meaning_changes(old, config.meaning(looser, configuration)) == [
        ("training.diverge_factor", 10.0, 100.0)]
    assert sorted(config.meaning_changes(now, config.meaning(looser, configuration))) == [
        ("training.diverge_factor", 10.0, 100.0), ("training.eval_every", 10, 5)]


def test_the_objective_is_capped_at_the_trivial_predictors_and_the_measure_kept(
        tmp_path: Path) -> None:
    spec, configuration = _smoke("tuning.trials=2")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    for loss in (5.0, 0.05):  # worse than predicting the mean, then better
        claim = tuning.claim(storage, spec, configuration).claim
        assert claim is not None
        result = _result(loss=loss, test=False)
        result.baseline_val = {"loss": 0.2, "mse": 0.2}
        tuning.tell(claim, result, metric="mse", direction="minimize")
    worse, better = tuning.trial_records(storage, spec, configuration)
    assert (worse.value, worse.attrs["value_uncapped"], worse.attrs["trivial"]) == (0.2, 5.0, 0.2)
    assert (better.value, better.attrs["value_uncapped"]) == (0.05, 0.05)


def test_a_solved_trial_is_not_better_for_having_stopped_early(tmp_path: Path) -> None:
    """With ``stop_when_solved`` a trial that met the solved rule is worth its objective at
    the evaluation that first met it, whether it stopped there or ran on."""
    spec, configuration = _smoke("tuning.trials=2", "training.stop_when_solved=true")
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    evals = [{"step": 10.0, "loss": 0.5, "mse": 0.5}, {"step": 20.0, "loss": 0.009, "mse": 0.009}]
    for done, last in ((20, 0.008), (60, 0.0001)):  # stopped at once / ran on and improved
        claim = tuning.claim(storage, spec, configuration).claim
        assert claim is not None and claim.by_solve
        rows = [*evals, {"step": float(done), "loss": last, "mse": last}]
        result = TrainResult("completed", steps_done=done, evals=rows, solved_at=20,
                             val={"loss": last, "mse": last})
        tuning.tell(claim, result, metric="mse", direction="minimize")
    assert [t.value for t in tuning.trial_records(storage, spec, configuration)] == [0.009,
                                                                                   0.009]
