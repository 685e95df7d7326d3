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
    """The two factors of the decay per step at one probe, beside the measured decay (in
    decades per step; see ``factors``). ``path``: the derivation's path, e.g. ``W_hh, tanh'``
    or ``gate f``."""

    step: int
    path: str
    w_log10_norm: float
    w_log10_radius: float
    act_log10: float
    act_nonzero: float
    predicted: float
    measured: float


@dataclass
class Diagnostics:
    """All diagnostics of a run (``TrainResult.diagnostics``), as tidy tables."""

    profiles: list[ProfileRow] = field(default_factory=list)
    summaries: list[SummaryRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    spectra: list[SpectrumRow] = field(default_factory=list)
    saturation: list[SaturationRow] = field(default_factory=list)
    factors: list[FactorRow] = field(default_factory=list)
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

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table as a list of plain dicts (``steps`` as a one-row table)."""
        return {
            "profiles": _dicts(self.profiles),
            "summaries": _dicts(self.summaries),
            "groups": _dicts(self.groups),
            "spectra": _dicts(self.spectra),
            "saturation": _dicts(self.saturation),
            "factors": _dicts(self.factors),
            "steps": [asdict(self.steps)] if self.steps is not None else [],
        }


def _dicts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
