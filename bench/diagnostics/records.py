"""What the diagnostics return: tidy rows (small frozen dataclasses) gathered in ``Diagnostics``.

Every row carries the training ``step`` it was measured at (0 = initialisation; the last
probe carries ``steps_done``, after the final update). ``Diagnostics.tables()`` turns the rows
into lists of plain dicts, ready for a tracker or ``pandas.DataFrame``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.diagnostics.steps import StepSummary


@dataclass(frozen=True)
class ProfileRow:
    """One point of a per-time-step profile.

    ``kind``: ``h`` = mean_b ||dL/dh_t||, ``c`` = mean_b ||dL/dc_t|| (LSTM), ``bound`` =
    mean_b of the per-example theory bound (rnn / irnn); ``h_memory`` and ``bound_memory``:
    the same for the task's memory loss (copy: the recall's). ``t`` runs 1..T.
    """

    step: int
    t: int
    norm: float
    kind: str


@dataclass(frozen=True)
class SummaryRow:
    """Summary of one profile (``kind`` h or c) at one probe; see ``summaries``."""

    step: int
    kind: str
    log10_ratio: float
    decay_rate: float
    horizon: float
    flag: str
    loss: float  # the task loss on the probe batch


@dataclass(frozen=True)
class GroupRow:
    """Gradient norm of one parameter group.

    ``source``: ``probe`` = gradient of the loss on the fixed probe batch (every probe);
    ``train`` = the training step's raw gradient before clipping, penalty included (probes
    during training only); its groups add up to ``TrainResult.grad_norm[step]``.
    """

    step: int
    group: str
    norm: float
    source: str


@dataclass(frozen=True)
class SpectrumRow:
    """Spectral norm and radius of one gate block of ``W_hh``."""

    step: int
    block: str
    spectral_norm: float
    spectral_radius: float


@dataclass(frozen=True)
class SaturationRow:
    """One saturation measure of one block of units; see ``saturation``."""

    step: int
    block: str
    measure: str
    value: float


@dataclass(frozen=True)
class FactorRow:
    """The exact split of the decay at one probe, summarised over the steps (see ``factors``;
    decades per step, log10).

    ``path``: the split's paths, e.g. ``W_hh, tanh'`` or ``carry f, hidden W_hh``; ``split``:
    the record's (``plain``, ``lstm``, ``gru``, ``none``); ``available``: whether the split
    was made, else ``reason`` says why and the split's numbers are NaN. ``fprime_log10``,
    ``w_hh_log10`` (plain cells) and ``step_log10_ratio``: the means over the steps of the
    per-step rows (``FactorStepRow``), ``fprime_log10 + w_hh_log10 = step_log10_ratio``;
    ``slope``: the least-squares slope of ``log10 ||dL/dh_t||`` against the lag (the
    profile's ``decay_rate``); ``carry_share`` (gated cells): the mean over the steps.
    ``steps_used``: steps with a value (of T - 1); ``dropped``: (sequence, step) pairs left
    out for a norm 0 or not finite; ``injected_steps``: steps whose earlier state the loss
    also reads directly; ``residual``: the largest relative gap between the split and
    autograd's gradient. ``fprime_all_units`` (plain cells): the mean ``log10 f'`` over every
    unit, step and sequence, a typical f' and not the one on the gradient's path.
    """

    step: int
    path: str
    split: str
    available: bool
    reason: str
    fprime_log10: float
    w_hh_log10: float
    step_log10_ratio: float
    slope: float
    carry_share: float
    steps_used: int
    dropped: int
    injected_steps: int
    residual: float
    fprime_all_units: float


@dataclass(frozen=True)
class FactorStepRow:
    """One backward step t (2..T: from the state at t to the state at t - 1) at one probe;
    see ``factors``.

    ``fprime_log10``, ``w_hh_log10`` (plain cells), ``step_log10_ratio`` and
    ``carry_share`` (gated cells): means over the ``sequences`` kept of per-sequence values.
    The norms are means over every sequence: ``received_norm`` (the gradient the step
    receives: ``dL/dh_t``; LSTM ``(dL/dh_t, f_(t+1) dL/dc_(t+1))``), ``propagated_norm`` (its
    part on the state at t - 1), ``injected_norm`` (the loss's direct read of h_(t-1), kept
    apart), ``carry_norm`` and ``hidden_norm`` (gated cells: the two paths). NaN where a
    column does not apply to the cell.
    """

    step: int
    t: int
    fprime_log10: float
    w_hh_log10: float
    step_log10_ratio: float
    carry_share: float
    received_norm: float
    propagated_norm: float
    injected_norm: float
    carry_norm: float
    hidden_norm: float
    sequences: int


@dataclass
class Diagnostics:
    """All diagnostics of a run (``TrainResult.diagnostics``), as tidy tables."""

    profiles: list[ProfileRow] = field(default_factory=list)
    summaries: list[SummaryRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    spectra: list[SpectrumRow] = field(default_factory=list)
    saturation: list[SaturationRow] = field(default_factory=list)
    factors: list[FactorRow] = field(default_factory=list)
    factor_steps: list[FactorStepRow] = field(default_factory=list)
    steps: StepSummary | None = None  # the cheap per-step quantities, summarised

    @property
    def probe_steps(self) -> list[int]:
        """The training steps at which the probe batch was measured, in order."""
        return sorted({row.step for row in self.summaries})

    def extend(self, other: Diagnostics) -> None:
        """Append the rows of ``other`` (e.g. one more probe) to these."""
        self.profiles.extend(other.profiles)
        self.summaries.extend(other.summaries)
        self.groups.extend(other.groups)
        self.spectra.extend(other.spectra)
        self.saturation.extend(other.saturation)
        self.factors.extend(other.factors)
        self.factor_steps.extend(other.factor_steps)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table as a list of plain dicts (``steps`` as a one-row table)."""
        return {
            "profiles": _dicts(self.profiles),
            "summaries": _dicts(self.summaries),
            "groups": _dicts(self.groups),
            "spectra": _dicts(self.spectra),
            "saturation": _dicts(self.saturation),
            "factors": _dicts(self.factors),
            "factor_steps": _dicts(self.factor_steps),
            "steps": [asdict(self.steps)] if self.steps is not None else [],
        }


def _dicts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
