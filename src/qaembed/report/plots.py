"""The report's PNG figures (matplotlib, Agg backend): metrics with intervals, curves, cost."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qaembed.figures import save_figure  # noqa: E402
from qaembed.report.analysis import PRIMARY_METRIC, Analysis  # noqa: E402
from qaembed.report.collect import SuiteData  # noqa: E402
from qaembed.suite.grid import BASELINE_NAME  # noqa: E402

_BASELINE_COLOR = "#888888"
_COLOR = "#3b6ea8"
_SIGNIFICANT_COLOR = "#2e8b57"
_WORSE_COLOR = "#c0504d"


def plot_metrics(analysis: Analysis, path: Path) -> Path:
    """One panel per main metric: mean and 95% interval per loss; the baseline as a grey line."""
    metrics = list(analysis.metrics)
    rows = [r for r in analysis.rows if r.intervals]
    labels = [r.label for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 0.38 * len(labels) + 1.6), sharey=True)
    y = np.arange(len(labels))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        means = np.array([r.intervals[metric].mean if metric in r.intervals else np.nan for r in rows])
        low = np.array([r.intervals[metric].low if metric in r.intervals else np.nan for r in rows])
        high = np.array([r.intervals[metric].high if metric in r.intervals else np.nan for r in rows])
        colors = []
        for r in rows:
            comparison = r.vs_baseline.get(metric)
            if r.label == BASELINE_NAME:
                colors.append(_BASELINE_COLOR)
            elif comparison is not None and comparison.direction == "better":
                colors.append(_SIGNIFICANT_COLOR)
            elif comparison is not None and comparison.direction == "worse":
                colors.append(_WORSE_COLOR)
            else:
                colors.append(_COLOR)
        ax.barh(y, means, xerr=np.vstack([means - low, high - means]), color=colors, capsize=3, height=0.6)
        baseline = analysis.row(BASELINE_NAME)
        if baseline is not None and metric in baseline.intervals:
            ax.axvline(baseline.intervals[metric].mean, color=_BASELINE_COLOR, linestyle="--", linewidth=1)
        finite = np.concatenate([low[np.isfinite(low)], high[np.isfinite(high)]])
        if finite.size:
            span = finite.max() - finite.min()
            ax.set_xlim(finite.min() - 0.15 * span - 1e-3, finite.max() + 0.15 * span + 1e-3)
        ax.set_title(analysis.metrics[metric], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(y, labels, fontsize=8)
    first.invert_yaxis()
    fig.suptitle("Test metrics, mean and 95% interval (green/red: significantly better/worse than baseline)",
                 fontsize=10)
    return save_figure(fig, path)


def dev_metric_column(columns: list[str], metric: str = PRIMARY_METRIC) -> str | None:
    """The metrics.jsonl column holding the dev-split value of ``metric`` (``dev/retrieval/ndcg@10``)."""
    column = f"dev/{metric}"
    return column if column in columns else None


def _trained_labels(suite: SuiteData) -> list[str]:
    return [label for label in suite.labels() if label != BASELINE_NAME]


def plot_loss_curves(suite: SuiteData, path: Path) -> Path:
    """Training loss per step, one small panel per loss (each on its own scale), one line per seed."""
    labels = _trained_labels(suite)
    columns = min(4, max(1, len(labels)))
    rows = max(1, -(-len(labels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.4 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, label in zip(axes.flat, labels):
        for index, run in enumerate(suite.runs_of(label)):
            curve = run.curve
            if curve is None or "loss" not in curve:
                continue
            points = curve[["step", "loss"]].dropna()
            color = cmap(index % 10)
            ax.plot(points["step"], points["loss"], color=color, alpha=0.3, linewidth=0.8)
            window = max(1, len(points) // 10)
            ax.plot(points["step"], points["loss"].rolling(window, min_periods=1).mean(), color=color,
                    linewidth=1.5, label=f"seed {run.seed}")
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle("Training loss per step (faint: raw; solid: running mean)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_dev_curves(suite: SuiteData, path: Path, metric: str = PRIMARY_METRIC) -> Path:  # pairs: MRR@10
    """The dev metric at every evaluation (step 0 is the base model), all runs on one scale."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    cmap = plt.get_cmap("tab20")
    x_label = "step"
    for index, label in enumerate(_trained_labels(suite)):
        for seed_index, run in enumerate(suite.runs_of(label)):
            curve = run.curve
            column = dev_metric_column(list(curve.columns), metric) if curve is not None else None
            if column is None:
                continue
            x = "texts" if "texts" in curve else "step"  # runs spend one budget in different numbers of steps
            points = curve[[x, column]].dropna()
            ax.plot(points[x], points[column], color=cmap(index % 20), marker="o", markersize=3, linewidth=1,
                    label=label if seed_index == 0 else None)
            x_label = "texts encoded" if x == "texts" else "step"
    ax.set_title(f"dev {metric} during training (first point = base model)", fontsize=10)
    ax.set_xlabel(x_label)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return save_figure(fig, path)


def plot_cost(suite: SuiteData, path: Path) -> Path:
    """Wall time and training throughput (texts/s) per finished run."""
    runs = [r for r in suite.runs if r.ok]
    names = [r.run_id for r in runs]
    wall = np.array([r.status.wall_time_s for r in runs])
    throughput = np.array([r.status.texts_per_s if r.status.texts_per_s is not None else np.nan for r in runs])
    fig, (ax_time, ax_rate) = plt.subplots(1, 2, figsize=(11, 0.32 * len(names) + 1.6), sharey=True)
    y = np.arange(len(names))
    colors = [_BASELINE_COLOR if r.label == BASELINE_NAME else _COLOR for r in runs]
    ax_time.barh(y, wall, color=colors, height=0.6)
    ax_time.set_title("wall time per run (s): training + evaluation", fontsize=10)
    ax_rate.barh(y, np.nan_to_num(throughput), color=colors, height=0.6)
    ax_rate.set_title("training throughput (texts/s)", fontsize=10)
    ax_time.set_yticks(y, names, fontsize=8)
    ax_time.invert_yaxis()
    for ax in (ax_time, ax_rate):
        ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)
