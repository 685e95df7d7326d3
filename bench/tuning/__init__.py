"""Optuna: the only module that imports it. Studies, the search space, claims, recovery.

One study per configuration (``<suite>/<configuration>``) holds the tuning trials, all on
the same budget; a second study per configuration (``.../final``) holds the re-runs of the
best parameters with fresh seeds, one enqueued trial per seed (when a resumed suite's extra
trials find better parameters, their seeds are queued and the earlier ones are superseded:
``current_finals``). The tuning study records the settings behind its results
(``config.meaning``); ``meaning_changes`` compares them on resume. Workers claim work through
the storage, so any number of processes (on any number of machines, with an RDB storage)
can share a suite. A worker sees plain data only: a ``Claim`` (role, number, params, seed),
a pruning callback, ``tell`` and ``fail``; status and leaderboards read ``TrialRecord``s.
Trial outcomes (``bench.outcomes.Outcome``, mapped to trial states in ``_STATES``):

- COMPLETE: trained to the end; value = the objective (``tuning.objective``): the final
  validation loss, or the task's validation metric in the task's direction.
- PRUNED: stopped early by the pruner.
- FAIL with ``outcome=diverged``: a non-finite loss or gradient (counts in the budget).
- FAIL with ``outcome=interrupted``: the worker died or was stopped; retried with the same
  parameters (``retry_of``) and not counted.
- FAIL with ``outcome=failed``: an unexpected error while training; not counted, not retried.
- FAIL with ``outcome=over_budget``: claimed in a race after the budget was used up; dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from bench import retry
from bench.config import (
    Configuration,
    SearchParam,
    SuiteSpec,
    meaning,
    search_space,
    shorter,
)
from bench.config import meaning_changes as config_meaning_changes
from bench.errors import error_line, mask_secrets
from bench.outcomes import Outcome

if TYPE_CHECKING:
    from bench.train import TrainResult



def configure() -> None:
    """Quiet Optuna for a command line: warnings and errors only, and no notice that the
    heartbeat arguments the project relies on are experimental. Called at the entry points
    (the CLI, a worker process); idempotent."""
    if os.environ.get("GRADBENCH_VERBOSE"):  # --verbose: Optuna's notices and warnings too
        optuna.logging.set_verbosity(optuna.logging.INFO)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats are recorded here rather than by Study.optimize, which Optuna expects.
    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)

# RDB storages: a RUNNING trial without a heartbeat for GRACE_S seconds is stale.
HEARTBEAT_S = int(os.environ.get("GRADBENCH_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("GRADBENCH_GRACE_S", "40"))
# Internal bookkeeping states besides the outcomes: a trial claimed and not yet told, one
# queued (a final seed, a retry), one dropped because the budget was used up meanwhile.
RUNNING, WAITING, OVER_BUDGET = "running", "waiting", "over_budget"
COUNTED = (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED, RUNNING, WAITING)
_STATES = {Outcome.COMPLETE: TrialState.COMPLETE, Outcome.PRUNED: TrialState.PRUNED,
           Outcome.DIVERGED: TrialState.FAIL, Outcome.INTERRUPTED: TrialState.FAIL,
           Outcome.FAILED: TrialState.FAIL}
_OF_STATE = {TrialState.COMPLETE: str(Outcome.COMPLETE), TrialState.PRUNED: str(Outcome.PRUNED),
             TrialState.RUNNING: RUNNING, TrialState.WAITING: WAITING}


# ------------------------------------------------------------------------------ storage


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
            raise StorageUnavailable(_no_driver(url, err.name)) from err
        except Exception as err:  # sqlalchemy errors: unreachable, bad credentials, races
            if "already exists" in str(err) and attempt < 2:
                continue
            if "Failed to import DB access module" in str(err):
                raise StorageUnavailable(_no_driver(url, None)) from None
            raise StorageUnavailable(f"storage {mask_secrets(url)} unreachable: "
                                     f"{error_line(err)}") from err
    raise AssertionError("unreachable")


def _no_driver(url: str, module: str | None) -> str:
    """The one-line error for a database driver that is not installed, with the fix."""
    scheme = url.split("://", 1)[0]
    which = f" ({module})" if module else ""
    hint = ("pip install 'rnn-gradbench[postgres]' and name its driver in the URL: "
            "postgresql+psycopg2://..." if scheme.startswith("postgresql")
            else "install the driver the URL names, or name an installed one (scheme+driver://)")
    return f"storage {mask_secrets(url)}: the database driver of {scheme}:// is not " \
           f"installed{which}; {hint}"


class StorageUnavailable(RuntimeError):
    """The Optuna storage cannot be opened, or stayed unreachable."""


STORAGE_RETRY_S = float(os.environ.get("GRADBENCH_STORAGE_RETRY_S", "60"))
T = TypeVar("T")


def retrying(call: Callable[[], T], retry_s: float | None = None) -> T:
    """``call()``, made again with backoff while the database does not answer (a restart,
    a network blip: Optuna's StorageInternalError) for up to ``retry_s`` seconds (default
    ``GRADBENCH_STORAGE_RETRY_S``, 60), then StorageUnavailable in one line. For reads and
    claims, which are safe to repeat."""
    limit = STORAGE_RETRY_S if retry_s is None else retry_s

    def give_up(err: BaseException, attempts: int) -> BaseException:
        return StorageUnavailable(f"the Optuna storage did not answer for {limit:.0f} s: "
                                  f"{error_line(err.__cause__ or err)}")

    return retry.retrying(
        call, limit_s=limit, give_up=give_up, max_delay_s=5.0,
        transient=lambda err: isinstance(err, optuna.exceptions.StorageInternalError))


def _heartbeats(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats, as the storage itself answers: an RDB storage
    opened by ``open_storage`` does, and so does the caching wrapper that a study loaded
    from it holds (its type is not RDBStorage); a journal file does not."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


def _trial_id(storage: BaseStorage, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


# ------------------------------------------------------------------------------ studies

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


def _paired(configuration: Configuration) -> str:
    """A configuration without its remedies: the key of the random numbers it shares with
    the configurations that differ from it only in their remedies (common random numbers:
    the same start-up learning rates and the same training seeds for the same trial, so a
    difference between remedies is the remedies', not the draws')."""
    return f"{configuration.variant}/{configuration.model}"


def sampler_seed(spec: SuiteSpec, configuration: Configuration, salt: int) -> int:
    """A hash of suite seed, configuration without its remedies (``_paired``) and trial
    number, in [0, 2**31).

    Not an arithmetic progression over trials: the Mersenne Twister behind Optuna's samplers
    is seeded badly by nearby integers (NumPy advises against it), and the first draws of
    such seeds were measurably correlated here (r = 0.08-0.17 between the learning rates of
    the first two start-up trials, against 0.00-0.13 with hashed seeds).
    """
    key = f"{spec.seed}/{_paired(configuration)}/{salt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31)


def trial_seed(spec: SuiteSpec, configuration: Configuration, number: int) -> int:
    """A tuning trial's training seed (initialisation and training stream): a hash of the
    suite seed, the configuration and the trial number, so that the best of N trials is not
    the luckiest draw of one seed. A retry keeps the seed of the trial it re-runs. Shared
    by the configurations that differ only in their remedies (``_paired``)."""
    key = f"{spec.seed}/{_paired(configuration)}/trial/{number}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31)


def objective_key(spec: SuiteSpec, configuration: Configuration) -> str:
    """The validation metric tuning optimises: ``loss``, or the task's headline metric."""
    from bench.registry import TASKS

    return "loss" if spec.tuning.objective == "val_loss" else TASKS.get(configuration.task).metric


