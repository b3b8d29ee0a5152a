"""PNG charts of profile and compare results (matplotlib, without a display)."""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputError
from ..extras import require
from .layers import CATEGORIES

_COLORS = {"odconv attention": "#d62728", "odconv convolution": "#1f77b4", "other": "#7f7f7f"}


def _figure(rows: int):
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no display needed; also keeps a CLI run from opening windows
    import matplotlib.pyplot as plt

    return plt, plt.subplots(rows, 1, figsize=(10, 3.2 + 3.2 * rows), squeeze=False)


def check_plot_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"--plot {path}: the chart is written as PNG", hint="give the file a .png name")
    require("matplotlib")
    return path


def _save(plt, figure, path: Path) -> Path:
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


def plot_profile(report, path: str | Path) -> Path:
    """A ProfileReport: median latency per configuration (whiskers: min to p99) and, when measured, the
    per-layer time split into ODConv attention, ODConv convolution and the rest."""
    runs = list(report.runs)
    with_layers = [run for run in runs if run.layers is not None]
    plt, (figure, axes) = _figure(2 if with_layers else 1)
    labels = [f"{run.runtime}\n{run.precision} b{run.batch}" for run in runs]
    medians = [run.latency.median_ms for run in runs]
    low = [run.latency.median_ms - run.latency.min_ms for run in runs]
    high = [run.latency.p99_ms - run.latency.median_ms for run in runs]
    axis = axes[0][0]
    axis.bar(labels, medians, yerr=[low, high], capsize=4, color="#4c72b0")
    axis.set_ylabel("latency, ms (median; min to p99)")
    axis.set_title(f"{Path(report.model_file).name} at {report.input_size[0]}x{report.input_size[1]}")
    if with_layers:
        axis = axes[1][0]
        names = [f"{run.runtime}\n{run.precision} b{run.batch}" for run in with_layers]
        bottom = [0.0] * len(with_layers)
        for category in CATEGORIES:
            values = [run.layers.by_category.get(category, 0.0) for run in with_layers]
            axis.bar(names, values, bottom=bottom, label=category, color=_COLORS[category])
            bottom = [b + v for b, v in zip(bottom, values)]
        axis.set_ylabel("summed node time, ms")
        axis.set_title("per-layer time by kind")
        axis.legend()
    return _save(plt, figure, path)


def plot_ratios(groups: dict[str, dict[str, float]], path: str | Path, *, title: str,
                bounds: dict[str, float] | None = None) -> Path:
    """groups: {group label (e.g. a model and runtime): {variant: ratio to the static twin}} as grouped
    bars; bounds: {group label: target ratio} drawn as a marker per group."""
    import numpy as np

    plt, (figure, axes) = _figure(1)
    axis = axes[0][0]
    variants = list(dict.fromkeys(v for ratios in groups.values() for v in ratios))
    positions = np.arange(len(groups))
    width = 0.8 / max(len(variants), 1)
    for index, variant in enumerate(variants):
        values = [ratios.get(variant, np.nan) for ratios in groups.values()]
        axis.bar(positions + index * width - 0.4 + width / 2, values, width, label=variant)
    if bounds:
        targets = [bounds.get(label, np.nan) for label in groups]
        axis.scatter(positions, targets, marker="_", s=900, color="black", zorder=3, label="target")
    axis.axhline(1.0, color="gray", linewidth=0.8)
    axis.set_xticks(positions, list(groups), rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("median latency / static twin")
    axis.set_yscale("log")
    axis.set_title(title)
    axis.legend(fontsize=7, ncols=2)
    figure.set_size_inches(max(10, len(groups) * 0.6), 6)
    return _save(plt, figure, path)


def plot_comparison(report, path: str | Path) -> Path:
    """A CompareReport: ratio to the static twin per variant, grouped by runtime, precision and batch."""
    groups: dict[str, dict[str, float]] = {}
    for row in report.rows:
        if row.ratio is not None:
            groups.setdefault(row.run.key, {})[row.variant] = row.ratio
    return plot_ratios(groups, path, title=f"{report.model} vs {report.twin}")
