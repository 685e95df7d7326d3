"""One probe: every probe-step quantity of a model on a fixed batch, as tidy rows.

A probe runs the unrolled twin forward and one ``torch.autograd.grad`` on the probe batch
(nothing is accumulated into ``.grad``, no random numbers are drawn, the model's mode is left
as it is), then reads off:

- the profiles ``||dL/dh_t||`` (and ``||dL/dc_t||`` for the LSTM) and their summaries; for a
  task whose loss is mostly steps that need no memory (copy: blanks), also the profile of the
  part that does (``memory_loss``, kinds ``h_memory`` and ``bound_memory``);
- the theory bound for the plain RNNs (``bound``);
- the probe-batch gradient norm per parameter group;
- the spectral norm and radius of each gate block of ``W_hh``;
- the saturation of the units;
- the exact split of every backward step (``factors``): the f' and W_hh factors of a plain
  cell, the carry and hidden paths of a gated one, per step and summarised, beside the
  profile's slope.
"""

from __future__ import annotations

import torch

from bench.diagnostics.bound import recurrent_gain, theory_bound
from bench.diagnostics.factors import split_factors
from bench.diagnostics.grad_norms import group_grad_norms
from bench.diagnostics.profiles import LossFn, ProbeGrads, example_norms, probe_gradients
from bench.diagnostics.records import (
    Diagnostics,
    GroupRow,
    ProfileRow,
    SaturationRow,
    SpectrumRow,
    SummaryRow,
)
from bench.diagnostics.saturation import saturation_fractions
from bench.diagnostics.spectra import recurrent_spectra
from bench.diagnostics.summaries import summarize_profile
from bench.models import RecurrentModel

MEMORY_SUFFIX = "_memory"  # profile kinds of the memory loss: h_memory, bound_memory


def _profiles(model: RecurrentModel, grads: ProbeGrads, suffix: str = ""
              ) -> dict[str, list[float]]:
    """kind -> profile over t = 1..T: ``h``, ``c`` (LSTM) and ``bound`` (plain RNNs), each
    kind with ``suffix`` (``_memory``: of the memory loss)."""
    out = {"h": example_norms(grads.h).mean(dim=0).tolist()}
    if grads.c is not None and not suffix:
        out["c"] = example_norms(grads.c).mean(dim=0).tolist()
    gain = recurrent_gain(model)
    if gain is not None:
        out["bound"] = theory_bound(example_norms(grads.direct), gain).tolist()
    return {f"{kind}{suffix}": norms for kind, norms in out.items()}


def probe(
    model: RecurrentModel, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, *, step: int = 0,
    memory_loss: LossFn | None = None,
) -> Diagnostics:
    """Every probe-step quantity of ``model`` on the batch ``(x, y)``, rows tagged ``step``.

    Args:
        model: the model, in whatever mode it is in; left untouched.
        loss_fn: the task's loss, ``task.loss(output, target)``.
        x: probe inputs (B, T, I).
        y: probe targets.
        step: the training step to tag the rows with.
        memory_loss: the part of the task's loss that needs the long memory (copy: the
            recall), whose profile is added as ``h_memory`` (and ``bound_memory``).
    """
    grads = probe_gradients(model, loss_fn, x, y)
    out = Diagnostics()
    profiles, losses = _profiles(model, grads), {"h": grads.loss}
    if memory_loss is not None:
        memory = probe_gradients(model, memory_loss, x, y)
        profiles.update(_profiles(model, memory, MEMORY_SUFFIX))
        losses[f"h{MEMORY_SUFFIX}"] = memory.loss
    for kind, norms in profiles.items():
        out.profiles.extend(ProfileRow(step, t, v, kind) for t, v in enumerate(norms, start=1))
        if not kind.startswith("bound"):
            s = summarize_profile(norms)
            out.summaries.append(SummaryRow(step, kind, s.log10_ratio, s.decay_rate, s.horizon,
                                            s.flag, losses.get(kind, grads.loss)))
    groups = group_grad_norms(grads.params.items())
    out.groups.extend(GroupRow(step, g, v, "probe") for g, v in groups.items())
    spectra = recurrent_spectra(model)
    out.spectra.extend(SpectrumRow(step, *row) for row in spectra)
    rows = saturation_fractions(model.info.activations, grads.activations)
    out.saturation.extend(SaturationRow(step, *row) for row in rows)
    slope = next(row.decay_rate for row in out.summaries if row.kind == "h")
    factors, factor_steps = split_factors(model, grads, slope, step)
    out.factors.append(factors)
    out.factor_steps.extend(factor_steps)
    return out
