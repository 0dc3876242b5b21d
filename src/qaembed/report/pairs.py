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
from pathlib import Path

import numpy as np
import pandas as pd

from qaembed.errors import DataError
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


PREDICTIONS = ("predicted_at_f1_threshold", "predicted_at_accuracy_threshold")


def _per_pair_path(suite: SuiteData, run_id: str) -> Path:
    from qaembed.evaluate.pairs import PER_PAIR_FILE

    return suite.suite_dir / "runs" / run_id / EVAL_SUBDIR / PER_PAIR_FILE


def _per_pair(suite: SuiteData, run_id: str) -> pd.DataFrame | None:
    """A run's ``per_pair.parquet`` (None when absent): one row per pair, a finite ``score``, 0/1 ``label`` and
    predictions; anything else is a DataError naming the file and column (the bootstrap would fail on it)."""
    from qaembed.arrayfiles import read_parquet

    path = _per_pair_path(suite, run_id)
    if not path.is_file():
        return None
    table = read_parquet(path)
    for column in ("score", "label"):
        if column not in table:
            raise DataError("no such column (not a pair evaluation result?); rerun that run", path=str(path),
                            field=column)
    if table.index.has_duplicates:
        raise DataError(f"{int(table.index.duplicated().sum())} pair id(s) appear more than once (first: "
                        f"{table.index[table.index.duplicated()][0]!r}); rerun that run", path=str(path))
    for column in ("score", "label", *PREDICTIONS):
        if column not in table:
            continue
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(f"holds {values.dtype} values, not numbers; rerun that run", path=str(path), field=column)
        numbers = values.to_numpy(np.float64)
        bad = ~np.isfinite(numbers) if column == "score" else ~np.isin(numbers, (0.0, 1.0))
        if bad.any():
            raise DataError(f"{int(bad.sum())} value(s) that are not {'finite' if column == 'score' else '0 or 1'} "
                            f"(first: {numbers[int(bad.argmax())]:g} at pair {table.index[int(bad.argmax())]!r}); "
                            "rerun that run", path=str(path), field=column)
    return table


def _check_same_pairs(suite: SuiteData, runs: list[tuple[str, pd.DataFrame]]) -> None:
    """Every run's table holds the same test pairs with the same labels (the bootstrap pairs them up); one that
    differs is a DataError naming its file, where the analysis would compare only the shared pairs, or fail."""
    first_id, first = runs[0]
    for run_id, table in runs[1:]:
        if set(table.index) != set(first.index):
            missing, extra = len(first.index.difference(table.index)), len(table.index.difference(first.index))
            raise DataError(f"its {len(table)} test pairs are not those of run {first_id} ({len(first)}; {missing} of "
                            f"them missing here, {extra} here not among them): the runs were evaluated on different "
                            f"test pairs; remove the folder runs/{run_id} and run the suite again to redo that run",
                            path=str(_per_pair_path(suite, run_id)))
        differ = table["label"].to_numpy() != first.loc[table.index, "label"].to_numpy()
        if differ.any():
            raise DataError(f"{int(differ.sum())} pair label(s) differ from run {first_id}'s (first: pair "
                            f"{table.index[int(differ.argmax())]!r}); remove the folder runs/{run_id} and run the "
                            "suite again to redo that run", path=str(_per_pair_path(suite, run_id)), field="label")


def _arrays(tables: list[pd.DataFrame], pairs: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.stack([t.loc[pairs, "score"].to_numpy(np.float64) for t in tables])
    f1 = np.stack([t.loc[pairs, "predicted_at_f1_threshold"].to_numpy(np.int64) for t in tables])
    accuracy = np.stack([t.loc[pairs, "predicted_at_accuracy_threshold"].to_numpy(np.int64) for t in tables])
    return scores, f1, accuracy


def pair_classification(suite: SuiteData, n_resamples: int = N_RESAMPLES) -> PairClassification:
    """Bootstrap AP / F1 / accuracy for every label with finished runs (baseline as the reference)."""
    tables: dict[str, list[pd.DataFrame]] = {}
    read: list[tuple[str, pd.DataFrame]] = []
    for run in suite.runs:
        if not run.ok:
            continue
        table = _per_pair(suite, run.run_id)
        if table is not None:
            read.append((run.run_id, table))
        if table is not None and all(column in table for column in PREDICTIONS):
            tables.setdefault(run.label, []).append(table)
    if read:
        _check_same_pairs(suite, read)
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