def objective_direction(spec: SuiteSpec, configuration: Configuration) -> str:
    """``minimize`` for the loss; the task record's direction for its metric."""
    from bench.registry import TASKS

    if spec.tuning.objective == "val_loss":
        return "minimize"
    return str(TASKS.get(configuration.task).direction)


def make_pruner(spec: SuiteSpec, steps: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner on the objective, reported every ``eval_every`` steps of runs of
    ``steps`` (default ``training.steps``; a task's own ``steps`` where it has them).

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
                                              max_resource=steps or spec.training.steps)
    if spec.tuning.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=halving_rungs(spec, steps)[0], reduction_factor=HALVING_FACTOR)
    return optuna.pruners.MedianPruner(n_startup_trials=2,
                                       n_warmup_steps=2 * spec.training.eval_every)


HALVING_FACTOR = 3


def halving_rungs(spec: SuiteSpec, steps: int | None = None) -> list[int]:
    """Steps at which successive halving compares trials: the first near 1/9 of the run.

    The first rung is rounded up to a whole number of evaluations (the pruner sees the loss
    only when it is reported), and later rungs are 3x apart, below the last step.
    """
    every, steps = spec.training.eval_every, steps or spec.training.steps
    first = max(every, -(-steps // HALVING_FACTOR**2 // every) * every)
    rungs = [first]
    while rungs[-1] * HALVING_FACTOR < steps:
        rungs.append(rungs[-1] * HALVING_FACTOR)
    return rungs


def load_study(
    storage: BaseStorage, spec: SuiteSpec, configuration: Configuration, final: bool = False
) -> optuna.Study:
    return optuna.load_study(study_name=study_name(spec, configuration, final), storage=storage,
                             sampler=make_sampler(spec, configuration),
                             pruner=make_pruner(spec, configuration.budget(spec)))


def create_studies(
    storage: BaseStorage, spec: SuiteSpec, configurations: Sequence[Configuration]
) -> None:
    """Create every study once, before any worker starts (creation races otherwise).

    A tuning study records the settings behind its results (``config.meaning``) and the
    suite's config hash; a study from before they were recorded gets them now."""
    existing = {s.study_name: s for s in storage.get_all_studies()}
    for configuration in configurations:
        for final in (False, True):
            name = study_name(spec, configuration, final)
            if name in existing:
                if not final and "meaning" not in existing[name].user_attrs:
                    _record_meaning(optuna.load_study(study_name=name, storage=storage),
                                    spec, configuration)
                continue
            try:
                direction = "minimize" if final else objective_direction(spec, configuration)
                study = optuna.create_study(storage=storage, study_name=name,
                                            direction=direction)
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another process made it meanwhile
            study.set_user_attr("configuration", configuration.name)
            study.set_user_attr("role", "final" if final else "tuning")
            if not final:
                _record_meaning(study, spec, configuration)


def _record_meaning(study: optuna.Study, spec: SuiteSpec, configuration: Configuration) -> None:
    study.set_user_attr("meaning", meaning(spec, configuration))
    study.set_user_attr("config_hash", spec.config_hash())


def meaning_changes(storage: BaseStorage, spec: SuiteSpec,
                    configurations: Sequence[Configuration]) -> list[tuple[str, Any, Any]]:
    """How the settings behind results already in the storage differ from ``spec``'s, for
    the configurations to run (``config.meaning_changes``; each key once); reads only."""
    recorded = {s.study_name: s.user_attrs.get("meaning") for s in storage.get_all_studies()}
    found: dict[str, tuple[str, Any, Any]] = {}
    for configuration in configurations:
        before = recorded.get(study_name(spec, configuration))
        if before:
            for change in config_meaning_changes(before, meaning(spec, configuration)):
                found.setdefault(change[0], change)
    return list(found.values())


def study_names(storage: BaseStorage) -> set[str]:
    """The names of the studies in the storage (no trial is loaded)."""
    return {s.study_name for s in storage.get_all_studies()}


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


@dataclass(frozen=True)
class TrialRecord:
    """A trial as plain data: what claims, status, progress and leaderboards read.

    ``outcome``: an ``Outcome`` value, or ``running`` | ``waiting`` | ``over_budget``.
    ``last_report``: the last validation loss reported to the pruner, if any.
    """

    number: int
    outcome: str
    value: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    last_report: float | None = None


def outcome(trial: FrozenTrial) -> str:
    """An ``Outcome`` value, or ``running`` | ``waiting`` | ``over_budget``."""
    if trial.state in _OF_STATE:
        return _OF_STATE[trial.state]
    return str(trial.user_attrs.get("outcome", Outcome.INTERRUPTED))


def _record(trial: FrozenTrial) -> TrialRecord:
    reports = trial.intermediate_values
    return TrialRecord(trial.number, outcome(trial), trial.value, trial.params, trial.user_attrs,
                       reports[max(reports)] if reports else None)


def _records(study: optuna.Study) -> list[TrialRecord]:
    return [_record(t) for t in study.get_trials(deepcopy=False)]


def trial_records(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration,
                  final: bool = False) -> list[TrialRecord]:
    """Every trial of a configuration's tuning (or ``final``) study.

    Raises:
        KeyError: no such study in the storage.
    """
    return _records(load_study(storage, spec, configuration, final))


def counts(trials: Sequence[TrialRecord]) -> dict[str, int]:
    """How many trials ended each way."""
    out = dict.fromkeys((*Outcome, OVER_BUDGET, RUNNING, WAITING), 0)
    for t in trials:
        out[t.outcome] = out.get(t.outcome, 0) + 1
    return {str(k): v for k, v in out.items()}


def used_budget(trials: Sequence[TrialRecord]) -> int:
    """Trials that count against the budget: finished for real, running or queued."""
    return sum(1 for t in trials if t.outcome in COUNTED)


def tuning_done(trials: Sequence[TrialRecord], budget: int) -> bool:
    """The budget is spent and nothing is still running or queued."""
    c = counts(trials)
    return c["complete"] + c["pruned"] + c["diverged"] >= budget and not (
        c["running"] or c["waiting"])


def finals_done(trials: Sequence[TrialRecord], n_seeds: int) -> bool:
    """Enough final seeds ended, nothing queued or running (pass ``current_finals``)."""
    c = counts(trials)
    return c["complete"] + c["diverged"] >= n_seeds and not (c["running"] or c["waiting"])


def current_finals(trials: Sequence[TrialRecord], finals: Sequence[TrialRecord],
                   direction: str = "minimize") -> list[TrialRecord]:
    """The final seeds that re-ran the current best parameters of ``trials``.

    When more tuning trials found better parameters (a suite resumed with more trials),
    the seeds that re-ran the earlier best are superseded: they are kept in the storage
    but are no longer the configuration's result, and its finals run again.
    """
    best = best_trial(trials, direction)
    if best is None:
        return []
    return [f for f in finals if _of_params(f, best.params)]


def _of_params(final: TrialRecord, params: Mapping[str, Any]) -> bool:
    return dict(final.attrs.get("params") or {}) == dict(params)


def missing_seeds(current: Sequence[TrialRecord], seeds: Sequence[int]) -> list[int]:
    """Seeds of ``seeds`` that no current final has run, runs, waits for or will retry."""
    present = {t.attrs.get("seed", t.params.get("seed")) for t in current
               if t.outcome not in (OVER_BUDGET, Outcome.FAILED)}
    return [s for s in seeds if s not in present]


def best_trial(trials: Sequence[TrialRecord], direction: str = "minimize"
               ) -> TrialRecord | None:
    """Best objective (lowest, or highest with ``maximize``) among complete trials; else
    the best pruned one by its last report."""
    sign = -1.0 if direction == "maximize" else 1.0
    complete = [t for t in trials if t.outcome == Outcome.COMPLETE and _finite(t.value)]
    if complete:
        return min(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
    pruned = [t for t in trials if t.outcome == Outcome.PRUNED and t.last_report is not None]
    if pruned:
        return min(pruned, key=lambda t: sign * float(t.last_report))  # type: ignore[arg-type]
    return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def final_seeds(spec: SuiteSpec) -> list[int]:
    """Fresh training seeds for the re-runs, disjoint from the tuning seed."""
    return [spec.seed + 1000 + i for i in range(spec.final.seeds)]


def trials_begun(storage: BaseStorage) -> dict[str, int]:
    """Trials asked for so far, per tuning study's name: a count per study, no trial loaded.

    (``optuna.get_all_study_summaries`` would load every trial of every study: on a shared
    database, at every claim, that grows with the suite. Optuna offers no public study id,
    hence the one private read of this module.)
    """
    return {s.study_name: storage.get_n_trials(s._study_id)
            for s in storage.get_all_studies() if not s.study_name.endswith(FINAL_SUFFIX)}


def retries_queued(storage: BaseStorage) -> set[str]:
    """The tuning studies with a trial queued again (an interrupted one): counts only."""
    return {s.study_name for s in storage.get_all_studies()
            if not s.study_name.endswith(FINAL_SUFFIX)
            and storage.get_n_trials(s._study_id, state=TrialState.WAITING)}


def active_trials(storage: BaseStorage, spec: SuiteSpec,
                  configurations: Sequence[Configuration]) -> int:
    """Trials running or queued in the configurations' studies, on any machine."""
    states = (TrialState.RUNNING, TrialState.WAITING)
    names = {study_name(spec, c, final) for c in configurations for final in (False, True)}
    return sum(len(storage.get_all_trials(s._study_id, deepcopy=False, states=states))
               for s in storage.get_all_studies() if s.study_name in names)


# ------------------------------------------------------------------------------ claims


@dataclass(frozen=True)
class Claim:
    """One unit of work a worker has claimed: a tuning trial or a final seed.

    A worker reads the plain attributes and hands the claim back to this module
    (``started``, ``pruning_callback``, ``heartbeat``, ``tell``, ``fail``); the Optuna
    objects behind it are this module's own.
    """

    role: str  # "trial" (tuning) | "final" (a final seed)
    number: int  # the trial's number in its study
    study_name: str
    params: dict[str, Any]  # tuned parameters (the best trial's, for a final seed)
    seed: int  # training seed: ``trial_seed`` for tuning, the queued one for a final seed
    _study: optuna.Study = field(repr=False, compare=False)
    _trial: Trial = field(repr=False, compare=False)
    _storage: BaseStorage = field(repr=False, compare=False)
    _trial_id: int | None = field(default=None, repr=False, compare=False)  # RDB only
    objective: str = "loss"  # the validation metric reported to the pruner and told

    @property
    def final(self) -> bool:
        return self.role == "final"


@dataclass(frozen=True)
class Attempt:
    """What one try to claim work in a configuration found."""

    claim: Claim | None = None
    pending: bool = True  # the configuration still has work, here or on another worker
    queued: TrialRecord | None = None  # this try queued the final seeds: the best trial
    exhausted: bool = False  # every tuning trial diverged: no final seed will run
    beyond: bool = False  # tuning.horizon: no final seed solved a shorter T; nothing runs


OPEN, WAIT, BEYOND = "open", "wait", "beyond"  # horizon gates


def horizon_gate(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> str:
    """With ``tuning.horizon``, whether a configuration may start: ``open`` (its shortest T,
    or every shorter T of the same model and remedies was solved by at least one current
    final seed), ``wait`` (the next shorter T that gates it has not finished its final
    seeds), or ``beyond`` (a shorter T was solved by none of its final seeds, or all of its
    tuning trials diverged: this T is beyond the model's horizon and is left out)."""
    chain = []
    previous = shorter(spec, configuration)
    while previous is not None:
        chain.append(previous)
        previous = shorter(spec, previous)
    for previous in reversed(chain):  # from the shortest T up
        gate = _solved_gate(storage, spec, previous)
        if gate != OPEN:
            return gate
    return OPEN


def _solved_gate(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> str:
    direction = objective_direction(spec, configuration)
    trials = trial_records(storage, spec, configuration)
    if not tuning_done(trials, spec.tuning.trials):
        return WAIT
    if best_trial(trials, direction) is None:  # every trial diverged
        return BEYOND
    finals = current_finals(trials, trial_records(storage, spec, configuration, final=True),
                            direction)
    if not finals_done(finals, spec.final.seeds):
        return WAIT
    return OPEN if any(f.attrs.get("solved") for f in finals) else BEYOND


def claim(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> Attempt:
    """The next job of a configuration: a tuning trial while the budget allows (retries
    first), then, once tuning is done, its final seeds (queued by the first try that sees
    it done). Local callers serialise claims; remote ones rely on the checks made here.
    With ``tuning.horizon`` a configuration first waits for its next shorter T
    (``horizon_gate``)."""
    gate = horizon_gate(storage, spec, configuration)
    if gate != OPEN:
        return Attempt(pending=gate == WAIT, beyond=gate == BEYOND)
    study = load_study(storage, spec, configuration)
    found = _claim_tuning(storage, study, spec, configuration)
    if found is not None:
        return Attempt(found)
    trials = _records(study)
    if not tuning_done(trials, spec.tuning.trials):
        return Attempt(pending=True)  # the last trials run elsewhere
    direction = objective_direction(spec, configuration)
    best = best_trial(trials, direction)
    if best is None:  # every trial diverged: nothing to re-run
        return Attempt(pending=False, exhausted=True)
    final = load_study(storage, spec, configuration, final=True)
    missing = missing_seeds(current_finals(trials, _records(final), direction), final_seeds(spec))
    queued = None
    if missing:  # the first time, more seeds asked for, or better parameters found
        enqueue_finals(final, best.params, missing, best.number)
        queued = best
    found = _claim_final(storage, final, best.params)
    if found is not None:
        return Attempt(found, queued=queued)
    done = finals_done(current_finals(trials, _records(final), direction), spec.final.seeds)
    return Attempt(pending=not done, queued=queued)


def _claim_tuning(storage: BaseStorage, study: optuna.Study, spec: SuiteSpec,
                  configuration: Configuration) -> Claim | None:
    """Ask for a tuning trial if the budget allows (retries come first)."""
    budget = spec.tuning.trials
    trials = _records(study)
    waiting = any(t.outcome == WAITING for t in trials)
    if not waiting and used_budget(trials) >= budget:
        return None
    study.sampler = make_sampler(spec, configuration, salt=len(trials))
    trial = study.ask()
    trial_id = _beat(storage, study, trial)
    if _duplicate_retry(study, trial):
        return None
    if "retry_of" not in trial.user_attrs and "fixed" not in trial.user_attrs:
        before = [t for t in _records(study) if t.number < trial.number]
        if used_budget(before) >= budget:  # lost a race with another worker
            _drop(study, trial)
            return None
    params = suggest(trial, search_space(spec, configuration))
    seed = trial_seed(spec, configuration, int(trial.user_attrs.get("retry_of", trial.number)))
    trial.set_user_attr("seed", seed)
    return Claim("trial", trial.number, study.study_name, params, seed,
                 study, trial, storage, trial_id, objective=objective_key(spec, configuration))


def enqueue_finals(final: optuna.Study, params: Mapping[str, Any], seeds: Sequence[int],
                   best_number: int) -> None:
    """One queued trial per seed (the caller passes the seeds the parameters lack; another
    machine queueing the same seed meanwhile is sorted out at the claim: ``_seed_taken``)."""
    for seed in seeds:
        final.enqueue_trial({"seed": seed}, user_attrs={"params": dict(params), "fixed": True,
                                                       "best_trial": best_number, "seed": seed})


def _claim_final(storage: BaseStorage, final: optuna.Study,
                 params: Mapping[str, Any]) -> Claim | None:
    """Pop a queued final seed of ``params``, if any. A seed queued for parameters that are
    no longer the best, or that some other trial already holds, is dropped."""
    waiting = {t.number for t in _records(final) if t.outcome == WAITING}
    for _ in range(len(waiting)):
        trial = final.ask()
        trial_id = _beat(storage, final, trial)
        if trial.number not in waiting:
            _drop(final, trial)  # the queue was emptied under us
            return None
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        if dict(trial.user_attrs.get("params") or {}) != dict(params) or \
                _seed_taken(final, trial.number, seed, params):
            _drop(final, trial)
            continue
        return Claim("final", trial.number, final.study_name, dict(trial.user_attrs["params"]),
                     seed, final, trial, storage, trial_id)
    return None


def _beat(storage: BaseStorage, study: optuna.Study, trial: Trial) -> int | None:
    """A first heartbeat at once (RDB storages): a trial whose worker is killed before its
    training starts would otherwise never look stale and stay RUNNING forever. Returns the
    trial's id for later heartbeats, None where the storage has none."""
    if not _heartbeats(storage):
        return None
    trial_id = _trial_id(storage, study.study_name, trial.number)
    storage.record_heartbeat(trial_id)
    return trial_id


def _drop(study: optuna.Study, trial: Trial) -> None:
    trial.set_user_attr("outcome", OVER_BUDGET)
    study.tell(trial, state=TrialState.FAIL)


def _duplicate_retry(study: optuna.Study, trial: Trial) -> bool:
    """Two workers may queue the same interrupted trial again: run only the first copy."""
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None:
        return False
    twins = [t for t in _records(study)
             if t.attrs.get("retry_of") == retry_of and t.number < trial.number
             and t.outcome != OVER_BUDGET]
    if twins:
        _drop(study, trial)
        return True
    return False


def _seed_taken(final: optuna.Study, number: int, seed: int,
                params: Mapping[str, Any]) -> bool:
    """Another trial has run this seed with these parameters, or runs it and claimed it
    first."""
    for t in _records(final):
        if t.number == number or t.params.get("seed") != seed or not _of_params(t, params):
            continue
        if t.outcome in (Outcome.COMPLETE, Outcome.DIVERGED) or (
                t.outcome == RUNNING and t.number < number):
            return True
    return False


# ------------------------------------------------------------------------------ a claimed job


def started(claim: Claim, mlflow_run_id: str) -> None:
    """Note on the trial which MLflow run records it and which process runs it
    (``host:pid``)."""
    claim._trial.set_user_attr("mlflow_run_id", mlflow_run_id)
    claim._trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")


def worker_gone(worker: str | None) -> bool:
    """Whether the process ``started`` named (``host:pid``) is known to be gone: on this
    host, with no such process. Unknown (never noted): gone; on another host: not known."""
    from bench.processes import process_alive

    if worker is None:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_alive(int(pid))


def pruning_callback(claim: Claim) -> Callable[[int, Mapping[str, float]], bool]:
    """``on_eval(step, val_metrics) -> stop?``: reports the objective (the validation loss,
    or metric) to the pruner and answers whether to prune. A final seed is never pruned,
    nor reported."""

    def should_stop(step: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(claim.objective, math.nan)
        if claim.final or not math.isfinite(value):
            return False
        claim._trial.report(float(value), step)
        return bool(claim._trial.should_prune())

    return should_stop


@contextlib.contextmanager
def heartbeat(claim: Claim) -> Iterator[None]:
    """While the claim runs, record its heartbeat every ``HEARTBEAT_S`` (RDB storages; a
    journal file has none: its suite runs under one process's run lock)."""
    storage, trial_id = claim._storage, claim._trial_id
    if trial_id is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class TrialTaken(RuntimeError):
    """The claimed trial was ended meanwhile by another process: its heartbeat went stale
    (a worker stalled for longer than ``GRACE_S``), so it was marked interrupted and queued
    again. Its result is not kept; the retry runs it."""


@contextlib.contextmanager
def _owned(claim: Claim) -> Iterator[None]:
    try:
        yield
    except optuna.exceptions.UpdateFinishedTrialError:
        raise TrialTaken(f"trial {claim.number} of {claim.study_name} was taken over (no "
                         f"heartbeat for {GRACE_S} s): its result is dropped, its retry "
                         f"runs it") from None


def tell(claim: Claim, result: TrainResult, *, metric: str, direction: str) -> Outcome:
    """Tell Optuna how the run ended: the commit point, from here the result is kept.

    The user attributes say what the leaderboard and the report need: the task's headline
    ``metric`` and its ``direction``, time and steps, the step at which the validation
    metrics first met the solved rule, and, for a final seed only (tuning trials never read
    the test split), the test metrics (a diverged seed's are the trivial predictor's:
    ``test_from``); for a diverged run, where and why.

    Raises:
        TrialTaken: another process ended the trial meanwhile (its heartbeat went stale).
    """
    with _owned(claim):
        return _tell(claim, result, metric=metric, direction=direction)


def _tell(claim: Claim, result: TrainResult, *, metric: str, direction: str) -> Outcome:
    ended, trial = Outcome.of(result), claim._trial
    trial.set_user_attr("metric", metric)
    trial.set_user_attr("direction", direction)
    trial.set_user_attr("wall_time", result.wall_time)
    trial.set_user_attr("steps_done", result.steps_done)
    if result.solved_at is not None:
        trial.set_user_attr("solved_at", result.solved_at)
    if result.test:
        trial.set_user_attr("test", {k: float(v) for k, v in result.test.items()})
        trial.set_user_attr("solved", bool(result.solved))
        trial.set_user_attr("test_from", result.test_from)
    if ended == Outcome.DIVERGED:
        trial.set_user_attr("outcome", str(ended))
        trial.set_user_attr("diverged_at", result.diverged_at)
        trial.set_user_attr("reason", result.reason)
        claim._study.tell(trial, state=_STATES[ended])
        return ended
    if ended == Outcome.COMPLETE:
        claim._study.tell(trial, float(result.val[claim.objective]))
    else:
        claim._study.tell(trial, state=_STATES[ended])
    return ended


def fail(claim: Claim, ended: Outcome) -> None:
    """End a claim that produced no result: ``interrupted`` (queued again at once, so that
    no new trial takes its place in the budget meanwhile) or ``failed``."""
    with _owned(claim):
        claim._trial.set_user_attr("outcome", str(ended))
        claim._study.tell(claim._trial, state=_STATES[ended])
    if ended == Outcome.INTERRUPTED:
        requeue_interrupted(claim._study)


# ------------------------------------------------------------------------------ recovery


def recover(storage: BaseStorage, spec: SuiteSpec, configurations: Sequence[Configuration],
            *, all_running: bool) -> dict[str, int]:
    """Mark the trials of dead workers interrupted and queue them again, in every study.

    ``all_running``: every RUNNING trial is dead (a journal file at start-up, under the
    suite's run lock). Otherwise an RDB storage's heartbeats tell which are.
    """
    found = {"interrupted": 0, "requeued": 0}
    for configuration in configurations:
        for final in (False, True):
            study = load_study(storage, spec, configuration, final)
            found["interrupted"] += len(fail_stale(storage, study, all_running=all_running))
            found["requeued"] += len(requeue_interrupted(study))
    return found


def fail_stale(storage: BaseStorage, study: optuna.Study, *, all_running: bool) -> list[int]:
    """Mark trials whose worker is gone as interrupted; returns their numbers.

    ``storage`` is the one ``open_storage`` returned: with heartbeats, a RUNNING trial is
    stale when its last heartbeat is older than ``GRACE_S``. Without (a journal file) only
    ``all_running`` can tell: the caller holds the suite's run lock, so every RUNNING trial
    found at start-up belongs to a process that no longer exists.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if all_running:
        for t in running:
            trial_id = _trial_id(storage, study.study_name, t.number)
            storage.set_trial_user_attr(trial_id, "outcome", str(Outcome.INTERRUPTED))
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        return [t.number for t in running]
    if not _heartbeats(storage) or not running:
        return []
    optuna.storages.fail_stale_trials(study)  # FAIL without an outcome: interrupted
    numbers = {t.number for t in running}
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in numbers and "outcome" not in t.user_attrs]


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue once more, with the same parameters, every interrupted trial not yet retried;
    returns their numbers."""
    trials = _records(study)
    retried = {t.attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        if t.outcome != Outcome.INTERRUPTED or t.number in retried or not t.params:
            continue
        attrs = {k: v for k, v in t.attrs.items() if k in ("params", "fixed", "best_trial", "seed")}
        study.enqueue_trial(dict(t.params), user_attrs={**attrs, "retry_of": t.number})
        queued.append(t.number)
    return queued


def trial_ends(storage: BaseStorage) -> tuple[dict[tuple[str, int], str],
                                              dict[tuple[str, int], str]]:
    """For every trial in the storage, keyed by (study name, trial number): its outcome,
    and the worker that ran it (``host:pid``, see ``started``; absent until noted)."""
    outcomes, workers = {}, {}
    for name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            outcomes[(name, t.number)] = outcome(t)
            if "worker" in t.user_attrs:
                workers[(name, t.number)] = str(t.user_attrs["worker"])
    return outcomes, workers


# ------------------------------------------------------------------------------ reporting

IMPORTANCE_EVALUATOR = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"


def param_importances(storage: BaseStorage, names: Sequence[str], *, min_trials: int = 2
                      ) -> dict[str, dict[str, float] | str]:
    """Hyperparameter importance of each named study, or why there is none.

    Evaluator: PED-ANOVA (``IMPORTANCE_EVALUATOR``, Optuna 5's default) on the complete
    trials. A study with fewer than ``min_trials`` complete trials, or a single tuned
    parameter, gets a one-line reason instead of numbers.
    """
    existing = study_names(storage)
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
            out[name] = _importances(study)
    return out


def _importances(study: optuna.Study) -> dict[str, float] | str:
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        except Exception as err:  # degenerate values (all equal, NaN): say so
            return f"not computable ({type(err).__name__})"
    return {k: float(v) for k, v in found.items()}


# ------------------------------------------------------------------------------ dashboard


def storage_exists(url: str | None, run_dir: Path) -> bool:
    """Whether the suite's storage is there to read (a journal file, or any database URL)."""
    if url is None:
        return (run_dir / "optuna.journal").exists()
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).exists()
    return True


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


def serve_dashboard(url: str | None, run_dir: Path, host: str, port: int) -> None:
    """Serve optuna-dashboard on the suite's storage until the process is stopped.

    The storage object is built here (``open_storage``) and handed to the dashboard's WSGI
    app: its own loader for journal files builds the backend with a lock of its own
    (``JournalFileOpenLock``), not the one the workers use, and takes no RDB heartbeats.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # one line per request would drown the links the command printed

    app = wsgi(open_storage(url, run_dir))
    with make_server(host, port, app, handler_class=Quiet) as server:
        server.serve_forever()
