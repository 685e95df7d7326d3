"""Frame -> heat map: the normalised score (model x remedy), the gradient flow over
training, hyperparameter importance and the confusion matrix. Colours and sizes are
``plots``' (one colour per model, the page's width)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bench.report import facts
from bench.report.plots import WIDTH, color


def score_heatmap(grids: Mapping[str, pd.DataFrame]) -> Figure:
    """Model x remedy heatmaps of the normalised score, one panel per T."""
    n = len(grids)
    fig, axes = plt.subplots(1, n, figsize=(min(WIDTH, 4.2 * n + 1), 3.2), squeeze=False)
    values = np.concatenate([g.to_numpy(dtype=float).ravel() for g in grids.values()])
    finite = values[np.isfinite(values)]
    vmax = max(2.0, float(finite.max())) if finite.size else 2.0
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=min(vmax, 4.0))
    for ax, (label, grid) in zip(axes[0], grids.items(), strict=True):
        data = grid.astype(float)
        text = data.map(lambda v: "no result" if pd.isna(v) else f"{v:.2f}")
        ax.set_facecolor("#e6e6e6")
        ax.grid(False)
        with warnings.catch_warnings():  # a grid without any result yet is all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            sns.heatmap(data, ax=ax, annot=text.to_numpy(), fmt="", cmap="vlag", norm=norm,
                        cbar=ax is axes[0][-1], linewidths=0.5, linecolor="white",
                        cbar_kws={"label": "test loss / baseline"}, annot_kws={"fontsize": 9})
        for i in range(data.shape[0]):  # seaborn leaves NaN cells without their text
            for j in range(data.shape[1]):
                if pd.isna(data.iat[i, j]):
                    ax.text(j + 0.5, i + 0.5, "no result", ha="center", va="center",
                            fontsize=8, color="#555555")
        ax.set_title(label)
        ax.set_xlabel("remedy")
        ax.set_ylabel("model" if ax is axes[0][0] else "")
        ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig



FLOW_RANGE = 12.0  # decades shown either side of 0 in the gradient-flow heatmap


def gradient_flow(flow: pd.DataFrame) -> Figure:
    """Gradient flow over training: one panel per model, x = time step t, y = the training
    step of each probe (bottom: initialisation), colour = log10 ||dL/dh_t|| / ||dL/dh_T||
    (grey 0: nothing lost; blue: vanished; red: grew; white: a norm of exactly 0, whose log
    is -inf). The scale stops at ``FLOW_RANGE`` decades: values beyond take the end colour,
    and the colour bar says so (a triangle, ``<= -12``). A ``solved_step`` column marks the
    first probe at or after the step the run became solved (black line)."""
    models = facts.model_order(flow["model"].astype(str))
    values = flow["value"].replace([np.inf, -np.inf], np.nan).dropna()
    lowest = float(values.min()) if len(values) else -1.0
    highest = float(values.max()) if len(values) else 1.0
    vmin = min(max(lowest, -FLOW_RANGE), -0.1)
    vmax = max(min(highest, FLOW_RANGE), 0.1)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax)
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="white")
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.4), squeeze=False,
                             layout="constrained")
    image = None
    for ax, model in zip(axes[0], models, strict=True):
        part = flow[flow["model"] == model]
        grid = part.pivot_table(index="step", columns="t", values="value", aggfunc="mean")
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower",
                          cmap=cmap, norm=norm, interpolation="nearest",
                          extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5, -0.5,
                                  len(grid.index) - 0.5))
        steps = [int(v) for v in grid.index]
        ticks = sorted({0, len(steps) - 1, *range(0, len(steps), max(1, len(steps) // 5))})
        ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
        solved = part["solved_step"].dropna() if "solved_step" in part else pd.Series()
        if len(solved):
            after = [i for i, v in enumerate(steps) if v >= float(solved.min())]
            if after:
                ax.axhline(after[0] - 0.5, color="black", lw=1.5)
        ax.set_title(model, color=color(model))
        ax.set_xlabel("time step t")
        ax.grid(False)
    axes[0][0].set_ylabel("training step (probe)")
    if image is not None:
        below, above = lowest < vmin, highest > vmax
        extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
            (below, above), "neither")
        bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, extend=extend)
        ticks = flow_ticks(vmin, vmax)
        bar.set_ticks(ticks, labels=[("<= " if below and v == vmin else
                                      ">= " if above and v == vmax else "") + f"{v:.3g}"
                                     for v in ticks])
        bar.set_label("log10 ||dL/dh_t|| / ||dL/dh_T||", fontsize=8)
    return fig


def flow_ticks(vmin: float, vmax: float) -> list[float]:
    """Ticks on both halves of the flow's colour bar (each half is drawn the same length,
    however short its range): a few round values each side of 0, and both ends."""
    negative = MaxNLocator(4).tick_values(vmin, 0.0)
    positive = MaxNLocator(3).tick_values(0.0, vmax)
    inside = [float(v) for v in (*negative, *positive) if vmin <= v <= vmax]
    ends = [end for end in (vmin, vmax)  # unless a round tick is within 15% of its half
            if all(abs(end - t) > 0.15 * abs(end) for t in inside)]
    # the ends exactly: an end rounded outwards (0.488879 for 0.48887896) lies outside the
    # norm, and one tick outside a TwoSlopeNorm bar collapses its whole axis to one point
    return sorted({*(min(max(round(v, 6), vmin), vmax) for v in inside), *ends})


def importance_heatmap(table: pd.DataFrame) -> Figure:
    """Configuration x hyperparameter importance (rows sum to 1)."""
    height = 1.0 + 0.28 * len(table)
    fig, ax = plt.subplots(figsize=(min(WIDTH, 2.8 + 1.3 * table.shape[1]), height))
    sns.heatmap(table.astype(float), ax=ax, annot=True, fmt=".2f", cmap="Blues", vmin=0,
                vmax=1, linewidths=0.5, linecolor="white", cbar_kws={"label": "importance"},
                annot_kws={"fontsize": 8})
    ax.set_facecolor("#e6e6e6")
    ax.grid(False)
    ax.set_xlabel("hyperparameter")
    ax.set_ylabel("")
    for label in ax.get_yticklabels():
        label.set_color(color(label.get_text().split("/")[1] if "/" in label.get_text()
                              else ""))
    fig.tight_layout()
    return fig



def confusion_heatmap(matrix: pd.DataFrame) -> Figure:
    """Row-normalised confusion matrix (each row: where the windows of one true class went)."""
    counts = matrix.to_numpy(dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    labels = [[f"{s:.0%}\n({int(c)})" for s, c in zip(rs, rc, strict=True)]
              for rs, rc in zip(share, counts, strict=True)]
    fig, ax = plt.subplots(figsize=(WIDTH * 0.55, 4.6))
    sns.heatmap(pd.DataFrame(share, index=matrix.index, columns=matrix.columns), ax=ax,
                annot=np.array(labels), fmt="", cmap="Blues", vmin=0, vmax=1,
                linewidths=0.5, linecolor="white", cbar_kws={"label": "share of the true class"},
                annot_kws={"fontsize": 7})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig
