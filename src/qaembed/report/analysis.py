"""Per-loss aggregates with seed-aware intervals and tests, and the report's plain summary.

For each row label (the baseline and every grid entry) and each main metric, the label's
finished runs give an (S seeds, Q questions) matrix of per-question test values:

* the interval is a crossed hierarchical bootstrap over seeds and questions
  (:func:`qaembed.suite.stats.hierarchical_bootstrap_ci`), the same method for every row,
  the baseline included (one deterministic run: S = 1);
* each loss is compared with the zero-shot baseline and with standard InfoNCE by
  :func:`qaembed.suite.stats.seed_aware_test` on per-question differences (seed t-test with
  conservative Satterthwaite degrees of freedom; with one seed a permutation test of *this run*), paired by seed
  for two trained rows; p-values are Holm-corrected across the losses compared with the same
  reference on the same metric, and every comparison carries its minimum detectable effect.

Questions where a metric is undefined (NaN, e.g. tied votes for Kendall tau) are left out of
that metric; a comparison uses the questions defined in every run it involves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qaembed.report.collect import SuiteData
from qaembed.suite.grid import BASELINE_NAME, REFERENCE_NAME
from qaembed.suite.stats import (
    ALPHA,
    Interval,
    SeedAwareTest,
    hierarchical_bootstrap_ci,
    holm_bonferroni,
    seed_aware_test,
)

PRIMARY_METRIC = "retrieval/graded_ndcg@10"
MAIN_METRICS: dict[str, str] = {
    PRIMARY_METRIC: "graded NDCG@10",
    "retrieval/ndcg@10": "NDCG@10",
    "retrieval/mrr@10": "MRR@10",
    "within/accuracy@1": "within acc@1",
    "within/kendall_tau": "within Kendall τ",
}
METRIC_EXPLANATIONS: dict[str, str] = {
    PRIMARY_METRIC: "full-corpus retrieval, NDCG@10 with vote gains: the question's top-voted answer has gain 1, "
                    "its other answers less by their votes, every other document 0 (the headline)",
    "retrieval/ndcg@10": "the same ranking with binary gains (any answer of the question counts as relevant)",
    "retrieval/mrr@10": "reciprocal rank of the first answer of the question in the top 10",
    "within/accuracy@1": "among the question's own answers only: is the top-voted answer ranked first?",
    "within/kendall_tau": "among the question's own answers only: rank agreement with the votes (-1 to 1)",
}
# pair data (docs/pairs.md): duplicate retrieval, every question with a labelled duplicate queries the split
PAIR_PRIMARY_METRIC = "retrieval/mrr@10"
PAIR_METRICS: dict[str, str] = {
    PAIR_PRIMARY_METRIC: "MRR@10",
    "retrieval/ndcg@10": "NDCG@10",
    "retrieval/recall@1": "recall@1",
    "retrieval/recall@5": "recall@5",
}
PAIR_METRIC_EXPLANATIONS: dict[str, str] = {
    PAIR_PRIMARY_METRIC: "duplicate retrieval: each test question that has a labelled duplicate queries every other "
                         "question of the test split; reciprocal rank of its first duplicate in the top 10 (the headline, "
                         "as the original project's 0.4605 → 0.4557)",
    "retrieval/ndcg@10": "the same ranking, NDCG@10 with every labelled duplicate relevant",
    "retrieval/recall@1": "share of the question's labelled duplicates ranked first",
    "retrieval/recall@5": "share of the question's labelled duplicates in the top 5",
}
STATS_SEED = 0
DEV_METRIC = f"dev/{PRIMARY_METRIC}"


def metrics_for(kind: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(primary metric, main metrics, their explanations) for ``"qa"`` or ``"pairs"`` data."""
    if kind == "pairs":
        return PAIR_PRIMARY_METRIC, PAIR_METRICS, PAIR_METRIC_EXPLANATIONS
    return PRIMARY_METRIC, MAIN_METRICS, METRIC_EXPLANATIONS


