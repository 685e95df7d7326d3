"""Optuna: the only package that imports it. Studies, the search space, claims, recovery.

One study per configuration (``<suite>/<configuration>``) holds the tuning trials, all on
the same budget; a second study per configuration (``.../final``) holds the re-runs of the
best parameters with fresh seeds, one enqueued trial per seed (when a resumed suite's extra
trials find better parameters, their seeds are queued and the earlier ones are superseded:
``current_finals``). The tuning study records the settings behind its results
(``config.meaning``); ``meaning_changes`` compares them on resume. Workers claim work through
the storage, so any number of processes (on any number of machines, with an RDB storage)
can share a suite. A worker sees plain data only: a ``Claim`` (role, number, params, seed),
a pruning callback, ``tell`` and ``fail``; status and leaderboards read ``TrialRecord``s.
Trial outcomes (``bench.outcomes.Outcome``, mapped to trial states in ``trial._STATES``):

- COMPLETE: trained to the end; value = the objective (``tuning.objective``): the final
  validation loss, or the task's validation metric in the task's direction, capped at the
  trivial predictor's (``value_uncapped``: as measured; with ``training.stop_when_solved``,
  a solved trial's is read where it first met the solved rule: ``trial.objective``).
- PRUNED: stopped early by the pruner.
- FAIL with ``outcome=diverged``: a non-finite loss or gradient, or a final validation loss
  above ``training.diverge_factor`` times the trivial predictor's (counts in the budget).
- FAIL with ``outcome=interrupted``: the worker died or was stopped; retried with the same
  parameters (``retry_of``) and not counted.
- FAIL with ``outcome=failed``: an unexpected error while training; not counted, not retried.
- FAIL with ``outcome=over_budget``: claimed in a race after the budget was used up; dropped.

The modules, from the storage up: ``journal`` (the journal file: a torn tail repaired, a
damaged line named), ``storage`` (opening it, retries, heartbeats), ``studies``
(names, samplers, pruners, creation, the search space), ``accounting`` (``TrialRecord`` and
what is counted from it), ``claims`` (``claim``), ``trial`` (a claimed trial in its worker:
heartbeat, pruning, ``tell``), ``recovery`` (dead workers' trials), ``importance`` (for the
report) and ``dashboard`` (optuna-dashboard). Callers use the names re-exported here.
"""

from bench.tuning.accounting import (
    COUNTED,
    OVER_BUDGET,
    RUNNING,
    WAITING,
    TrialRecord,
    active_trials,
    best_trial,
    counts,
    current_finals,
    final_seeds,
    finals_done,
    missing_seeds,
    outcome,
    retries_queued,
    trial_records,
    trials_begun,
    tuning_done,
    used_budget,
)
from bench.tuning.claims import (
    BEYOND,
    OPEN,
    WAIT,
    Attempt,
    Claim,
    claim,
    enqueue_finals,
    horizon_gate,
)
from bench.tuning.dashboard import (
    dashboard_links,
    dashboard_path,
    serve_dashboard,
)
from bench.tuning.importance import (
    IMPORTANCE_EVALUATOR,
    IMPORTANCE_MIN_TRIALS,
    param_importances,
)
from bench.tuning.journal import (
    journal_file,
    open_journal,
    repair_torn_tail,
)
from bench.tuning.recovery import (
    fail_stale,
    recover,
    requeue_interrupted,
    trial_ends,
    worker_gone,
)
from bench.tuning.storage import (
    GRACE_S,
    HEARTBEAT_S,
    STORAGE_RETRY_S,
    StorageUnavailable,
    configure,
    open_storage,
    retrying,
    storage_exists,
)
from bench.tuning.studies import (
    FINAL_SUFFIX,
    HALVING_FACTOR,
    create_studies,
    halving_rungs,
    load_study,
    make_pruner,
    make_sampler,
    meaning_changes,
    objective_direction,
    objective_key,
    sampler_seed,
    study_name,
    study_names,
    suggest,
    trial_seed,
)
from bench.tuning.trial import (
    TrialTaken,
    fail,
    heartbeat,
    pruning_callback,
    started,
    tell,
)

__all__ = [
    "Attempt",
    "BEYOND",
    "COUNTED",
    "Claim",
    "FINAL_SUFFIX",
    "GRACE_S",
    "HALVING_FACTOR",
    "HEARTBEAT_S",
    "IMPORTANCE_EVALUATOR",
    "IMPORTANCE_MIN_TRIALS",
    "OPEN",
    "OVER_BUDGET",
    "RUNNING",
    "STORAGE_RETRY_S",
    "StorageUnavailable",
    "TrialRecord",
    "TrialTaken",
    "WAIT",
    "WAITING",
    "active_trials",
    "best_trial",
    "claim",
    "configure",
    "counts",
    "create_studies",
    "current_finals",
    "dashboard_links",
    "dashboard_path",
    "enqueue_finals",
    "fail",
    "fail_stale",
    "final_seeds",
    "finals_done",
    "halving_rungs",
    "heartbeat",
    "horizon_gate",
    "journal_file",
    "load_study",
    "make_pruner",
    "make_sampler",
    "meaning_changes",
    "missing_seeds",
    "objective_direction",
    "objective_key",
    "open_journal",
    "open_storage",
    "outcome",
    "param_importances",
    "pruning_callback",
    "recover",
    "repair_torn_tail",
    "requeue_interrupted",
    "retries_queued",
    "retrying",
    "sampler_seed",
    "serve_dashboard",
    "started",
    "storage_exists",
    "study_name",
    "study_names",
    "suggest",
    "tell",
    "trial_ends",
    "trial_records",
    "trial_seed",
    "trials_begun",
    "tuning_done",
    "used_budget",
    "worker_gone",
]
