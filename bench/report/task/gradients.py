"""One task's gradient picture: per-step gradient norms at initialisation and after
training, the gradient flow over training, the two factors of the decay, gradient-norm traces
with the clipping threshold, learning curves and the spectral radius."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from bench.names import (
    FACTOR_STEPS_TABLE,
    FACTORS_TABLE,
    GRAD_NORM,
    PROFILES_TABLE,
    SPECTRAL_RADIUS,
    STEPS_TO_SOLVE,
    VAL_LOSS,
)
from bench.report import analysis as an
from bench.report import facts, heatmaps, plots
from bench.report.formatting import number_format, plural, where
from bench.report.html import Note, Row, Table
from bench.report.task.view import TaskView


def gradients(view: TaskView) -> list[Any]:
    """Per-step gradient norms of each model's best configuration, the first / last
    ratio, and the gradient flow over training."""
    ids = view.first_runs(view.per_model["configuration"])
    profiles = view.source.tables(ids, PROFILES_TABLE)
    if profiles.empty:
        return [Note("No gradient profiles recorded for these runs.", "warn")]
    memory = bool(len(profiles)) and profiles["kind"].isin(list(an.MEMORY_KINDS)).any()
    snaps = an.profile_snapshots(profiles)
    snaps = snaps.merge(view.runs[["run_id", "model", "configuration"]], on="run_id")
    ratios = an.gradient_ratios(snaps).merge(view.runs[["run_id", "model"]], on="run_id")
    shown = ", ".join(f"{r['model']} ({r['remedy']})" for _, r in
                      view.per_model.iterrows())
    caption = (
        f"||dL/dh_t||: the norm of the total gradient of the loss with respect to the "
        f"hidden state at step t (through every later step), mean over a fixed probe "
        f"batch; best configuration of each model{where(view.longest)}: {shown}; first "
        f"final seed. {facts.read_at(view.task)} A line that falls to the left means "
        "gradients vanish on their way back (the model cannot learn dependencies that far "
        "back); a line that rises to the left means they explode; flat is what long memory "
        "needs. Dashed: the theory bound ||dL/dh_T|| (gamma ||W_hh||_2)^(T-t) for "
        f"{_and(bounded_models(view.board['model'])) or 'plain RNNs (none here)'} "
        "(gamma = 1 for tanh and ReLU); a measured line far below its bound is "
        "vanishing caused by the activation derivatives, not only by the weights. Left: "
        "at initialisation; right: after training. The y range follows the measured "
        "lines; bounds beyond it are cut off."
        + (" L here is the loss of the steps that need the long memory alone (copy: the "
           "cross-entropy of the 10 recalled symbols), not the full loss, which the blank "
           "predictions dominate." if memory else ""))
    fig = view.figure("profiles", "The vanishing / exploding picture: per-time-step "
                      "gradient norms", plots.gradient_profiles(snaps), caption, snaps, ids)
    return [fig, _ratio_table(ratios), *flow(view, profiles, ids)]


def flow(view: TaskView, profiles: pd.DataFrame, ids: Sequence[str]) -> list[Any]:
    """The gradient-flow heatmap of the best configuration of each model."""
    flow = an.gradient_flow(an.memory_profiles(profiles))
    if flow.empty or flow["step"].nunique() < 2:
        return []
    columns = ["run_id", "model", "configuration"]
    if STEPS_TO_SOLVE in view.runs:
        columns.append(STEPS_TO_SOLVE)
    flow = flow.merge(view.runs[columns], on="run_id").rename(
        columns={STEPS_TO_SOLVE: "solved_step"})
    return [view.figure(
        "flow", "Gradient flow over training", heatmaps.gradient_flow(flow),
        f"Each panel: one model's best configuration{where(view.longest)}, first final "
        f"seed. A row is one probe of the fixed probe batch (bottom: initialisation, then "
        f"every diagnostics.probe_every steps and after the last update); a cell is "
        f"log10 of ||dL/dh_t|| over ||dL/dh_T|| at that probe. Grey (0): the gradient "
        f"reaches step t undiminished; blue: it vanished on its way back (-3 = 1000 times "
        f"smaller); red: it grew. White: ||dL/dh_t|| is exactly 0 there (it underflowed: "
        f"no gradient at all reaches that step, and its log is -inf). The colour scale "
        f"stops at {heatmaps.FLOW_RANGE:g} decades either way: a cell beyond takes the end "
        f"colour, and the colour bar's triangle and '<= -{heatmaps.FLOW_RANGE:g}' (or "
        f"'>= {heatmaps.FLOW_RANGE:g}') mark it (the figure's data hold every value). "
        f"{facts.read_at(view.task)} Read upwards to see when during "
        f"training gradients start to flow back to the early steps. A black line: the "
        f"first probe after the run met the task's solved rule on the validation set "
        f"(its steps to solve).", flow, ids)]


def factors(view: TaskView) -> list[Any]:
    """The exact split of the decay: over training (beside the gradient-flow heatmap above
    it), the table per configuration, and per backward step t at initialisation and after
    training."""
    ids = view.first_runs(view.per_model["configuration"])
    return [*_factor_history(view, ids), *_factor_table(view), *_factor_steps(view, ids)]


def _factor_table(view: TaskView) -> list[Any]:
    """The split per configuration, at initialisation and after: the median run over the
    configuration's final seeds (the plain RNNs' seeds differ widely)."""
    runs = {c: ids for c in view.top["configuration"]
            if (ids := an.representative_runs(view.runs, c))}
    factors = view.source.tables([i for ids in runs.values() for i in ids], FACTORS_TABLE)
    if factors.empty or "step_log10_ratio" not in factors:
        return [Note("No exact split of the decay recorded for these runs (runs made before "
                     "diagnostics/factors.csv held it).", "warn")]
    snaps = an.factor_snapshots(factors).merge(
        view.runs[["run_id", "configuration"]], on="run_id")
    medians = an.factor_medians(snaps)
    info = view.runs.drop_duplicates("configuration").set_index("configuration")
    paths = snaps.groupby("configuration")["path"].first()
    order = facts.model_order(view.top["model"].astype(str))
    split = {}
    for configuration in runs:
        init = medians[(medians["configuration"] == configuration)
                       & (medians["when"] == "at initialisation")]
        if init.empty:
            continue
        end = medians[(medians["configuration"] == configuration)
                      & (medians["when"] == "after training")]
        split[configuration] = init.iloc[0], (end.iloc[0] if len(end) else init.iloc[0])
    rows = []
    forms = {k: number_format([v for r, e in split.values() for v in (r[k], e[k])] + (
        [v for _, e in split.values() for v in (e["slope_low"], e["slope_high"])]
        if k == "slope" else []), 3) for k in _SPLIT_COLUMNS}
    for configuration, (r, e) in split.items():
        pair = [f"{forms[k](r[k])} -> {forms[k](e[k])}" for k in _SPLIT_COLUMNS]
        if e["runs"] > 1:
            pair[3] += f" ({forms['slope'](e['slope_low'])} to {forms['slope'](e['slope_high'])})"
        model = str(info.loc[configuration, "model"])
        remedy = facts.remedy_label(info.loc[configuration, "regularization"],
                                    info.loc[configuration, "clipping"])
        rows.append([model, remedy, str(paths[configuration]), *pair, str(int(e["runs"]))])
    rows.sort(key=lambda row: (order.index(row[0]) if row[0] in order else 99, row[1]))
    return [Table(
        "The two factors of the decay per step, at initialisation -> after training",
        ["model", "remedy", "path", "f' factor", "W_hh factor",
         "per-step log ratio (= f' + W_hh)", "slope of log10 ||dL/dh_t|| (range over runs)",
         "carry share", "typical f' over all units, not on the path", "runs"], rows,
        model_column=0, keys=2,
        caption=_FACTOR_TABLE_CAPTION.format(where=where(view.longest)))] + \
        _unavailable_notes(snaps)


_SPLIT_COLUMNS = ("fprime_log10", "w_hh_log10", "step_log10_ratio", "slope", "carry_share",
                  "fprime_all_units")


_FACTOR_TABLE_CAPTION = (
    "Per configuration{where}: the run with the median per-step log ratio over its final "
    "seeds (runs: how many; the best tuning trial where there are none), in decades per step "
    "(negative: the gradient shrinks on its way back), each the mean over the steps t of the "
    "probe batch's mean over sequences. A plain cell's step multiplies the gradient g_t = "
    "dL/dh_t by f'(u_t), then by W_hh^T: the f' factor is log10(||f'(u_t) g_t|| / ||g_t||), "
    "the W_hh factor log10(||W_hh^T f'(u_t) g_t|| / ||f'(u_t) g_t||), measured along the "
    "gradient the model has; they add up to the per-step log ratio of the propagated "
    "gradient's norm, in every row (to rounding). Gated cells (LSTM, GRU) split their step "
    "into the carry (LSTM: f_t dL/dc_t; GRU: z_t dL/dh_t) and the hidden path through W_hh: "
    "carry share = ||carry||^2 / (||carry||^2 + ||hidden||^2); their per-step log ratio is "
    "that of the whole state gradient. slope: a different summary, the least-squares slope of "
    "log10 ||dL/dh_t|| (the batch's mean norm) against the lag, median over the seeds and "
    "its range; it matches the per-step log ratio where the decay is even along t and over "
    "sequences and no loss term enters on the way. typical f': the mean log10 f' over every "
    "unit, step and sequence: not the f' the gradient meets, since the gradient lives on a "
    "few units and directions, and no prediction of the decay. Weight clipping and L2/decay "
    "act on the W_hh factor, ReLU and the gates on the f' factor.")


def _factor_steps(view: TaskView, ids: Sequence[str]) -> list[Any]:
    """The split per backward step t of each model's best configuration (first final seed),
    at initialisation and after training."""
    steps = view.source.tables(ids, FACTOR_STEPS_TABLE)
    if steps.empty or "step_log10_ratio" not in steps:
        return []
    snaps = an.factor_step_snapshots(steps)
    snaps.insert(1, "model", snaps["run_id"].map(view.runs.set_index("run_id")["model"]))
    return [view.figure(
        "factor-steps", "Which factor drives the decay: the split per backward step",
        plots.factor_steps(snaps),
        f"Each column: one model's best configuration{where(view.longest)}, first final seed; "
        f"top: at initialisation, bottom: after training (the last probe). x: the backward "
        f"step t, from the gradient at h_t to its part carried on to h_(t-1) (the loss is "
        f"read at the right end; the gradient travels leftwards). Plain cells: the f' factor "
        f"and the W_hh factor of each step, means over the probe batch's sequences, and their "
        f"sum (dashed), the per-step log ratio of the propagated gradient's norm, in decades "
        f"per step; below the dotted 0 the gradient shrinks at that step, above it grows. The "
        f"factor further below 0 drives the decay: f' (saturated or dead units: what ReLU and "
        f"gates change) or W_hh (its directions: what weight clipping and L2/decay change). "
        f"Gated cells (LSTM, GRU): the carry share ||carry||^2 / (||carry||^2 + "
        f"||hidden||^2) of each step: near 1 the gradient goes back along the carry (the "
        f"forget gate f_t, the GRU's z_t), which keeps it when the gate stays near 1; near 0 "
        f"through W_hh and the gates' derivatives, as in a plain cell. "
        f"{facts.read_at(view.task)}", snaps, ids)]


def _factor_history(view: TaskView, ids: Sequence[str]) -> list[Any]:
    """The split's means over t at every probe of the same runs, against the training
    step (none with fewer than two probes)."""
    history = view.source.tables(ids, FACTORS_TABLE)
    if history.empty or "step_log10_ratio" not in history or history["step"].nunique() < 2:
        return []
    history.insert(1, "model", history["run_id"].map(view.runs.set_index("run_id")["model"]))
    return [view.figure(
        "factor-history", "The split of the decay over training",
        plots.factor_history(history),
        f"The runs of the heatmap above (each model's best configuration{where(view.longest)}, "
        f"first final seed), at every probe (x: the training step; the first point is the "
        f"initialisation): plain cells the f' factor, the W_hh factor and their sum (dashed), "
        f"the per-step log ratio, each the mean over the backward steps t (the quantities of "
        f"the table below), in decades per step; gated cells the carry share. A "
        f"sum that rises towards 0 is the gradient reaching further back, as the heatmap's "
        f"rows turn grey; the factor that moves with it says why.", history, ids)]


def _unavailable_notes(snaps: pd.DataFrame) -> list[Note]:
    """One note per configuration whose split was not made, with the recorded reason."""
    if "available" not in snaps or "reason" not in snaps:
        return []
    missing = snaps[~snaps["available"].astype(bool)].drop_duplicates("configuration")
    return [Note(f"The exact split is not available for {row['configuration']}: "
                 f"{row['reason']}", "warn") for _, row in missing.iterrows()]


def _ratio_table(ratios: pd.DataFrame) -> Table:
    """log10 of the first / last step's gradient norm per model, at init and after."""
    pivot = ratios.pivot_table(index="model", columns="when", values="log10_ratio")
    rows = []
    form = number_format(pivot.to_numpy().ravel(), 3)
    for model in facts.model_order(pivot.index.tolist()):
        r = pivot.loc[model]
        rows.append([model, form(r.get("at initialisation")), form(r.get("after training"))])
    return Table("Gradient ratio first / last step", ["model", "log10 ratio at init",
                                                     "after training"], rows,
                 model_column=0,
                 caption="log10(||dL/dh_1|| / ||dL/dh_T||) of the lines above: -3 means "
                         "the gradient reaching the first step is 1000 times smaller "
                         "than at the last (vanishing); positive values mean growth.")


