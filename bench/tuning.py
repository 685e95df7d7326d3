"""Optuna: the only module that imports it. Studies, the search space, claims, recovery.

One study per configuration (``<suite>/<configuration>``) holds the tuning trials, all on
the same budget; a second study per configuration (``.../final``) holds the re-runs of the
best parameters with fresh seeds, one enqueued trial per seed. Workers claim work through
the storage, so any number of processes (on any number of machines, with an RDB storage)
can share a suite. Trial outcomes:

- COMPLETE: trained to the end; value = final validation loss.
- PRUNED: stopped early by the pruner.
- FAIL with ``outcome=diverged``: a non-finite loss or gradient (counts in the budget).
- FAIL with ``outcome=interrupted``: the worker died or was stopped; retried with the same
  parameters (``retry_of``) and not counted.
- FAIL with ``outcome=over_budget``: claimed in a race after the budget was used up; dropped.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from bench.config import Configuration, SearchParam, SuiteSpec, mask_secrets

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# RDB storages: a RUNNING trial without a heartbeat for GRACE_S seconds is stale.
HEARTBEAT_S = int(os.environ.get("GRADBENCH_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("GRADBENCH_GRACE_S", "40"))
COUNTED = ("complete", "pruned", "diverged", "running", "waiting")


def open_storage(url: str | None, run_dir: Path) -> BaseStorage:
    """The Optuna storage: a journal file under ``run_dir`` by default, else ``url``.

    RDB URLs (``postgresql://``, ``sqlite:///``, ``mysql://``) get heartbeats so that a
    trial whose worker was killed is detected and retried.
    """
    if url is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(run_dir / "optuna.journal")))
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    for attempt in range(3):  # fresh databases: two processes may create the tables at once
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              engine_kwargs={"pool_pre_ping": True})
        except ModuleNotFoundError as err:
            raise StorageUnavailable(
                f"storage {mask_secrets(url)}: its database driver is not installed "
                f"({err.name}); for PostgreSQL: pip install 'rnn-gradbench[postgres]'") from err
        except Exception as err:  # sqlalchemy errors: unreachable, bad credentials, races
            if "already exists" in str(err) and attempt < 2:
                continue
            raise StorageUnavailable(f"storage {mask_secrets(url)} unreachable: "
                                     f"{_first_line(err)}") from err
    raise AssertionError("unreachable")


class StorageUnavailable(RuntimeError):
    """The Optuna storage cannot be opened."""


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return mask_secrets(lines[0] if lines else type(err).__name__)[:300]


FINAL_SUFFIX = "/final"


def study_name(spec: SuiteSpec, configuration: Configuration, final: bool = False) -> str:
    name = f"{spec.name}/{configuration.name}"
    return f"{name}{FINAL_SUFFIX}" if final else name


def make_sampler(
    spec: SuiteSpec, configuration: Configuration, salt: int = 0
) -> optuna.samplers.BaseSampler:
    """Seeded per configuration and per trial number (``salt``).

    A study object is loaded afresh for every claim, possibly in another process, so the
    sampler cannot carry its random state from one trial to the next: seeding it with the
    number of trials already in the study makes each draw different and the sequence
    reproducible (claims are serialised).
    """
    seed = sampler_seed(spec, configuration, salt)
    if spec.tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(2, spec.tuning.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def sampler_seed(spec: SuiteSpec, configuration: Configuration, salt: int) -> int:
    """A hash of suite seed, configuration and trial number, in [0, 2**31).

    Not an arithmetic progression over trials: the Mersenne Twister behind Optuna's samplers
    is seeded badly by nearby integers (NumPy advises against it), and the first draws of
    such seeds were measurably correlated here (r = 0.08-0.17 between the learning rates of
    the first two start-up trials, against 0.00-0.13 with hashed seeds).
    """
    key = f"{spec.seed}/{configuration.name}/{salt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31)


def make_pruner(spec: SuiteSpec) -> optuna.pruners.BasePruner:
    """The pruner on the validation loss, reported every ``eval_every`` steps.

    ``median``: stop a trial that is worse than the median of the earlier trials at the same
    step, after two start-up trials and two evaluations. ``halving``: asynchronous successive
    halving with rungs at ``halving_rungs(spec)`` (reduction factor 3): at each rung a trial
    goes on only if it is in the best third of the trials that reached it (the best so far
    while fewer than three have), so most trials stop at the first rung and the budget goes to
    more trials. ``hyperband`` runs several halving brackets; ``none`` never stops a trial.
    """
    if spec.tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    if spec.tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.training.eval_every,
                                              max_resource=spec.training.steps)
    if spec.tuning.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=halving_rungs(spec)[0], reduction_factor=HALVING_FACTOR)
    return optuna.pruners.MedianPruner(n_startup_trials=2,
                                       n_warmup_steps=2 * spec.training.eval_every)


HALVING_FACTOR = 3


def halving_rungs(spec: SuiteSpec) -> list[int]:
    """Steps at which successive halving compares trials: the first near 1/9 of the run.

    The first rung is rounded up to a whole number of evaluations (the pruner sees the loss
    only when it is reported), and later rungs are 3x apart, below the last step.
    """
    every, steps = spec.training.eval_every, spec.training.steps
    first = max(every, -(-steps // HALVING_FACTOR**2 // every) * every)
    rungs = [first]
    while rungs[-1] * HALVING_FACTOR < steps:
        rungs.append(rungs[-1] * HALVING_FACTOR)
    return rungs


def load_study(
    storage: BaseStorage, spec: SuiteSpec, configuration: Configuration, final: bool = False
) -> optuna.Study:
    return optuna.load_study(study_name=study_name(spec, configuration, final), storage=storage,
                             sampler=make_sampler(spec, configuration), pruner=make_pruner(spec))


def create_studies(
    storage: BaseStorage, spec: SuiteSpec, configurations: Sequence[Configuration]
) -> None:
    """Create every study once, before any worker starts (creation races otherwise)."""
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    for configuration in configurations:
        for final in (False, True):
            name = study_name(spec, configuration, final)
            if name in existing:
                continue
            try:
                study = optuna.create_study(storage=storage, study_name=name,
                                            direction="minimize")
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another process made it meanwhile
            study.set_user_attr("configuration", configuration.name)
            study.set_user_attr("role", "final" if final else "tuning")


def suggest(trial: Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The search space from the config, turned into ``trial.suggest_*`` here and only here."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.choices is not None:
            params[name] = trial.suggest_categorical(name, list(p.choices))
        elif p.kind == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low), float(p.high), log=p.log)
    return params


# ------------------------------------------------------------------------------ accounting


def outcome(trial: FrozenTrial) -> str:
    """complete | pruned | diverged | interrupted | over_budget | running | waiting."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    return str(trial.user_attrs.get("outcome", "interrupted"))


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """How many trials ended each way."""
    out = dict.fromkeys(("complete", "pruned", "diverged", "interrupted", "over_budget",
                         "running", "waiting"), 0)
    for t in trials:
        out[outcome(t)] = out.get(outcome(t), 0) + 1
    return out


def used_budget(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count against the budget: finished for real, running or queued."""
    return sum(1 for t in trials if outcome(t) in COUNTED)


@dataclass(frozen=True)
class Claim:
    """One unit of work a worker has claimed: a tuning trial or a final seed."""

    study: optuna.Study
    trial: Trial
    final: bool


def claim_tuning(
    study: optuna.Study, spec: SuiteSpec, configuration: Configuration
) -> Claim | None:
    """Ask for a tuning trial if the budget allows (retries come first)."""
    budget = spec.tuning.trials
    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    if not waiting and used_budget(trials) >= budget:
        return None
    study.sampler = make_sampler(spec, configuration, salt=len(trials))
    trial = study.ask()
    _beat(study, trial)
    if _duplicate_retry(study, trial):
        return None
    if "retry_of" not in trial.user_attrs and "fixed" not in trial.user_attrs:
        before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if used_budget(before) >= budget:  # lost a race with another worker
            trial.set_user_attr("outcome", "over_budget")
            study.tell(trial, state=TrialState.FAIL)
            return None
    return Claim(study, trial, final=False)


def _beat(study: optuna.Study, trial: Trial) -> None:
    """A first heartbeat at once: a trial killed before it would stay RUNNING forever."""
    storage = study._storage
    if isinstance(storage, RDBStorage):
        storage.record_heartbeat(trial._trial_id)


def _drop(study: optuna.Study, trial: Trial) -> None:
    trial.set_user_attr("outcome", "over_budget")
    study.tell(trial, state=TrialState.FAIL)


def _duplicate_retry(study: optuna.Study, trial: Trial) -> bool:
    """Two workers may queue the same interrupted trial again: run only the first copy."""
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None:
        return False
    twins = [t for t in study.get_trials(deepcopy=False)
             if t.user_attrs.get("retry_of") == retry_of and t.number < trial.number
             and outcome(t) != "over_budget"]
    if twins:
        _drop(study, trial)
        return True
    return False


def trials_begun(storage: BaseStorage) -> dict[str, int]:
    """Trials asked for so far, per tuning study's name: a count per study, no trial loaded.

    (``optuna.get_all_study_summaries`` would load every trial of every study: on a shared
    database, at every claim, that grows with the suite.)
    """
    return {s.study_name: storage.get_n_trials(s._study_id)
            for s in storage.get_all_studies() if not s.study_name.endswith(FINAL_SUFFIX)}


def tuning_done(trials: Sequence[FrozenTrial], budget: int) -> bool:
    """The budget is spent and nothing is still running or queued."""
    c = counts(trials)
    return c["complete"] + c["pruned"] + c["diverged"] >= budget and not (
        c["running"] or c["waiting"])


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """Lowest final validation loss among complete trials; else the best pruned one."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
    if complete:
        return min(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if pruned:
        return min(pruned, key=lambda t: t.intermediate_values[max(t.intermediate_values)])
    return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def final_seeds(spec: SuiteSpec) -> list[int]:
    """Fresh training seeds for the re-runs, disjoint from the tuning seed."""
    return [spec.seed + 1000 + i for i in range(spec.final.seeds)]


def enqueue_finals(final: optuna.Study, params: Mapping[str, Any], seeds: Sequence[int],
                   best_number: int) -> None:
    """One queued trial per seed, once (a seed already queued or run is skipped)."""
    for seed in seeds:
        final.enqueue_trial({"seed": seed}, user_attrs={"params": dict(params), "fixed": True,
                                                       "best_trial": best_number},
                            skip_if_exists=True)


def claim_final(final: optuna.Study) -> Claim | None:
    """Pop a queued final seed, if any; a seed some other trial already holds is dropped."""
    trials = final.get_trials(deepcopy=False)
    if not any(t.state == TrialState.WAITING for t in trials):
        return None
    trial = final.ask()
    _beat(final, trial)
    if trial.number not in {t.number for t in trials if t.state == TrialState.WAITING}:
        _drop(final, trial)  # the queue was emptied under us
        return None
    seed = trial.suggest_int("seed", 0, 2**31 - 1)
    if _seed_taken(final, trial, seed):
        _drop(final, trial)
        return None
    return Claim(final, trial, final=True)


def _seed_taken(final: optuna.Study, trial: Trial, seed: int) -> bool:
    """Another trial has run this seed, or runs it and claimed it first."""
    for t in final.get_trials(deepcopy=False):
        if t.number == trial.number or t.params.get("seed") != seed:
            continue
        state = outcome(t)
        if state in ("complete", "diverged") or (state == "running" and t.number < trial.number):
            return True
    return False


def finals_done(trials: Sequence[FrozenTrial], n_seeds: int) -> bool:
    c = counts(trials)
    return c["complete"] + c["diverged"] >= n_seeds and not (c["running"] or c["waiting"])


# ------------------------------------------------------------------------------ recovery


def fail_stale(study: optuna.Study, *, all_running: bool) -> list[FrozenTrial]:
    """Mark trials whose worker is gone as interrupted; returns them.

    With an RDB storage the heartbeat tells which RUNNING trials are stale. A journal file
    has no heartbeat: the caller holds the suite's run lock, so every RUNNING trial found
    at start-up (``all_running``) belongs to a process that no longer exists.
    """
    storage = study._storage
    if isinstance(storage, RDBStorage) and not all_running:
        optuna.storages.fail_stale_trials(study)
        return []
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:
        storage.set_trial_user_attr(t._trial_id, "outcome", "interrupted")
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return stale


def trial_outcomes(storage: BaseStorage) -> dict[tuple[str, int], str]:
    """(study name, trial number) -> outcome, for every trial in the storage."""
    out = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            out[(summary.study_name, t.number)] = outcome(t)
    return out


def requeue_interrupted(study: optuna.Study) -> list[FrozenTrial]:
    """Queue once more, with the same parameters, every interrupted trial not yet retried."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        if outcome(t) != "interrupted" or t.number in retried or not t.params:
            continue
        attrs = {k: v for k, v in t.user_attrs.items() if k in ("params", "fixed", "best_trial")}
        study.enqueue_trial(dict(t.params), user_attrs={**attrs, "retry_of": t.number})
        queued.append(t)
    return queued


# ------------------------------------------------------------------------------ reporting

IMPORTANCE_EVALUATOR = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"


def param_importances(storage: BaseStorage, names: Sequence[str], *, min_trials: int = 2
                      ) -> dict[str, dict[str, float] | str]:
    """Hyperparameter importance of each named study, or why there is none.

    Evaluator: PED-ANOVA (``IMPORTANCE_EVALUATOR``, Optuna 5's default) on the complete
    trials. A study with fewer than ``min_trials`` complete trials, or a single tuned
    parameter, gets a one-line reason instead of numbers.
    """
    import warnings

    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    out: dict[str, dict[str, float] | str] = {}
    for name in names:
        if name not in existing:
            out[name] = "no such study in the Optuna storage"
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < min_trials:
            out[name] = f"not enough trials ({len(complete)} complete)"
        elif len({p for t in complete for p in t.params}) < 2:
            out[name] = "a single tuned parameter"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
                except Exception as err:  # degenerate values (all equal, NaN): say so
                    out[name] = f"not computable ({type(err).__name__})"
                    continue
            out[name] = {k: float(v) for k, v in found.items()}
    return out
