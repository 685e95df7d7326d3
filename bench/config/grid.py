"""The grid: the configurations of a suite, and the search space of each."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.config.fields import registry_name
from bench.config.schema import SuiteSpec
from bench.config.search import BASE_SEARCH, SearchParam
from bench.config.sections import TASK_STEPS
from bench.registry import remedy


@dataclass(frozen=True)
class Configuration:
    """One cell of the grid: a task at one sequence length x model x remedies.

    `task_params` are the parameters to build the task with (a single ``seq_len``); they
    follow from task and seq_len within a suite, so they take no part in equality.
    """

    task: str
    seq_len: int | None  # None for har (fixed 128-step windows)
    task_params: dict[str, Any] = field(compare=False)
    model: str
    regularization: str
    clipping: str
    steps: int | None = field(default=None, compare=False)  # tasks.<name>.steps, if given

    def budget(self, spec: SuiteSpec) -> int:
        """Training steps of a run: the task's ``steps``, else ``training.steps``."""
        return self.steps or spec.training.steps

    @property
    def variant(self) -> str:
        """The task at its T: ``adding-T100``, or ``har`` for a task without T."""
        return self.task if self.seq_len is None else f"{self.task}-T{self.seq_len}"

    @property
    def name(self) -> str:
        """E.g. ``adding-T100/lstm/l2/norm`` or ``har/gru/none/none``."""
        return f"{self.variant}/{self.model}/{self.regularization}/{self.clipping}"

    def tags(self) -> dict[str, str]:
        """The cell's coordinates as strings (for run tags)."""
        return {
            "task": self.task,
            "seq_len": "" if self.seq_len is None else str(self.seq_len),
            "model": self.model,
            "regularization": self.regularization,
            "clipping": self.clipping,
        }


def _task_variants(params: Mapping[str, Any]) -> list[tuple[int | None, dict[str, Any]]]:
    """(T, the task's build parameters) per T; ``steps`` is the budget, not a parameter."""
    params = {k: v for k, v in copy.deepcopy(dict(params)).items() if k != TASK_STEPS}
    if "seq_len" not in params:
        return [(None, params)]
    return [(t, {**copy.deepcopy(params), "seq_len": t}) for t in params["seq_len"]]


def expand(spec: SuiteSpec) -> list[Configuration]:
    """Every configuration of the suite, ordered by task, T, model, regularization, clipping.

    Plugins appear under their records' names (``np-rnn``, not ``my_models:NP_RNN``).
    """
    return [
        Configuration(registry_name("tasks", task), seq_len, params,
                      registry_name("models", model), registry_name("regularization", reg),
                      registry_name("clipping", clip), task_params.get(TASK_STEPS))
        for task, task_params in spec.tasks
        for seq_len, params in _task_variants(task_params)
        for model in spec.models
        for reg in spec.regularization
        for clip in spec.clipping
    ]


def shorter(spec: SuiteSpec, configuration: Configuration) -> Configuration | None:
    """With ``tuning.horizon``: the same model and remedies at the task's next shorter T,
    which a configuration waits for (and is left out when none of its final seeds solved
    it); None for the shortest T, a task without T, or without ``tuning.horizon``."""
    if not spec.tuning.horizon or configuration.seq_len is None:
        return None
    same = [c for c in expand(spec) if (c.task, c.model, c.regularization, c.clipping) == (
        configuration.task, configuration.model, configuration.regularization,
        configuration.clipping) and c.seq_len is not None and c.seq_len < configuration.seq_len]
    return max(same, key=lambda c: c.seq_len or 0, default=None)


def search_space(spec: SuiteSpec, configuration: Configuration) -> dict[str, SearchParam]:
    """The tuned parameters of one configuration, each with its range for the
    configuration's model and task (``SearchParam.at``).

    ``lr`` always; a remedy's parameters (``l2``, ``clip``, ...) only where the configuration
    has that remedy; the extras (batch_size, param_budget, hidden_size) whenever the config
    has them.
    """
    used = set(BASE_SEARCH)
    for axis in ("regularization", "clipping"):
        found = remedy(getattr(configuration, axis), axis)
        used.update(found.search if found else ())
    # the shared parameters first: configurations that differ only in their remedies then
    # draw the same learning rates for the same trial (``tuning.sampler_seed``)
    names = sorted((n for n in spec.search if n in used), key=lambda n: n not in BASE_SEARCH)
    return {name: spec.search[name].at(configuration.task, configuration.model)
            for name in names}