def traces(view: TaskView) -> list[Any]:
    """Gradient norms at every step, per model and clipping remedy, with the threshold."""
    picks = view.per_clip
    ids = view.first_runs(picks["configuration"])
    hist = view.source.steps(ids, "grad_norm", GRAD_NORM)
    if hist.empty:
        return [Note("No gradient-norm traces recorded for these runs.", "warn")]
    info = view.runs.set_index("run_id")
    hist["model"] = hist["run_id"].map(info["model"])
    hist["clipping"] = hist["run_id"].map(info["clipping"])
    hist["tau"] = hist["run_id"].map(info["clip"]) if "clip" in info else math.nan
    return [view.figure(
        "grad-norm", "Gradient norm during training, with the clipping threshold",
        plots.grad_norm_traces(hist),
        f"Global gradient norm before clipping at every training step; per model the "
        f"best configuration{where(view.longest)} of each clipping remedy (line style; "
        f"dotted: no clipping), first final seed. Spikes far above the rest are exploding "
        f"gradients; with norm clipping every step above the dashed threshold tau (tuned) "
        f"was rescaled to tau (value clipping clamps each entry, weight clipping bounds "
        f"W_hh instead: their thresholds are not gradient norms). A line that ends early "
        f"belongs to a run that diverged there.", hist, ids)]


def curves(view: TaskView) -> list[Any]:
    """Learning curves of each model's best configuration, and the spectral radius."""
    ids = [i for c in view.per_model["configuration"] for i in view.seeds.get(c, [])]
    hist = view.source.histories(ids, [VAL_LOSS, SPECTRAL_RADIUS])
    if hist.empty:
        return [Note("No learning curves recorded for these runs.", "warn")]
    info = view.runs.set_index("run_id")
    hist["model"] = hist["run_id"].map(info["model"])
    hist["configuration"] = hist["run_id"].map(info["configuration"])
    bands = []
    for _, r in view.per_model.iterrows():
        band = an.seed_band(hist[hist["configuration"] == r["configuration"]],
                            VAL_LOSS)
        seeds = plural(int(band["n"].max()) if len(band) else 0, "seed")
        label = f"{r['model']} ({r['remedy']}, {seeds})"
        bands.append(band.assign(model=r["model"], label=label))
    baseline = an.baseline_of(view.runs[view.runs["role"] == "final"])
    curves = view.figure(
        "learning-curves", "Learning curves of the best configuration of each model",
        plots.learning_curves(pd.concat(bands), baseline, "validation loss"),
        "Validation loss at the evaluation steps, mean over the final seeds (line) and "
        "from the lowest to the highest seed (band). The dotted line is the trivial "
        "predictor: a curve that stays on it has learned nothing; the gap between "
        "curves is the gap between the models.",
        hist[hist["key"] == VAL_LOSS], ids)
    radius = hist[hist["key"] == SPECTRAL_RADIUS]
    blocks: list[Any] = [curves]
    if len(radius):
        blocks.append(view.figure(
            "spectral-radius", "Spectral radius of the recurrent weights",
            plots.spectral_radius(radius), radius_caption(view.board["model"]), radius,
            ids))
    return [Row(blocks)]


# ------------------------------------------------------------------------------ captions


def _and(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def bounded_models(models: Iterable[str]) -> list[str]:
    """The models, in display order, that have the theory bound (a plain RNN's gain), from
    their records."""
    return [m for m in facts.model_order(models)
            if (info := facts.model_info(m)) is not None and info.gain is not None]


def radius_caption(models: Iterable[str]) -> str:
    """The caption of the spectral-radius figure: which of the suite's models have gate
    blocks and which the bound that rho governs (from their records)."""
    shown = facts.model_order(models)
    gated = "/".join(info.label or m for m in shown
                     if (info := facts.model_info(m)) is not None and len(info.blocks) > 1)
    plain = "/".join(bounded_models(shown))
    text = ("rho(W_hh), the largest |eigenvalue|"
            + (f" ({gated}: largest over gate blocks)" if gated else "")
            + " at the probe steps, mean over the seeds (band: lowest to highest).")
    if plain:
        text += (f" For {plain}, rho < 1 makes W_hh^k shrink (gradients vanish over many "
                 "steps) and rho > 1 lets it grow (explode).")
    return text
