"""Frame -> figure: every plot of the report (seaborn on matplotlib's Agg backend).

Each function takes tidy frames from ``analysis`` (or ``results``) and returns a matplotlib
``Figure``; ``to_data_uri`` encodes a figure as an embedded PNG and closes it. One colour
per model everywhere (``model_hex``: the model's record in ``bench.registry``); remedies
are told apart by line style and marker (``remedy_style``, ``remedy_marker``, from their
records: the clipping remedy sets the line, the regularization remedy the marker). Call
``configure()`` once before drawing: it selects the Agg backend and the theme. The heat maps
(the score, the gradient flow, importances, the confusion matrix) are in ``heatmaps``.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import zlib
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from bench import registry
from bench.registry import MODELS
from bench.report import facts
from bench.report.analysis import COUNTED_TRIALS

PALETTE = "colorblind"  # 10 colours; the built-in models' colours are entries of it
GREY = "#949494"  # the palette's grey: it reads as a reference line, never a model's colour
WIDTH = 10.5  # inches; at DPI that is about the page's content width
DPI = 100
OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


def configure() -> None:
    """Draw off-screen (Agg) in the report's theme. Idempotent; the report builder calls it
    before its first figure."""
    matplotlib.use("Agg")
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)


# ------------------------------------------------------------------------------ colours


def _record_color(model: str) -> str | None:
    """The colour of the model's record as ``#rrggbb``, or None (no record, no colour, or
    one matplotlib does not read)."""
    info = facts.model_info(model)
    if info is None or not info.color:
        return None
    try:
        return to_hex(info.color)
    except ValueError:
        return None


@functools.cache
def _spare_colors() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(built-in models without a colour, the palette's entries that no record uses)."""
    try:
        builtin = MODELS.names()
    except Exception:  # a built-in model that does not import here: colours by name only
        builtin = ()
    used = {c for c in map(_record_color, builtin) if c}
    spare = tuple(c for c in sns.color_palette(PALETTE, 10).as_hex() if c not in used | {GREY})
    return tuple(m for m in builtin if _record_color(m) is None), spare or (GREY,)


@functools.cache
def model_hex(model: str) -> str:
    """The model's colour as ``#rrggbb``: its record's; else a spare palette entry, the same
    for that name in every figure and report (built-ins without a colour take them in turn,
    other names by a hash of the name)."""
    own = _record_color(model)
    if own is not None:
        return own
    colourless, spare = _spare_colors()
    if model in colourless:
        return spare[colourless.index(model) % len(spare)]
    return spare[(len(colourless) + zlib.crc32(model.encode())) % len(spare)]


def color(model: str) -> tuple[float, float, float]:
    """The model's colour as RGB (see ``model_hex``)."""
    return to_rgb(model_hex(model))


