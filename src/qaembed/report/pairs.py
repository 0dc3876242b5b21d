"""The report's pair-classification section (duplicate-question data): AP, F1 and accuracy with intervals.

Every run of a pair suite writes ``eval/per_pair.parquet``: the cosine score of each test pair,
its label, and its predictions at the accuracy and F1 thresholds chosen on the dev pairs (the
thresholds belong to the run's model). Average precision, F1 and accuracy are corpus-level
statistics (one number for the whole test split, not a mean over questions), so the per-question
bootstrap of the main table does not apply; :func:`qaembed.suite.stats.pair_classification_bootstrap`
resamples seeds and then test pairs instead, and gives the difference from the zero-shot baseline
on the same resampled pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qaembed.report.collect import SuiteData
from qaembed.report.tables import Table
from qaembed.suite.grid import BASELINE_NAME
from qaembed.suite.runner import EVAL_SUBDIR
from qaembed.suite.stats import ALPHA, N_RESAMPLES, PairBootstrap, pair_classification_bootstrap

NAMES = {"average_precision": "AP", "f1": "F1 at the dev threshold", "accuracy": "accuracy at the dev threshold"}


@dataclass
class PairClassification:
    rows: dict[str, dict[str, PairBootstrap]] = field(default_factory=dict)  # label -> metric -> bootstrap
    n_pairs: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"n_pairs": self.n_pairs, "notes": self.notes,
                "rows": {label: {m: b._asdict() for m, b in metrics.items()} for label, metrics in self.rows.items()}}


def _per_pair(suite: SuiteData, run_id: str) -> pd.DataFrame | None:
    from qaembed.arrayfiles import read_parquet
    from qaembed.evaluate.pairs import PER_PAIR_FILE

    path = suite.suite_dir / "runs" / run_id / EVAL_SUBDIR / PER_PAIR_FILE
    return read_parquet(path) if path.is_file() else None


def _arrays(tables: list[pd.DataFrame], pairs: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.stack([t.loc[pairs, "score"].to_numpy(np.float64) for t in tables])
    f1 = np.stack([t.loc[pairs, "predicted_at_f1_threshold"].to_numpy(np.int64) for t in tables])
    accuracy = np.stack([t.loc[pairs, "predicted_at_accuracy_threshold"].to_numpy(np.int64) for t in tables])
    return scores, f1, accuracy


def pair_classification(suite: SuiteData, n_resamples: int = N_RESAMPLES) -> PairClassification:
    """Bootstrap AP / F1 / accuracy for every label with finished runs (baseline as the reference)."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for run in suite.runs:
        if not run.ok:
            continue
        table = _per_pair(suite, run.run_id)
        if table is not None and "predicted_at_f1_threshold" in table:
            tables.setdefault(run.label, []).append(table)
    result = PairClassification()
    if not tables:
        result.notes.append("no run has pair-classification results (the evaluated or dev pairs lack one of the "
                            "labels)")
        return result
    pairs = None
    for group in tables.values():
        for table in group:
            pairs = table.index if pairs is None else pairs.intersection(table.index, sort=False)
    labels = next(iter(tables.values()))[0].loc[pairs, "label"].to_numpy(np.int64)
    result.n_pairs = len(pairs)
    reference = _arrays(tables[BASELINE_NAME], pairs) if BASELINE_NAME in tables else None
    for label, group in tables.items():
        scores, f1, accuracy = _arrays(group, pairs)
        result.rows[label] = pair_classification_bootstrap(
            scores, labels, f1, accuracy, reference=None if label == BASELINE_NAME else reference,
            n_resamples=n_resamples)
    return result


def pair_table(result: PairClassification) -> Table:
    headers = ["loss", "seeds"] + [f"{name} [95% CI]" for name in NAMES.values()] + ["AP − baseline [95% CI]", "p"]
    rows = []
    for label, metrics in result.rows.items():
        cells = [label, str(metrics["average_precision"].n_seeds)]
        cells += [f"{metrics[m].mean:.3f} [{metrics[m].low:.3f}, {metrics[m].high:.3f}]" for m in NAMES]
        ap = metrics["average_precision"]
        if ap.difference is None:
            cells += ["—", "—"]
        else:
            verdict = " (better)" if ap.difference_low > 0 else " (worse)" if ap.difference_high < 0 else ""
            cells += [f"{ap.difference:+.3f} [{ap.difference_low:+.3f}, {ap.difference_high:+.3f}]{verdict}",
                      f"{ap.p_value:.2g}"]
        rows.append(cells)
    note = (f"Pair classification on {result.n_pairs} test pairs: a pair is called a duplicate when its cosine is at "
            "least the threshold chosen on the dev pairs by that run's model (accuracy and F1 thresholds as "
            "sentence-transformers' BinaryClassificationEvaluator); AP is threshold-free. These are corpus-level "
            "numbers (one per run, not a mean over questions), so their 95% intervals come from a bootstrap that "
            f"resamples seeds and then test pairs ({N_RESAMPLES:,} resamples, the same pairs for every seed); the "
            "difference from the baseline is taken on the same resampled pairs, p is its two-sided bootstrap p "
            f"(not Holm-corrected), and (better)/(worse) marks an interval that excludes 0 (α = {ALPHA}).")
    return Table("Pair classification (test split)", headers, rows, note)