@dataclass
class Comparison:
    reference: str  # label compared with
    metric: str
    test: SeedAwareTest
    p_holm: float

    @property
    def mean_difference(self) -> float:
        return self.test.mean_difference

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    @property
    def below_mde(self) -> bool:
        """A non-significant difference smaller than what this design can detect: inconclusive."""
        return not self.significant and abs(self.test.mean_difference) < self.test.mde

    @property
    def identical(self) -> bool:
        """Every difference is zero (up to rounding): nothing to test, and no variance to size an MDE with."""
        return abs(self.test.mean_difference) <= 1e-12 and self.test.std_error <= 1e-12

    @property
    def direction(self) -> str:
        """"better", "worse" or "n.s." (not significant)."""
        if not self.significant:
            return "n.s."
        return "better" if self.mean_difference > 0 else "worse"

    def to_dict(self) -> dict[str, object]:
        return {"reference": self.reference, "metric": self.metric, **self.test._asdict(), "p_holm": self.p_holm,
                "significant": self.significant, "below_mde": self.below_mde}


@dataclass
class LabelSummary:
    label: str
    description: str
    n_runs: int
    n_ok: int
    seeds: list[int] = field(default_factory=list)  # seeds of the finished runs, in run order
    per_seed: dict[int, pd.DataFrame] = field(default_factory=dict)  # seed -> per-question test values
    intervals: dict[str, Interval] = field(default_factory=dict)
    vs_baseline: dict[str, Comparison] = field(default_factory=dict)
    vs_reference: dict[str, Comparison] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # "run_id: error" of failed runs
    wall_time_s: float | None = None  # mean over finished runs
    texts_per_s: float | None = None
    spent: dict[str, float] = field(default_factory=dict)  # mean steps / texts / tokens / questions

    @property
    def per_question(self) -> pd.DataFrame | None:
        """Per-question values averaged over the finished seeds (for examples and plots)."""
        if not self.per_seed:
            return None
        return pd.concat(list(self.per_seed.values()), axis=0).groupby(level=0, sort=False).mean()

    def matrix(self, metric: str, seeds: list[int], questions: pd.Index) -> np.ndarray:
        """(len(seeds), len(questions)) values of ``metric``."""
        return np.stack([self.per_seed[s].loc[questions, metric].to_numpy(dtype=np.float64) for s in seeds])

    def defined_questions(self, metric: str) -> pd.Index | None:
        """Questions where ``metric`` is defined in every finished run."""
        index = None
        for table in self.per_seed.values():
            if metric not in table:
                return None
            defined = table.index[table[metric].notna().to_numpy()]
            index = defined if index is None else index.intersection(defined, sort=False)
        return index


@dataclass
class DevTrend:
    """How the dev metric moved during training: step 0 (the base model) vs the final evaluation."""

    metric: str
    lowered: list[str]  # run ids whose final dev value is below step 0
    raised: list[str]
    labels_lowered: list[str]  # losses whose mean change over seeds is negative
    labels: int  # losses with a dev curve


@dataclass
class Analysis:
    rows: list[LabelSummary]
    metrics: dict[str, str]
    reference: str | None  # REFERENCE_NAME when it has finished runs, else None
    n_seeds: int = 1  # most finished seeds of any trained row
    dev_trend: DevTrend | None = None
    notes: list[str] = field(default_factory=list)  # base-model (contamination) notes from suite.json
    preset: str | None = None
    primary: str = PRIMARY_METRIC  # the headline metric (MRR@10 on pair data)
    kind: str = "qa"  # "qa" or "pairs" (suite.json data.kind)

    def row(self, label: str) -> LabelSummary | None:
        return next((r for r in self.rows if r.label == label), None)


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _summarize_label(suite: SuiteData, label: str, metrics: dict[str, str]) -> LabelSummary:
    runs = suite.runs_of(label)
    ok = [r for r in runs if r.ok and r.per_question is not None]
    summary = LabelSummary(label=label, description=suite.description(label), n_runs=len(runs), n_ok=len(ok))
    summary.errors = [f"{r.run_id}: {r.status.error}" for r in runs if r.status is not None and not r.ok]
    summary.errors += [f"{r.run_id}: not run" for r in runs if r.status is None]
    if not ok:
        return summary
    summary.seeds = [r.seed for r in ok]
    summary.per_seed = {r.seed: r.per_question for r in ok}
    summary.wall_time_s = _mean_or_none([r.status.wall_time_s for r in ok])
    summary.texts_per_s = _mean_or_none([r.status.texts_per_s for r in ok])
    for key in ("steps", "texts", "tokens", "questions"):
        value = _mean_or_none([getattr(r.status, key) for r in ok])
        if value is not None:
            summary.spent[key] = value
    for metric in metrics:
        questions = summary.defined_questions(metric)
        if questions is None or questions.empty:
            continue
        summary.intervals[metric] = hierarchical_bootstrap_ci(summary.matrix(metric, summary.seeds, questions),
                                                              seed=STATS_SEED)
    return summary


