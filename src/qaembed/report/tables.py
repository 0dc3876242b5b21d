"""The report's tables as plain data, rendered to Markdown, HTML and CSV/JSON rows.

Marks used in the main table: ``▲``/``▼`` significantly better/worse than the zero-shot
baseline, ``†`` significantly different from standard InfoNCE (Holm-adjusted p < 0.05).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import numpy as np

from qaembed.report.analysis import ALPHA, Analysis, Comparison, format_p
from qaembed.report.collect import SuiteData
from qaembed.suite.grid import BASELINE_NAME, GridEntry

BETTER_MARK, WORSE_MARK, REFERENCE_MARK = "▲", "▼", "†"
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # where Markdown would start raw HTML (<script>, </b>, <!--)


def markdown_text(text: str) -> str:
    """Text as Markdown shows it, not as HTML: a ``<`` that would open a tag is escaped (``\\<script>``).

    >>> print(markdown_text("<script>x</script> p < 0.05"))
    \\<script>x\\</script> p < 0.05
    """
    return _TAG_START.sub(r"\\<", text)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""

    def to_markdown(self) -> str:
        def cell(text: str) -> str:
            # \r is a line ending in Markdown too (an error message's \r\n ended the row)
            return markdown_text(text.replace("|", "\\|").replace("\r\n", " ").replace("\r", " ").replace("\n", " "))

        lines = ["| " + " | ".join(cell(h) for h in self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def marks(analysis: Analysis, label: str, metric: str) -> str:
    """The significance marks of one cell: ▲/▼ against the baseline, † against InfoNCE."""
    row = analysis.row(label)
    if row is None:
        return ""
    marks = ""
    comparison = row.vs_baseline.get(metric)
    if comparison is not None and comparison.significant:
        marks += BETTER_MARK if comparison.mean_difference > 0 else WORSE_MARK
    reference = row.vs_reference.get(metric)
    if reference is not None and reference.significant:
        marks += REFERENCE_MARK
    return marks


def main_table(analysis: Analysis) -> Table:
    headers = ["loss", "runs ok"] + [f"{name} [95% CI]" for name in analysis.metrics.values()]
    rows = []
    for row in analysis.rows:
        cells = [row.label, f"{row.n_ok}/{row.n_runs}"]
        for metric in analysis.metrics:
            interval = row.intervals.get(metric)
            if interval is None:
                cells.append("—")
            else:
                cell_marks = marks(analysis, row.label, metric)
                cells.append(f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}]{(' ' + cell_marks) if cell_marks else ''}")
        rows.append(cells)
    return Table("Main metrics (test split)", headers, rows, significance_note(analysis.n_seeds))


def significance_note(n_seeds: int = 1) -> str:
    test = ("paired permutation test over test questions of this one run" if n_seeds == 1
            else f"paired seed t-test over {n_seeds} seeds and the test questions")
    return (f"{BETTER_MARK}/{WORSE_MARK}: significantly better/worse than the zero-shot baseline; "
            f"{REFERENCE_MARK}: significantly different from standard InfoNCE "
            f"({test}, Holm-corrected across losses, p < {ALPHA}). Intervals: 95% hierarchical bootstrap "
            "over seeds and questions, the same for every row.")


def _comparison_cell(comparison: Comparison | None) -> str:
    if comparison is None:
        return "—"
    mark = {"better": f" {BETTER_MARK}", "worse": f" {WORSE_MARK}", "n.s.": ""}[comparison.direction]
    test = comparison.test
    inconclusive = " (< MDE)" if comparison.below_mde else ""
    interval = (f"[{test.ci_low:+.3f}, {test.ci_high:+.3f}]" if np.isfinite(test.ci_low) and np.isfinite(test.ci_high)
                else f"[no interval: {test.n_questions} question and {test.n_seeds} seed]")
    return f"{test.mean_difference:+.3f} {interval} p={format_p(comparison.p_holm)}{mark}{inconclusive}"


def significance_table(analysis: Analysis, against: str) -> Table:
    """Mean per-question difference and Holm-adjusted p against ``baseline`` or ``reference``."""
    if against not in ("baseline", "reference"):
        raise ValueError(f"against must be 'baseline' or 'reference', got {against!r}")
    reference_label = BASELINE_NAME if against == "baseline" else analysis.reference
    rows = []
    for row in analysis.rows:
        comparisons = row.vs_baseline if against == "baseline" else row.vs_reference
        if not comparisons:
            continue
        rows.append([row.label] + [_comparison_cell(comparisons.get(m)) for m in analysis.metrics])
    title = f"Difference from {reference_label} (95% interval, Holm-adjusted p)"
    mdes = [c.test.mde for r in analysis.rows
            for c in (r.vs_baseline if against == "baseline" else r.vs_reference).values()
            if np.isfinite(c.test.mde) and not c.identical]
    note = (f"{BETTER_MARK}/{WORSE_MARK}: significantly better/worse than {reference_label}; "
            "(< MDE): not significant and smaller than the minimum detectable effect at 80% power, so inconclusive")
    if mdes:
        note += f" (MDE {min(mdes):.3f}–{max(mdes):.3f} here)"
    return Table(title, ["loss"] + list(analysis.metrics.values()), rows, note + ".")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def cost_table(suite: SuiteData) -> Table:
    """What every run spent: steps, texts, real tokens, questions, time."""
    rows = []
    for run in suite.runs:
        status = run.status
        if status is None:
            rows.append([run.run_id, "not run"] + ["—"] * 9)
            continue
        rows.append([
            run.run_id, status.status, _count(status.steps), _count(status.texts), _count(status.tokens),
            _count(status.questions), _seconds(status.train_time_s), _seconds(status.eval_time_s),
            _seconds(status.wall_time_s), _seconds(status.cpu_time_s),
            "—" if status.texts_per_s is None else f"{status.texts_per_s:.1f}",
        ])
    budget, unit = suite.config.budget, suite.config.budget_unit
    launched = sorted({run.status.processes for run in suite.runs
                       if run.status is not None and (run.status.processes or 1) > 1})
    note = (f" Training ran in {'/'.join(map(str, launched))} processes per run (torchrun, one per GPU, the same "
            "global batch; `processes` in results.csv): CPU s counts the launching process only." if launched else "")
    return Table(
        "Compute per run",
        ["run", "status", "steps", "texts", "tokens", "questions", "train s", "eval s", "wall s", "CPU s",
         "train texts/s"],
        rows,
        f"Budget per run: {_count(budget)} {unit}; a run stops at the first step that reaches it, so it overshoots "
        "by less than one batch. texts = queries + documents encoded, tokens = real (non-padding) tokens, "
        "questions = questions trained on. train s includes the dev evaluations during training; eval s is "
        "the test evaluation (model loading included); CPU s is the process CPU time over all threads." + note,
    )


def failures_table(suite: SuiteData) -> Table:
    rows = [[r.run_id, r.status.error or ""] for r in suite.runs if r.status is not None and not r.ok]
    rows += [[r.run_id, "not run (or interrupted)"] for r in suite.runs if r.status is None]
    return Table("Failed or missing runs", ["run", "error"], rows)


def grid_table(suite: SuiteData) -> Table:
    rows = [[BASELINE_NAME, "—", "—", "—", "cosine", suite.description(BASELINE_NAME)]]
    for entry in suite.config.entries:
        options = ", ".join(f"{k}={v}" for k, v in entry.loss_options.items()) or "defaults"
        rows.append([entry.name, entry.loss, options, entry.strategy, _scorer_text(entry), entry.description])
    return Table("Grid", ["row", "loss", "loss options", "strategy", "scorer (train / test)", "what it is"], rows)


def _scorer_text(entry: GridEntry) -> str:
    """``cosine``, ``maxsim``, or e.g. ``combined 0.3/0.7 / test maxsim``."""
    name, weights = entry.scorer.name, entry.scorer.weights
    train = f"{name} {weights.pooled}/{weights.maxsim}" if name == "combined" and weights is not None else name
    return train if train == entry.test_scorer else f"{train} / test {entry.test_scorer}"


def run_rows(suite: SuiteData, metrics: list[str]) -> list[dict[str, object]]:
    """One flat record per run (for results.csv and results.json)."""
    records = []
    for run in suite.runs:
        status = run.status
        record: dict[str, object] = {
            "run_id": run.run_id, "label": run.label, "kind": run.kind, "seed": run.seed,
            "status": status.status if status else "not run",
        }
        for metric in metrics:
            record[metric] = status.summary.get(metric) if status else None
        record.update({
            "steps": status.steps if status else None,
            "texts": status.texts if status else None,
            "tokens": status.tokens if status else None,
            "questions": status.questions if status else None,
            "question_order": status.question_order if status else None,
            "processes": status.processes if status else None,
            "train_time_s": status.train_time_s if status else None,
            "eval_time_s": status.eval_time_s if status else None,
            "wall_time_s": status.wall_time_s if status else None,
            "cpu_time_s": status.cpu_time_s if status else None,
            "texts_per_s": status.texts_per_s if status else None,
            "error": status.error if status else None,
        })
        records.append(record)
    return records
