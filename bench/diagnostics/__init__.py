"""Gradient diagnostics: how gradients flow through time while an RNN learns.

One small module per quantity, each returning plain data:

- ``unrolled``: the unrolled twin of the fused layer (shares its parameters).
- ``profiles``: ``||dL/dh_t||`` (and ``||dL/dc_t||``), the total derivative through time.
- ``summaries``: log10 ratio, decay rate and effective horizon of a profile.
- ``bound``: the theory bound ``(gamma ||W_hh||_2)^(T - t) ||dL/dh_T||`` for the plain RNNs.
- ``grad_norms``: gradient norms per parameter group (the global norm of every step is
  the training loop's, ``bench.train.global_grad_norm``).
- ``spectra``: spectral norm and radius of each gate block of ``W_hh``.
- ``saturation``: saturated tanh units and gates, dead ReLU units.
- ``paths`` and ``factors``: the exact split of every backward step along the gradient the
  model has: the f' and W_hh factors of a plain cell (they add up to the per-step log ratio),
  the carry and hidden paths of a gated one.
- ``steps``: summary of the per-step records (clip rate, non-finite steps).
- ``schedules``: when to probe (``every``, ``log_spaced``).
- ``probing``: all probe-step quantities at once; ``observer``: ``GradientDiagnostics``, the
  training loop's hook; ``records``: the tidy rows and ``Diagnostics``.
"""

from __future__ import annotations

from bench.diagnostics.bound import recurrent_gain, theory_bound
from bench.diagnostics.factors import split_factors
from bench.diagnostics.grad_norms import group_grad_norms, parameter_group
from bench.diagnostics.observer import DEFAULT_PROBE_SIZE, GradientDiagnostics
from bench.diagnostics.paths import log10_mean_factor
from bench.diagnostics.probing import probe
from bench.diagnostics.profiles import ProbeGrads, example_norms, probe_gradients, profile
from bench.diagnostics.records import (
    Diagnostics,
    FactorRow,
    FactorStepRow,
    GroupRow,
    ProfileRow,
    SaturationRow,
    SpectrumRow,
    SummaryRow,
)
from bench.diagnostics.saturation import saturation_fractions
from bench.diagnostics.schedules import DEFAULT_SCHEDULE, Schedule, every, log_spaced, never
from bench.diagnostics.spectra import recurrent_spectra, spectral_norm, spectral_radius
from bench.diagnostics.steps import StepSummary, summarize_steps
from bench.diagnostics.summaries import ProfileSummary, summarize_profile
from bench.diagnostics.unrolled import Unrolled, unroll

__all__ = [
    "DEFAULT_PROBE_SIZE",
    "DEFAULT_SCHEDULE",
    "Diagnostics",
    "FactorRow",
    "FactorStepRow",
    "GradientDiagnostics",
    "GroupRow",
    "ProbeGrads",
    "ProfileRow",
    "ProfileSummary",
    "SaturationRow",
    "Schedule",
    "SpectrumRow",
    "StepSummary",
    "SummaryRow",
    "Unrolled",
    "every",
    "example_norms",
    "group_grad_norms",
    "log10_mean_factor",
    "log_spaced",
    "never",
    "parameter_group",
    "probe",
    "probe_gradients",
    "profile",
    "recurrent_gain",
    "recurrent_spectra",
    "saturation_fractions",
    "spectral_norm",
    "spectral_radius",
    "summarize_profile",
    "split_factors",
    "summarize_steps",
    "theory_bound",
    "unroll",
]