def _compare(rows: list[LabelSummary], reference: LabelSummary, metric: str) -> dict[str, Comparison]:
    """Seed-aware paired tests of every row against ``reference`` on ``metric``, Holm-corrected together."""
    ref_questions = reference.defined_questions(metric)
    if ref_questions is None:
        return {}
    tests: list[tuple[str, SeedAwareTest]] = []
    for row in rows:
        questions = row.defined_questions(metric)
        if questions is None:
            continue
        questions = questions.intersection(ref_questions, sort=False)
        if questions.empty:
            continue
        if len(reference.seeds) == 1 and reference.label == BASELINE_NAME:
            seeds, ref_seeds = row.seeds, reference.seeds  # the baseline has no training seed
        else:
            seeds = [s for s in row.seeds if s in reference.seeds]  # pair runs by seed
            ref_seeds = seeds
        if not seeds:
            continue
        test = seed_aware_test(row.matrix(metric, seeds, questions), reference.matrix(metric, ref_seeds, questions),
                               seed=STATS_SEED)
        tests.append((row.label, test))
    adjusted = holm_bonferroni([t.p_value for _, t in tests])
    return {label: Comparison(reference.label, metric, test, float(p)) for (label, test), p in zip(tests, adjusted)}


def _dev_trend(suite: SuiteData, primary: str = PRIMARY_METRIC, name: str = "graded NDCG@10") -> DevTrend | None:
    dev_metric = f"dev/{primary}"
    lowered, raised = [], []
    changes: dict[str, list[float]] = {}
    for run in suite.runs:
        if run.kind != "train" or not run.ok or run.curve is None or dev_metric not in run.curve:
            continue
        points = run.curve[["step", dev_metric]].dropna().sort_values("step", kind="stable")
        if len(points) < 2 or points["step"].iloc[0] != 0:
            continue
        change = float(points[dev_metric].iloc[-1] - points[dev_metric].iloc[0])
        (lowered if change < 0 else raised).append(run.run_id)
        changes.setdefault(run.label, []).append(change)
    if not changes:
        return None
    labels_lowered = [label for label, values in changes.items() if np.mean(values) < 0]
    return DevTrend(name, lowered, raised, labels_lowered, len(changes))


def analyze(suite: SuiteData) -> Analysis:
    """Aggregate every label of a suite and test it against the baseline and InfoNCE."""
    kind = suite.data.get("kind", "qa")
    primary, main_metrics, _ = metrics_for(kind)
    rows = [_summarize_label(suite, label, main_metrics) for label in suite.labels()]
    by_label = {r.label: r for r in rows}
    baseline = by_label.get(BASELINE_NAME)
    reference = by_label.get(REFERENCE_NAME)
    if reference is not None and reference.n_ok == 0:
        reference = None
    for metric in main_metrics:
        if baseline is not None and baseline.n_ok:
            compared = [r for r in rows if r.label != BASELINE_NAME and r.n_ok]
            for label, comparison in _compare(compared, baseline, metric).items():
                by_label[label].vs_baseline[metric] = comparison
        if reference is not None:
            compared = [r for r in rows if r.label not in (BASELINE_NAME, REFERENCE_NAME) and r.n_ok]
            for label, comparison in _compare(compared, reference, metric).items():
                by_label[label].vs_reference[metric] = comparison
    trained = [r for r in rows if r.label != BASELINE_NAME]
    return Analysis(
        rows=rows, metrics=dict(main_metrics), reference=reference.label if reference else None,
        n_seeds=max((len(r.seeds) for r in trained), default=1),
        dev_trend=_dev_trend(suite, primary, main_metrics[primary]),
        notes=suite.base_model_notes, preset=suite.config.preset, primary=primary, kind=kind,
    )


