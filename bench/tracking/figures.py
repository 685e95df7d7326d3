"""A run's figures as PNG images, which the MLflow UI previews among its artifacts.

Drawn from the tables a run records (``step_rows``, the diagnostics tables as plain dicts)
by a worker's background writer, never in the training step: the gradient profile with its
theory bound, the exact split of the decay per backward step, the learning curves, and the
gradient-flow heatmap (on the configuration's parent run). Each is small (about 30 KB),
drawn with matplotlib's Agg canvas and fixed margins, without pyplot: no global figure
state, so a writer thread draws beside the training thread. The report draws its own,
larger figures (``bench.report.plots``); these are the per-run pictures of the MLflow UI.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from bench.errors import error_line
from bench.names import FIGURES, FLOW_FIGURE, PROFILES_TABLE

if TYPE_CHECKING:  # an annotation only: the writer loads mlflow
    from bench.tracking.writer import Tracker

Rows = Sequence[Mapping[str, Any]]

DPI = 80
FLOW_RANGE = 12.0  # decades shown either side of 0 in the flow heatmap; beyond: "<=" marked
PROFILE_FIGURE = f"{FIGURES}/gradient_profile.png"
SPLIT_FIGURE = f"{FIGURES}/exact_split.png"
CURVES_FIGURE = f"{FIGURES}/learning_curves.png"


def _figure(height: float, **margins: float) -> Figure:
    """A figure with fixed margins: a layout engine (constrained, tight) measures every
    text first and took 2/3 of the drawing time."""
    fig = Figure(figsize=(6.4, height), dpi=DPI)
    fig.subplots_adjust(**{"left": 0.11, "right": 0.97, "bottom": 0.15, "top": 0.9,
                           "wspace": 0.25, **margins})
    return fig


def _log_y(ax: Any) -> None:
    """A log y axis labelled ``1e-03``, without minor ticks: the default labels are mathtext
    (``10^{-3}``), whose parsing, and the minor ticks, took much of a figure's time."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0e}"))
    ax.yaxis.set_minor_locator(NullLocator())


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg canvas)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def _number(value: Any) -> float:
    """A table cell as a float (NaN when empty or not a number): rows read back from CSV
    carry strings."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _probes(rows: Rows) -> tuple[int, int] | None:
    """The first and last probe step of a table (None: no rows)."""
    steps = sorted({int(_number(r["step"])) for r in rows})
    return (steps[0], steps[-1]) if steps else None


def run_figures(steps: Rows, evals: Rows, tables: Mapping[str, Rows],
                metric: str) -> dict[str, bytes]:
    """A final run's figures (artifact path -> PNG): those its tables allow."""
    drawers: dict[str, Callable[[], Figure | None]] = {
        CURVES_FIGURE: lambda: learning_curves(steps, evals, metric),
        PROFILE_FIGURE: lambda: gradient_profile(tables.get("profiles", ())),
        SPLIT_FIGURE: lambda: exact_split(tables.get("factor_steps", ())),
    }
    out = {}
    for path, draw in drawers.items():
        image = _drawn(path, draw)
        if image is not None:
            out[path] = image
    return out


def _drawn(path: str, draw: Callable[[], Figure | None]) -> bytes | None:
    """``draw()`` as PNG; None when there is nothing to draw, or when drawing failed (said
    in a warning): a picture is a view of the run's records, which never wait on it."""
    try:
        fig = draw()
        return None if fig is None else png(fig)
    except Exception as err:  # values no axis takes, say: the records go on without it
        logging.getLogger(__name__).warning("figure %s not drawn: %s", path, error_line(err))
        return None


def learning_curves(steps: Rows, evals: Rows, metric: str) -> Figure | None:
    """Training loss per step and the validation loss and task metric at each evaluation."""
    if not steps:
        return None
    fig = _figure(3.2)
    loss, score = fig.subplots(1, 2)
    loss.plot([_number(r["step"]) for r in steps], [_number(r["train_loss"]) for r in steps],
              lw=1, color="#1b9e77", label="train loss")
    at = [_number(r["step"]) for r in evals]
    if evals:
        loss.plot(at, [_number(r.get("loss")) for r in evals], marker="o", ms=3, lw=1.5,
                  color="#d95f02", label="val loss")
    _log_y(loss)
    loss.set_xlabel("training step")
    loss.legend(fontsize=8)
    key = metric if evals and metric in evals[0] else "loss"
    score.plot(at, [_number(r.get(key)) for r in evals], marker="o", ms=3, color="#7570b3")
    score.set_title(f"val {key}", fontsize=9)
    score.set_xlabel("training step")
    return fig


def gradient_profile(rows: Rows) -> Figure | None:
    """||dL/dh_t|| against t (log scale) at the first and the last probe, with the theory
    bound (plain RNNs) dashed; a norm of exactly 0 (underflow) is an x on the bottom edge."""
    probes = _probes([r for r in rows if r["kind"] == "h"])
    if probes is None:
        return None
    fig = _figure(3.2, left=0.13)
    ax = fig.subplots()
    zeros: list[float] = []
    for step, colour in zip(probes, ("#7570b3", "#d95f02"), strict=True):
        for kind, style in (("h", "-"), ("bound", "--")):
            points = sorted((_number(r["t"]), _number(r["norm"])) for r in rows
                            if r["kind"] == kind and int(_number(r["step"])) == step)
            shown = [(t, n) for t, n in points if n > 0 and math.isfinite(n)]
            label = f"step {step}" if kind == "h" else f"bound, step {step}"
            if shown:
                ax.plot(*zip(*shown, strict=True), ls=style, color=colour, label=label,
                        lw=1.8 if kind == "h" else 1.0)
            if kind == "h":
                zeros += [t for t, n in points if n == 0]
    _log_y(ax)
    if zeros:
        ax.plot(zeros, [ax.get_ylim()[0]] * len(zeros), "x", color="black", clip_on=False,
                label="norm 0 (underflow)")
    ax.set_xlabel("time step t (the loss is read at the right end)")
    ax.set_ylabel("||dL/dh_t||")
    ax.legend(fontsize=8)
    return fig