def palette(models: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """Model -> colour, for seaborn's ``palette=``."""
    return {m: color(m) for m in models}


def remedy_style(regularization: str, clipping: str) -> Any:
    """Line style of a (regularization, clipping) pair, from the clipping remedy's record
    (dotted: no clipping; dash-dot-dot: a remedy the registry does not know here)."""
    if clipping in facts.unknown_remedies(regularization, clipping):
        return (0, (3, 1, 1, 1, 1, 1))
    return registry.remedy_style(regularization, clipping)


def remedy_marker(regularization: str, clipping: str) -> str:
    """Marker of a pair, from the regularization remedy's record (circle: none; star: a
    remedy the registry does not know here)."""
    if regularization in facts.unknown_remedies(regularization, clipping):
        return "*"
    return registry.remedy_marker(regularization, clipping)


def to_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI; the figure is closed."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI)  # layout: tight_layout in each plot
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _log_y(ax: plt.Axes) -> None:
    """Log scale with plain labels, denser on a narrow range (call after plotting)."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 3.0
    subs = tuple(range(1, 10)) if decades < 1 else (1, 2, 5) if decades < 3 else (1,)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=[float(v) for v in subs], numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _models(frame: pd.DataFrame) -> list[str]:
    return facts.model_order(frame["model"].astype(str))


def _model_legend(models: Sequence[str], extra: Sequence[Line2D] = ()) -> list[Line2D]:
    lines = [Line2D([], [], color=color(m), lw=2, label=m) for m in models]
    return lines + list(extra)


# ------------------------------------------------------------------------------ gradients


def gradient_profiles(snapshots: pd.DataFrame) -> Figure:
    """||dL/dh_t|| against t (log scale) per model, at initialisation and after training;
    dashed: the theory bound (models that have one: plain RNNs)."""
    whens = [w for w in ("at initialisation", "after training")
             if w in set(snapshots["when"])]
    fig, axes = plt.subplots(1, max(1, len(whens)), figsize=(WIDTH, 3.8), sharey=True,
                             squeeze=False)
    measured = snapshots[snapshots["kind"] == "h"]["norm"]
    measured = measured[measured > 0]
    for ax, when in zip(axes[0], whens, strict=False):
        part = snapshots[snapshots["when"] == when]
        for model in _models(part):
            rows = part[part["model"] == model]
            h = rows[(rows["kind"] == "h") & (rows["norm"] > 0)]
            ax.plot(h["t"], h["norm"], color=color(model), lw=2)
            bound = rows[(rows["kind"] == "bound") & (rows["norm"] > 0)]
            if len(bound):
                ax.plot(bound["t"], bound["norm"], color=color(model), lw=1.2, ls="--")
        ax.set_yscale("log")
        ax.set_title(when)
        ax.set_xlabel("time step t  (the loss is read at the right end)")
    if len(measured):
        low, high = float(measured.min()), float(measured.max())
        axes[0][0].set_ylim(low / 30, high * 30)  # bounds far outside are cut off
    axes[0][0].set_ylabel("||dL/dh_t||  (mean over the probe batch)")
    bound = Line2D([], [], color="0.3", lw=1.2, ls="--", label="theory bound")
    axes[0][-1].legend(handles=_model_legend(_models(snapshots), [bound]), fontsize=8,
                       loc="best")
    fig.tight_layout()
    return fig


# the split's lines (column, label, colour, style); not the models' colours: a panel is a model
SPLIT_LINES = (("fprime_log10", "f' factor", "#7570b3", "-"),
               ("w_hh_log10", "W_hh factor", "#66a61e", "-"),
               ("step_log10_ratio", "per-step log ratio (= f' + W_hh)", "black", "--"))
CARRY_LINE = ("carry_share", "carry share (gated cells)", "#e7298a", "-")


def _split_panel(ax: plt.Axes, rows: pd.DataFrame, x: str) -> str:
    """One model's split against ``x``: a plain cell's f' and W_hh factors and their sum,
    else a gated cell's carry share; the panel's y label."""
    plain = bool(rows["fprime_log10"].notna().any())
    marker = "o" if x == "step" else None
    for column, _, colour, style in SPLIT_LINES if plain else (CARRY_LINE,):
        ax.plot(rows[x], rows[column], color=colour, ls=style, lw=1.8, marker=marker, ms=3)
    if plain:
        ax.axhline(0.0, color=GREY, lw=1, ls=":")
        return "decades per step"
    if rows["carry_share"].notna().any():
        ax.set_ylim(-0.03, 1.03)
        return "carry share"
    ax.text(0.5, 0.5, "split not available (or every norm 0)", transform=ax.transAxes, ha="center",
            va="center", color="0.35")
    return ""


def _split_legend(frame: pd.DataFrame) -> list[Line2D]:
    """Legend entries for the lines drawn: the plain cells' and the gated cells'."""
    lines = [*(SPLIT_LINES if frame["fprime_log10"].notna().any() else ()),
             *((CARRY_LINE,) if frame["carry_share"].notna().any() else ())]
    return [Line2D([], [], color=c, ls=s, lw=1.8, label=label) for _, label, c, s in lines]


def factor_steps(snapshots: pd.DataFrame) -> Figure:
    """The exact split per backward step t, one column per model, one row per moment (at
    initialisation, after training); the panels of a model share their y axis."""
    models = _models(snapshots)
    whens = [w for w in ("at initialisation", "after training") if w in set(snapshots["when"])]
    fig, axes = plt.subplots(len(whens), len(models), figsize=(WIDTH, 1.0 + 2.4 * len(whens)),
                             sharex="col", sharey="col", squeeze=False, layout="constrained")
    for i, when in enumerate(whens):
        for ax, model in zip(axes[i], models, strict=True):
            rows = snapshots[(snapshots["when"] == when) & (snapshots["model"] == model)]
            ax.set_ylabel(_split_panel(ax, rows.sort_values("t"), "t"), fontsize=8)
            ax.set_title(f"{model}, {when}", color=color(model), fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("backward step t (h_t -> h_(t-1))")
    fig.legend(handles=_split_legend(snapshots), loc="outside lower center", ncol=4, fontsize=8)
    return fig


def factor_history(history: pd.DataFrame) -> Figure:
    """The split's means over the backward steps at every probe against the training step,
    one panel per model."""
    models = _models(history)
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.0), squeeze=False,
                             layout="constrained")
    for ax, model in zip(axes[0], models, strict=True):
        rows = history[history["model"] == model].sort_values("step")
        ax.set_ylabel(_split_panel(ax, rows, "step"), fontsize=8)
        ax.set_title(model, color=color(model))
        ax.set_xlabel("training step (probe)")
        ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    fig.legend(handles=_split_legend(history), loc="outside lower center", ncol=4, fontsize=8)
    return fig


def grad_norm_traces(traces: pd.DataFrame) -> Figure:
    """Global gradient norm (before clipping) per step: one panel per model, the best run of
    each clipping remedy (line style: the remedy's; dotted: none), norm clipping's threshold
    tau dashed black."""
    models = _models(traces)
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.0), sharey=True, squeeze=False)
    clippings = sorted(traces["clipping"].unique(),
                       key=lambda c: registry.remedy_rank("none", str(c)))
    for ax, model in zip(axes[0], models, strict=True):
        part = traces[traces["model"] == model]
        for clipping, rows in part.groupby("clipping"):
            clipped = clipping != "none"
            ax.plot(rows["step"], rows["value"], color=color(model), lw=0.9,
                    ls=remedy_style("none", str(clipping)), alpha=1.0 if clipped else 0.8)
            tau = rows["tau"].dropna()
            if clipped and len(tau):
                ax.axhline(float(tau.iloc[0]), color="black", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_title(model, color=color(model))
        ax.set_xlabel("training step")
    axes[0][0].set_ylabel("global gradient norm")
    handles = [Line2D([], [], color="0.3", ls=remedy_style("none", str(c)),
                      label=facts.remedy_label("none", str(c)) if c != "none" else "no clipping")
               for c in clippings]
    if traces["tau"].notna().any():
        handles.append(Line2D([], [], color="black", ls="--", lw=1,
                              label="norm clipping's tau"))
    axes[0][-1].legend(handles=handles, fontsize=8, **OUTSIDE)
    fig.tight_layout()
    return fig


def learning_curves(bands: pd.DataFrame, baseline: float, ylabel: str) -> Figure:
    """Validation loss against step per model (its best configuration): the mean over
    seeds, the band from the lowest to the highest seed; the baseline dotted."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.62, 3.6))
    for label, rows in bands.groupby("label", sort=False):
        model = str(rows["model"].iloc[0])
        ax.plot(rows["step"], rows["mean"], color=color(model), lw=2, label=label)
        ax.fill_between(rows["step"], rows["low"], rows["high"], color=color(model),
                        alpha=0.2, lw=0)
    if math.isfinite(baseline):
        ax.axhline(baseline, color="0.35", ls=":", lw=1.5, label="baseline (trivial predictor)")
    if (bands["low"] > 0).all():
        _log_y(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def spectral_radius(history: pd.DataFrame) -> Figure:
    """Spectral radius of the recurrent weights (largest over gate blocks) at the probe
    steps, per model (mean over the runs shown); the line rho = 1 dashed."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.38, 3.6))
    models = _models(history)
    sns.lineplot(data=history, x="step", y="value", hue="model", hue_order=models,
                 palette=palette(models), estimator="mean", errorbar=("pi", 100), marker="o",
                 markersize=4, lw=2, ax=ax)
    ax.axhline(1.0, color="black", ls="--", lw=1, label="rho = 1")
    ax.set_xlabel("training step")
    ax.set_ylabel("spectral radius of W_hh")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ tuning


def _last_third_band(ax: plt.Axes, part: pd.DataFrame) -> None:
    """Shade the last third of the counted trials of the panel's longest search."""
    counted = part[part["state"].isin(COUNTED_TRIALS)]
    if counted.empty:
        return
    longest = counted.groupby("configuration")["trial_number"].count().idxmax()
    numbers = sorted(counted.loc[counted["configuration"] == longest, "trial_number"])
    late = len(numbers) // 3
    if late:
        ax.axvspan(numbers[-late] - 0.5, numbers[-1] + 0.5, color=GREY, alpha=0.15, lw=0)


def best_so_far(frame: pd.DataFrame) -> Figure:
    """Best validation loss so far against the trial number: one panel per model, one line
    per remedy (line style); a grey band marks the last third of the trials
    (``analysis.last_third``'s: the last ``n // 3`` of the n a budget counts)."""
    models = _models(frame)
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 2.9), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = frame[frame["model"] == model]
        _last_third_band(ax, part)
        for _, rows in part.groupby("remedy"):
            ok = rows[rows["best"].notna()]
            pair = str(rows["regularization"].iloc[0]), str(rows["clipping"].iloc[0])
            ax.plot(ok["trial_number"], ok["best"], color=color(model), lw=1.8,
                    marker=remedy_marker(*pair), ms=3.5, ls=remedy_style(*pair),
                    drawstyle="steps-post")
        ax.set_title(model, color=color(model))
        ax.set_xlabel("trial")
        ax.xaxis.get_major_locator().set_params(integer=True)
    positive = frame["best"].dropna()
    if len(positive) and (positive > 0).all():
        _log_y(axes[0][0])
    axes[0][0].set_ylabel("best validation loss so far")
    pairs = {str(r["remedy"]): (str(r["regularization"]), str(r["clipping"]))
             for _, r in frame.drop_duplicates("remedy").iterrows()}
    handles = [Line2D([], [], color="0.3", ls=remedy_style(*pairs[r]),
                      marker=remedy_marker(*pairs[r]), ms=3.5, label=r)
               for r in facts.remedy_order(frame)]
    axes[0][-1].legend(handles=handles, fontsize=8, **OUTSIDE, title="remedy",
                       title_fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ sweep, HAR


def seq_len_sweep(board: pd.DataFrame) -> Figure:
    """Normalised score against T: one panel per remedy, one line per model."""
    remedies = facts.remedy_order(board)
    fig, axes = plt.subplots(1, len(remedies), figsize=(WIDTH, 2.9), sharey=True,
                             squeeze=False)
    data = board.assign(T=board["seq_len"].astype(float))
    for ax, remedy in zip(axes[0], remedies, strict=True):
        part = data[data["remedy"] == remedy]
        sns.lineplot(data=part, x="T", y="normalized", hue="model",
                     palette=palette(_models(part)),
                     marker="o", markersize=5, lw=2, ax=ax, legend=False)
        ax.axhline(1.0, color="0.35", ls=":", lw=1.2)
        ax.set_title(remedy)
        ax.set_xlabel("sequence length T")
    axes[0][0].set_ylabel("test loss / baseline")
    extra = [Line2D([], [], color="0.35", ls=":", label="baseline")]
    axes[0][-1].legend(handles=_model_legend(_models(board), extra), fontsize=8, **OUTSIDE)
    fig.tight_layout()
    return fig


def f1_bars(scores: pd.DataFrame, model: str) -> Figure:
    """Per-class F1 of one model as horizontal bars."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.42, 4.6))
    sns.barplot(data=scores, y="class", x="f1", ax=ax, color=color(model), orient="h")
    for i, value in enumerate(scores["f1"]):
        inside = float(value) > 0.15
        ax.text(float(value) - 0.02 if inside else float(value) + 0.02, i, f"{value:.2f}",
                va="center", ha="right" if inside else "left", fontsize=8,
                color="white" if inside else "black")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 on the test set")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
