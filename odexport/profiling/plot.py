"""PNG charts of profile and compare results (matplotlib, an optional extra, without a display).

``*_figure`` builds a chart as a matplotlib Figure (tests read its titles and labels); ``plot_*`` writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..extras import require
from .comparison import STATIC
from .layers import CATEGORIES

_COLORS = {"odconv attention": "#d62728", "odconv convolution": "#1f77b4", "other": "#7f7f7f"}
_LATENCY_COLOR = "#4c72b0"
# Modules shown per configuration in the per-module chart: the slowest ones carry the story.
TOP_MODULES = 12


def _pyplot():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no display needed; also keeps a CLI run from opening windows
    import matplotlib.pyplot as plt  # an optional extra, imported only once a plot is asked for

    return plt


def check_plot_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"--plot {path}: the chart is written as PNG", hint="give the file a .png name")
    require("matplotlib")
    return path


def save_figure(figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (parents created) and release it."""
    plt = _pyplot()
    path = check_plot_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}", hint="choose a writable --plot path") from None
    finally:
        plt.close(figure)
    return path


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _one_or_all(values) -> str:
    return "/".join(dict.fromkeys(str(value) for value in values))


def artifact_name(report) -> str:
    """What was measured, by a name a user recognises: the artifact directory and its model file."""
    source, model = Path(report.source), Path(report.model_file.split(", ")[0])
    return model.name if source.name == model.name else f"{source.name} ({model.name})"


def profile_title(report) -> str:
    runs = report.runs
    height, width = report.input_size
    threads = _one_or_all(run.threads or "auto" for run in runs)
    streams = {run.streams for run in runs if run.streams}
    return (f"{artifact_name(report)} at {height}x{width}\n{_one_or_all(run.hint for run in runs)} hint, "
            f"{threads} threads" + (f", {_one_or_all(streams)} streams" if streams else "")
            + f"; {report.machine.get('cpu', '')}")