SPLIT_LINES = (("fprime_log10", "f' factor", "#7570b3", "-"),
               ("w_hh_log10", "W_hh factor", "#66a61e", "-"),
               ("step_log10_ratio", "per-step log ratio", "black", "--"),
               ("carry_share", "carry share (gated cells)", "#e7298a", "-"))


def exact_split(rows: Rows) -> Figure | None:
    """The exact split per backward step t at the first and the last probe (plain cells:
    the f' and W_hh factors and their sum, decades per step; gated cells: the carry share).
    None when the split was not made."""
    probes = _probes(rows)
    drawn = [(c, label, colour, style) for c, label, colour, style in SPLIT_LINES
             if any(math.isfinite(_number(r[c])) for r in rows)]
    if probes is None or not drawn:
        return None
    fig = _figure(3.0, left=0.1, top=0.88)
    axes = fig.subplots(1, len(set(probes)), sharey=True, squeeze=False)[0]
    for ax, step in zip(axes, sorted(set(probes)), strict=True):
        at = sorted((r for r in rows if int(_number(r["step"])) == step),
                    key=lambda r: _number(r["t"]))
        for column, label, colour, style in drawn:
            ax.plot([_number(r["t"]) for r in at], [_number(r[column]) for r in at],
                    color=colour, ls=style, lw=1.5, label=label)
        ax.set_title(f"probe at step {step}", fontsize=9)
        ax.set_xlabel("backward step t")
    axes[0].legend(fontsize=7)
    return fig


def gradient_flow(rows: Rows, title: str = "") -> Figure | None:
    """log10 ||dL/dh_t|| / ||dL/dh_T|| per probe (rows) and time step t (columns): blue
    vanished, red grew. The scale stops at +-``FLOW_RANGE`` decades and says so (an arrow
    on its end, "<=" and the lowest value under the axis); cells where a norm is 0 or not
    finite are hatched (said under the axis). None with fewer than two probes."""
    h = [r for r in rows if r["kind"] == "h"]
    steps = sorted({int(_number(r["step"])) for r in h})
    ts = sorted({int(_number(r["t"])) for r in h})
    if len(steps) < 2 or not ts:
        return None
    norms = {(int(_number(r["step"])), int(_number(r["t"]))): _number(r["norm"]) for r in h}
    grid = [[_flow_value(norms.get((s, t), math.nan), norms.get((s, ts[-1]), math.nan))
             for t in ts] for s in steps]
    found = [v for row in grid for v in row if math.isfinite(v)]
    low = max(min(found, default=-1.0), -FLOW_RANGE)
    high = min(max(found, default=1.0), FLOW_RANGE)
    fig = _figure(3.4, right=0.86, top=0.9, bottom=0.17)
    ax = fig.subplots()
    ax.patch.set_facecolor("white")  # NaN cells show the background, hatched
    ax.patch.set_hatch("xx")
    ax.patch.set_edgecolor("0.6")
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="coolwarm",
                      norm=TwoSlopeNorm(vcenter=0.0, vmin=min(low, -0.1), vmax=max(high, 0.1)),
                      interpolation="nearest",
                      extent=(ts[0] - 0.5, ts[-1] + 0.5, -0.5, len(steps) - 0.5))
    ticks = sorted({0, len(steps) - 1, *range(0, len(steps), max(1, len(steps) // 5))})
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    clipped = min(found, default=0.0) < -FLOW_RANGE
    ax.set_xlabel("time step t   (hatched: a norm of 0" + (
        f"; the arrow: <= {-FLOW_RANGE:g}, values down to {min(found):.1f})" if clipped
        else ")"), fontsize=8)
    ax.set_ylabel("training step (probe)")
    ax.set_title(title, fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03,
                       extend="min" if clipped else "neither")
    bar.set_label("log10 ||dL/dh_t|| / ||dL/dh_T||", fontsize=8)
    return fig


def gradient_flow_png(rows: Rows, title: str = "") -> bytes | None:
    """``gradient_flow`` as PNG bytes (None: fewer than two probes, or not drawn)."""
    return _drawn(FLOW_FIGURE, lambda: gradient_flow(rows, title))


def log_flow(tracker: Tracker, run_id: str, source_run: str, title: str) -> bool:
    """The gradient-flow heatmap of ``source_run`` (drawn from its recorded profiles) as
    ``FLOW_FIGURE`` on ``run_id`` (a configuration's parent run); False when it has none."""
    try:
        rows = tracker.load_table(source_run, PROFILES_TABLE)
    except FileNotFoundError:  # no diagnostics recorded
        return False
    image = gradient_flow_png(rows, title)
    if image is not None:
        tracker.log_files(run_id, {FLOW_FIGURE: image})
    return image is not None


def _flow_value(norm: float, last: float) -> float:
    if not (norm > 0 and last > 0 and math.isfinite(norm) and math.isfinite(last)):
        return math.nan
    return math.log10(norm / last)
