"""Per-loss aggregates: means with 95% intervals and paired significance tests.

For each row label (the baseline and every grid entry):

* the interval of each main metric is over seeds (Student t) when the label has >= 2
  finished seeds, otherwise a percentile bootstrap over test questions;
* per-question values are averaged over the label's seeds, then compared question by
  question with the baseline and with standard InfoNCE by a paired sign-flip permutation
  test; p-values are Holm-Bonferroni corrected across the losses compared with the same
  reference on the same metric. "Significant" means adjusted p < :data:`ALPHA`.

Questions where a metric is undefined (NaN, e.g. a question with tied votes for Kendall tau)
are left out of that metric's test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qaembed.report.collect import SuiteData
from qaembed.suite.grid import BASELINE_NAME, REFERENCE_NAME
from qaembed.suite.stats import Interval, bootstrap_ci, holm_bonferroni, paired_permutation_test, seed_ci

MAIN_METRICS: dict[str, str] = {
    "retrieval/ndcg@10": "NDCG@10",
    "retrieval/mrr@10": "MRR@10",
    "within/accuracy@1": "within acc@1",
    "within/kendall_tau": "within Kendall τ",
}
PRIMARY_METRIC = "retrieval/ndcg@10"
ALPHA = 0.05
STATS_SEED = 0


@dataclass
class Comparison:
    reference: str  # label compared with
    metric: str
    mean_difference: float  # row minus reference, mean over paired questions
    p_value: float
    p_holm: float
    n_questions: int

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    @property
    def direction(self) -> str:
        """"better", "worse" or "n.s." (not significant)."""
        if not self.significant:
            return "n.s."
        return "better" if self.mean_difference > 0 else "worse"


@dataclass
class LabelSummary:
    label: str
    description: str
    n_runs: int
    n_ok: int
    intervals: dict[str, Interval] = field(default_factory=dict)
    per_question: pd.DataFrame | None = None  # mean over the label's finished seeds
    vs_baseline: dict[str, Comparison] = field(default_factory=dict)
    vs_reference: dict[str, Comparison] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # "run_id: error" of failed runs
    wall_time_s: float | None = None  # mean over finished runs
    texts_per_s: float | None = None


@dataclass
class Analysis:
    rows: list[LabelSummary]
    metrics: dict[str, str]
    reference: str | None  # REFERENCE_NAME when it has finished runs, else None

    def row(self, label: str) -> LabelSummary | None:
        return next((r for r in self.rows if r.label == label), None)


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _summarize_label(suite: SuiteData, label: str) -> LabelSummary:
    runs = suite.runs_of(label)
    ok = [r for r in runs if r.ok]
    summary = LabelSummary(label=label, description=suite.description(label), n_runs=len(runs), n_ok=len(ok))
    summary.errors = [f"{r.run_id}: {r.status.error}" for r in runs if r.status is not None and not r.ok]
    summary.errors += [f"{r.run_id}: not run" for r in runs if r.status is None]
    if not ok:
        return summary
    summary.wall_time_s = _mean_or_none([r.status.wall_time_s for r in ok])
    summary.texts_per_s = _mean_or_none([r.status.texts_per_s for r in ok])
    tables = [r.per_question for r in ok if r.per_question is not None]
    if tables:
        stacked = pd.concat(tables, axis=0)
        summary.per_question = stacked.groupby(level=0, sort=False).mean()
    for metric in MAIN_METRICS:
        seed_values = [r.status.summary[metric] for r in ok if metric in r.status.summary]
        if len(seed_values) >= 2:
            summary.intervals[metric] = seed_ci(seed_values)
        elif summary.per_question is not None and metric in summary.per_question:
            values = summary.per_question[metric].dropna().to_numpy()
            if values.size:
                summary.intervals[metric] = bootstrap_ci(values, seed=STATS_SEED)
    return summary


def _compare(rows: list[LabelSummary], reference: LabelSummary, metric: str) -> dict[str, Comparison]:
    """Paired tests of every row against ``reference`` on ``metric``, Holm-corrected together."""
    raw: list[tuple[str, float, float, int]] = []
    ref = reference.per_question
    if ref is None or metric not in ref:
        return {}
    for row in rows:
        if row.per_question is None or metric not in row.per_question:
            continue
        paired = pd.concat([row.per_question[metric], ref[metric]], axis=1, join="inner").dropna()
        if paired.empty:
            continue
        test = paired_permutation_test(paired.iloc[:, 0].to_numpy(), paired.iloc[:, 1].to_numpy(), seed=STATS_SEED)
        raw.append((row.label, test.mean_difference, test.p_value, test.n_questions))
    adjusted = holm_bonferroni([p for _, _, p, _ in raw])
    return {
        label: Comparison(reference.label, metric, diff, p, float(p_adj), n)
        for (label, diff, p, n), p_adj in zip(raw, adjusted)
    }


def analyze(suite: SuiteData) -> Analysis:
    """Aggregate every label of a suite and test it against the baseline and InfoNCE."""
    rows = [_summarize_label(suite, label) for label in suite.labels()]
    by_label = {r.label: r for r in rows}
    baseline = by_label.get(BASELINE_NAME)
    reference = by_label.get(REFERENCE_NAME)
    if reference is not None and reference.n_ok == 0:
        reference = None
    for metric in MAIN_METRICS:
        if baseline is not None and baseline.n_ok:
            compared = [r for r in rows if r.label != BASELINE_NAME]
            for label, comparison in _compare(compared, baseline, metric).items():
                by_label[label].vs_baseline[metric] = comparison
        if reference is not None:
            compared = [r for r in rows if r.label not in (BASELINE_NAME, REFERENCE_NAME)]
            for label, comparison in _compare(compared, reference, metric).items():
                by_label[label].vs_reference[metric] = comparison
    return Analysis(rows=rows, metrics=dict(MAIN_METRICS), reference=reference.label if reference else None)


def plain_summary(analysis: Analysis, metric: str = PRIMARY_METRIC) -> list[str]:
    """Short plain-language sentences: which losses beat the baseline (and InfoNCE), by how much."""
    name = analysis.metrics[metric]
    baseline = analysis.row(BASELINE_NAME)
    lines: list[str] = []
    trained = [r for r in analysis.rows if r.label != BASELINE_NAME]
    if baseline is None or not baseline.n_ok or metric not in baseline.intervals:
        lines.append(f"The zero-shot baseline has no {name} result, so no loss could be tested against it.")
    else:
        base_mean = baseline.intervals[metric].mean
        groups: dict[str, list[str]] = {"better": [], "n.s.": [], "worse": []}
        for row in sorted(trained, key=lambda r: -(r.intervals[metric].mean if metric in r.intervals else -np.inf)):
            comparison = row.vs_baseline.get(metric)
            if comparison is None:
                continue
            groups[comparison.direction].append(
                f"{row.label} ({comparison.mean_difference:+.3f}, p={comparison.p_holm:.3g})"
            )
        n_tested = sum(len(v) for v in groups.values())
        lines.append(
            f"On full-corpus {name} the zero-shot base model scores {base_mean:.3f}. "
            f"{len(groups['better'])} of {n_tested} losses beat it significantly"
            + (f": {', '.join(groups['better'])}." if groups["better"] else ".")
        )
        if groups["n.s."]:
            lines.append(f"Not significantly different from the baseline: {', '.join(groups['n.s.'])}.")
        if groups["worse"]:
            lines.append(f"Significantly worse than the baseline: {', '.join(groups['worse'])}.")
    if analysis.reference is not None:
        better = [r for r in trained if r.vs_reference.get(metric) and r.vs_reference[metric].direction == "better"]
        worse = [r for r in trained if r.vs_reference.get(metric) and r.vs_reference[metric].direction == "worse"]
        text = f"Against standard InfoNCE ({analysis.reference}): "
        text += (
            "significantly better: " + ", ".join(f"{r.label} ({r.vs_reference[metric].mean_difference:+.3f})" for r in better)
            if better else "no loss is significantly better"
        )
        text += (
            "; significantly worse: " + ", ".join(f"{r.label} ({r.vs_reference[metric].mean_difference:+.3f})" for r in worse)
            if worse else "; none is significantly worse"
        )
        lines.append(text + ".")
    failed = [e for r in analysis.rows for e in r.errors]
    if failed:
        lines.append(f"{len(failed)} run(s) did not finish; see the failures table.")
    lines.append(
        "Differences are mean per-question differences on the test split; p-values come from a paired "
        f"permutation test, Holm-corrected across losses; significant means adjusted p < {ALPHA}."
    )
    return lines