def profile_figure(report, *, top: int = TOP_MODULES):
    """A ProfileReport: median latency per configuration (labelled; whiskers min to p99) and, for each
    configuration measured with layers, its slowest modules split into ODConv attention, ODConv
    convolution and the rest."""
    plt = _pyplot()
    with_layers = [run for run in report.runs if run.layers is not None]
    module_rows = [min(top, len(_module_split(run.layers))) for run in with_layers]
    heights = [1.4 + 0.45 * len(report.runs)] + [1.2 + 0.32 * rows for rows in module_rows]
    figure, axes = plt.subplots(len(heights), 1, figsize=(10, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    _latency_bars(axes[0][0], report)
    axes[0][0].set_title(profile_title(report), fontsize=10)
    for axis, run in zip((row[0] for row in axes[1:]), with_layers):
        _module_bars(axis, run, top)
    return figure


def plot_profile(report, path: str | Path, *, top: int = TOP_MODULES) -> Path:
    check_plot_path(path)
    return save_figure(profile_figure(report, top=top), path)


def _latency_bars(axis, report) -> None:
    """Horizontal bars, one per configuration, labelled with median, spread and throughput: readable for
    one configuration as for many."""
    runs = list(report.runs)[::-1]  # the first configuration at the top
    labels = [f"{run.runtime} {run.precision}, batch {run.batch}" for run in runs]
    medians = [run.latency.median_ms for run in runs]
    spread = [[run.latency.median_ms - run.latency.min_ms for run in runs],
              [run.latency.p99_ms - run.latency.median_ms for run in runs]]
    axis.barh(labels, medians, xerr=spread, capsize=4, color=_LATENCY_COLOR, height=0.6)
    for position, run in enumerate(runs):
        axis.text(run.latency.p99_ms, position, f"  median {_ms(run.latency.median_ms)} (min {run.latency.min_ms:.3g}, "
                  f"p99 {run.latency.p99_ms:.3g}), {run.throughput:,.0f} images/s", va="center", fontsize=8)
    axis.set_xlim(0, max(run.latency.p99_ms for run in runs) * 1.9)  # room for the labels
    axis.set_ylim(-0.75, len(runs) - 0.25)  # one configuration gets a bar, not a wall
    axis.set_xlabel("latency per call, ms (bar: median; whiskers: min to p99)")
    axis.tick_params(axis="y", labelsize=8)


def _module_split(layers) -> dict[str, dict[str, float]]:
    """{module: {category: ms}}, slowest module first."""
    split: dict[str, dict[str, float]] = {}
    for row in layers.layers:
        split.setdefault(row.module, {}).setdefault(row.category, 0.0)
        split[row.module][row.category] += row.ms
    return dict(sorted(split.items(), key=lambda item: -sum(item[1].values())))


def _module_bars(axis, run, top: int) -> None:
    """Horizontal bars, one per module, stacked by category, each labelled with its total."""
    split = _module_split(run.layers)
    shown = list(split)[:top][::-1]  # slowest at the top
    left = [0.0] * len(shown)
    for category in CATEGORIES:
        values = [split[module].get(category, 0.0) for module in shown]
        if any(values):
            axis.barh(shown, values, left=left, color=_COLORS[category], label=category)
            left = [a + b for a, b in zip(left, values)]
    for position, total in enumerate(left):
        axis.text(total, position, f" {total:.3f}", va="center", fontsize=7)
    axis.set_xlim(0, max(left, default=1) * 1.15)
    axis.tick_params(axis="y", labelsize=7)
    axis.set_xlabel("ms per inference (summed node time)")
    totals = ", ".join(f"{category} {ms:.2f} ms" for category, ms in run.layers.by_category.items())
    more = f"slowest {len(shown)} of {len(split)} modules" if len(split) > len(shown) else f"all {len(split)} modules"
    axis.set_title(f"{run.runtime} {run.precision}, batch {run.batch}: {more}\n{totals}", fontsize=9)
    axis.legend(fontsize=7, loc="lower right")


def ratios_figure(groups: dict[str, dict[str, float]], *, title: str, bounds: dict[str, float] | None = None,
                  labels: bool = False):
    """groups: {group label (e.g. a model and runtime): {variant: ratio to the static twin}} as grouped
    bars on a log scale, the twin's 1.0 drawn as a line; bounds: {group label: target ratio} as a marker
    per group; labels: write each ratio on its bar (for a few groups; a sweep has too many)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(10, len(groups) * 0.6), 6))
    variants = list(dict.fromkeys(v for ratios in groups.values() for v in ratios))
    positions = np.arange(len(groups))
    width = 0.8 / max(len(variants), 1)
    for index, variant in enumerate(variants):
        values = [ratios.get(variant, np.nan) for ratios in groups.values()]
        bars = axis.bar(positions + index * width - 0.4 + width / 2, values, width, label=variant)
        if labels:
            axis.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}x" for v in values], fontsize=7,
                           rotation=90, padding=2)
    if bounds:
        targets = [bounds.get(label, np.nan) for label in groups]
        axis.scatter(positions, targets, marker="_", s=900, color="black", zorder=3, label="target")
    axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="static twin = 1")
    axis.set_xticks(positions, list(groups), rotation=0 if labels else 60, ha="center" if labels else "right",
                    fontsize=8 if labels else 7)
    axis.set_ylabel("median latency / static twin's (log scale)")
    axis.set_yscale("log")
    if labels:
        low, high = axis.get_ylim()
        axis.set_ylim(low, high * 1.6)  # room for the labels above the tallest bar
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7, ncols=2)
    return figure


def plot_ratios(groups: dict[str, dict[str, float]], path: str | Path, *, title: str,
                bounds: dict[str, float] | None = None, labels: bool = False) -> Path:
    check_plot_path(path)
    return save_figure(ratios_figure(groups, title=title, bounds=bounds, labels=labels), path)


def comparison_figure(report):
    """A CompareReport: every variant's median latency over the static twin's, grouped by runtime,
    precision and batch (each group labelled with the twin's own median)."""
    groups: dict[str, dict[str, float]] = {}
    for row in report.rows:
        if row.ratio is None:
            continue
        twin = report.row(STATIC, row.run.key)
        label = f"{row.run.key}\n(twin {_ms(twin.run.latency.median_ms)})" if twin else row.run.key
        groups.setdefault(label, {})[row.variant] = row.ratio
    height, width = report.input_size
    title = (f"{report.model} vs its static twin {report.twin} at {height}x{width}, "
             f"{report.threads or 'auto'} threads\n{report.machine.get('cpu', '')}")
    return ratios_figure(groups, title=title, labels=True)


def plot_comparison(report, path: str | Path) -> Path:
    check_plot_path(path)
    return save_figure(comparison_figure(report), path)
