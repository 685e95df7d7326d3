"""Hyperparameter importances of the tuning studies, for the report."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bench.tuning.studies import study_names

IMPORTANCE_EVALUATOR = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
# PED-ANOVA compares the best trials (its top 10% quantile, at least two; Optuna's docs advise
# five) with the rest: with fewer complete trials than this, the top is two draws out of a
# handful and the shares it gives are noise, so none is shown.
IMPORTANCE_MIN_TRIALS = 10


def param_importances(storage: BaseStorage, names: Sequence[str], *,
                      min_trials: int = IMPORTANCE_MIN_TRIALS
                      ) -> dict[str, dict[str, float] | str]:
    """Hyperparameter importance of each named study, or why there is none.

    Evaluator: PED-ANOVA (``IMPORTANCE_EVALUATOR``, Optuna 5's default) on the complete
    trials. A study with fewer than ``min_trials`` complete trials ("too few trials"), or a
    single tuned parameter, gets a one-line reason instead of numbers.
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
            out[name] = f"too few trials ({len(complete)} complete, {min_trials} needed)"
        elif len({p for t in complete for p in t.params}) < 2:
            out[name] = "a single tuned parameter"
        else:
            out[name] = _importances(study)
    return out


def _importances(study: optuna.Study) -> dict[str, float] | str:
    # Here, not at the top: optuna.importance pulls in scipy, scikit-learn and pandas
    # (seconds), which every worker importing bench.tuning would pay for nothing.
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        except Exception as err:  # degenerate values (all equal, NaN): say so
            return f"not computable ({type(err).__name__})"
    return {k: float(v) for k, v in found.items()}