def format_p(p: float) -> str:
    """``p`` to 2 significant digits, more where rounding would cross ALPHA (an adjusted 0.0496 is not "0.05")."""
    for digits in range(2, 7):
        text = f"{p:.{digits}g}"
        if (float(text) < ALPHA) == (p < ALPHA):
            break
    return text


def _difference(comparison: Comparison) -> str:
    return f"{comparison.mean_difference:+.3f}, p={format_p(comparison.p_holm)}"


def minimum_detectable_effects(analysis: Analysis, metric: str | None = None) -> list[float]:
    metric = metric or analysis.primary
    return [r.vs_baseline[metric].test.mde for r in analysis.rows
            if metric in r.vs_baseline and np.isfinite(r.vs_baseline[metric].test.mde)
            and not r.vs_baseline[metric].identical]


def _fewer_seeds(analysis: Analysis, metric: str) -> list[str]:
    """Sentences naming losses without a result and comparisons on fewer seeds (or questions) than the suite's."""
    trained = [r for r in analysis.rows if r.label != BASELINE_NAME]
    lines = []
    missing = [r.label for r in trained if not r.n_ok]
    if missing:
        lines.append(f"No finished run, so not compared: {', '.join(missing)}.")
    baseline = analysis.row(BASELINE_NAME)
    base = baseline.intervals.get(metric) if baseline is not None else None
    fewer = []
    for row in trained:
        parts = []
        for against, comparison in (("baseline", row.vs_baseline.get(metric)),
                                    (analysis.reference, row.vs_reference.get(metric))):
            if comparison is None:
                continue
            test, short = comparison.test, []
            if test.n_seeds < analysis.n_seeds:
                short.append(f"{test.n_seeds} of {analysis.n_seeds} seeds")
            if base is not None and test.n_questions < base.n_questions:
                short.append(f"{test.n_questions} of {base.n_questions} questions")
            if short:
                parts.append(f"{' and '.join(short)} vs {against}")
        if parts:
            fewer.append(f"{row.label} ({'; '.join(parts)})")
    if fewer:
        lines.append("Compared on fewer runs than the others (failed or missing runs; a comparison with one seed is a "
                     "permutation test of that run, without seed variance): " + ", ".join(fewer) + ".")
    return lines


def plain_summary(analysis: Analysis, metric: str | None = None) -> list[str]:
    """Short plain-language sentences a person can read in a minute: the verdict and what limits it."""
    metric = metric or analysis.primary
    name = analysis.metrics[metric]
    lines: list[str] = []
    if analysis.preset == "quick":
        lines.append("This is the quick preset, a smoke test: it shows the pipeline works end to end; its budget is "
                     "too small for a verdict on the losses (use --preset cpu, or full on a GPU).")
    trend = analysis.dev_trend
    if trend is not None and trend.labels and len(trend.labels_lowered) * 2 > trend.labels:
        lines.append(f"Warning: at this budget fine-tuning lowers dev {trend.metric} for {len(trend.labels_lowered)} of "
                     f"{trend.labels} losses (below the base model's step-0 value): raise the budget or lower the "
                     "learning rate before reading the comparison.")
    one_seed = analysis.n_seeds == 1
    baseline = analysis.row(BASELINE_NAME)
    trained = [r for r in analysis.rows if r.label != BASELINE_NAME]
    if baseline is None or not baseline.n_ok or metric not in baseline.intervals:
        lines.append(f"The zero-shot baseline has no {name} result, so no loss could be tested against it.")
    else:
        base = baseline.intervals[metric]
        lead = ("This run (one seed per loss; seed-to-seed variance is not measured, so the tests say whether "
                "these trained models differ, not whether the losses do): "
                if one_seed else f"With {analysis.n_seeds} seeds per loss (the seed is treated as a random effect): ")
        groups: dict[str, list[str]] = {"better": [], "n.s.": [], "worse": []}
        ordered = sorted(trained, key=lambda r: -(r.intervals[metric].mean if metric in r.intervals else -np.inf))
        for row in ordered:
            comparison = row.vs_baseline.get(metric)
            if comparison is not None:
                groups[comparison.direction].append(f"{row.label} ({_difference(comparison)})")
        n_tested = sum(len(v) for v in groups.values())
        lines.append(
            lead + f"on {name} over {base.n_questions} test questions the zero-shot base model scores {base.mean:.3f}; "
            f"{len(groups['better'])} of {n_tested} losses beat it significantly"
            + (f": {', '.join(groups['better'])}." if groups["better"] else ".")
        )
        if groups["worse"]:
            lines.append(f"Significantly worse than the baseline: {', '.join(groups['worse'])}.")
        if groups["n.s."]:
            lines.append(f"Not significantly different from the baseline: {', '.join(groups['n.s.'])}.")
        identical = [r.label for r in ordered if metric in r.vs_baseline and r.vs_baseline[metric].identical]
        if identical:
            lines.append(f"Identical to the baseline on every test question in every run (fine-tuning changed no "
                         f"{name} value): {', '.join(identical)}.")
        mdes = minimum_detectable_effects(analysis, metric)
        if mdes:
            below = [r.label for r in trained if metric in r.vs_baseline and r.vs_baseline[metric].below_mde]
            text = (f"Resolution: with {analysis.n_seeds} seed(s) and {base.n_questions} questions this suite detects a "
                    f"difference from the baseline of about {float(np.median(mdes)):.3f} in {name} with 80% power "
                    f"(α = {ALPHA}; range {min(mdes):.3f}–{max(mdes):.3f} over losses)")
            if below:
                text += (f"; {len(below)} non-significant difference(s) are smaller than that, so they are "
                         f"inconclusive, not evidence of no effect: {', '.join(below)}")
            lines.append(text + ".")
    if analysis.reference is not None:
        better = [r for r in trained if r.vs_reference.get(metric) and r.vs_reference[metric].direction == "better"]
        worse = [r for r in trained if r.vs_reference.get(metric) and r.vs_reference[metric].direction == "worse"]
        text = f"Against standard InfoNCE ({analysis.reference}): "
        text += ("significantly better: " + ", ".join(f"{r.label} ({_difference(r.vs_reference[metric])})" for r in better)
                 if better else "no loss is significantly better")
        text += ("; significantly worse: " + ", ".join(f"{r.label} ({_difference(r.vs_reference[metric])})" for r in worse)
                 if worse else "; none is significantly worse")
        lines.append(text + ".")
    if any(c.test.n_seeds == 2 for r in trained for c in (r.vs_baseline.get(metric), r.vs_reference.get(metric))
           if c is not None):
        lines.append("With 2 seeds the seed-to-seed variance rests on one degree of freedom: the seed t-test keeps its "
                     f"{ALPHA:.0%} false-positive rate while seeds vary less than question sampling does (a seed sd "
                     "up to about 1.4 times the question-sampling standard error of the difference) and can reach "
                     "about 10% when they vary more (simulated, docs/suite.md); 3 or more seeds give a firm verdict.")
    lines += _fewer_seeds(analysis, metric)
    lines += analysis.notes
    failed = [e for r in analysis.rows for e in r.errors]
    if failed:
        lines.append(f"{len(failed)} run(s) did not finish; see the failures table.")
    method = ("paired sign-flip permutation test over test questions (one seed)" if one_seed
              else "paired seed t-test (variance from seeds and questions, conservative Satterthwaite degrees of freedom)")
    if not one_seed and any(c.test.n_seeds == 1 for r in trained
                            for c in (r.vs_baseline.get(metric), r.vs_reference.get(metric)) if c is not None):
        method += ", a permutation test over questions where a comparison has one seed"
    lines.append(f"Differences are mean per-question differences on the test split; p-values: {method}, "
                 f"Holm-corrected across losses; significant means adjusted p < {ALPHA}.")
    return lines
