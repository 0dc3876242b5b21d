"""Dataset statistics: counts and answer-score spread, and the table the CLI prints.

For a set of records: ``questions``, ``answers``, ``questions_with_answers``,
``questions_with_2plus_answers``, ``tied_questions`` (2+ answers, all with the same
score: no ranking signal inside the question), ``mean_answers_per_question``, and the
answer scores' ``score_min`` / ``score_median`` / ``score_max``. The median is exact
and memory stays bounded (scores are kept as a histogram of distinct values).

``qaembed data prepare`` stores these per source (all records the source yielded,
before ``--min-answers``), in total, and per split in ``stats.json``; ``qaembed data
stats DIR`` recomputes the split rows from the JSONL files (so they describe the files
as they are) and takes the per-source rows and skip counts from ``stats.json`` (they
describe the raw sources, which the prepared folder no longer holds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from qaembed.data.dataset import SPLITS, iter_split, split_files
from qaembed.errors import DataError
from qaembed.jsonfiles import read_json
from qaembed.records import QARecord

STATS_FILE = "stats.json"


class StatsAccumulator:
    """Streaming statistics over records (add one at a time; memory independent of count)."""

    def __init__(self) -> None:
        self.questions = self.answers = self.with_answers = self.with_2plus = self.tied = 0
        self.score_histogram: Counter[float] = Counter()

    def add(self, record: QARecord) -> None:
        self.add_scores([answer.score for answer in record.answers])

    def add_scores(self, scores: Sequence[float]) -> None:
        """Add one record by its answers' scores (what the statistics need of it)."""
        n = len(scores)
        self.questions += 1
        self.answers += n
        self.with_answers += n >= 1
        if n >= 2:
            self.with_2plus += 1
            self.tied += len(set(scores)) <= 1
        self.score_histogram.update(scores)

    def merge(self, other: StatsAccumulator) -> None:
        """Add another accumulator's counts to this one."""
        self.questions += other.questions
        self.answers += other.answers
        self.with_answers += other.with_answers
        self.with_2plus += other.with_2plus
        self.tied += other.tied
        self.score_histogram.update(other.score_histogram)

    def _median(self) -> float | None:
        total = sum(self.score_histogram.values())
        if not total:
            return None
        lower_rank, upper_rank = (total - 1) // 2, total // 2
        seen, lower = 0, None
        for value in sorted(self.score_histogram):
            seen += self.score_histogram[value]
            if lower is None and seen > lower_rank:
                lower = value
            if seen > upper_rank:
                return (lower + value) / 2
        raise AssertionError("unreachable")

    def summary(self) -> dict[str, float | int | None]:
        scores = self.score_histogram
        return {
            "questions": self.questions,
            "answers": self.answers,
            "questions_with_answers": self.with_answers,
            "questions_with_2plus_answers": self.with_2plus,
            "tied_questions": self.tied,
            "mean_answers_per_question": round(self.answers / self.questions, 4) if self.questions else None,
            "score_min": min(scores) if scores else None,
            "score_median": self._median(),
            "score_max": max(scores) if scores else None,
        }


def compute_stats(records: Iterable[QARecord]) -> dict[str, float | int | None]:
    """Statistics of some records (see the module docstring for the keys).

    >>> from qaembed.records import Answer
    >>> r = QARecord(id="s:1", title="t", answers=[Answer(id="s:2", text="a", score=2), Answer(id="s:3", text="b", score=2)])
    >>> s = compute_stats([r]); s["tied_questions"], s["score_median"]
    (1, 2.0)
    """
    accumulator = StatsAccumulator()
    for record in records:
        accumulator.add(record)
    return accumulator.summary()


def dataset_stats(dataset_dir: str | Path) -> dict[str, object]:
    """Statistics of a prepared dataset: splits recomputed from the JSONL, the rest from ``stats.json``."""
    dataset_dir = Path(dataset_dir)
    present = [split for split in SPLITS if split_files(dataset_dir, split)]
    if not present:
        raise DataError("not a prepared dataset folder (no train/dev/test.jsonl, no parquet/ shards)", path=str(dataset_dir))
    stored_path = dataset_dir / STATS_FILE
    stored = read_json(stored_path) if stored_path.is_file() else {}
    splits = {split: compute_stats(iter_split(dataset_dir, split)) for split in present}
    result = {**stored, "splits": splits}
    result["stale"] = bool(stored.get("splits")) and stored["splits"] != splits
    return result


_COLUMNS = (
    ("questions", "questions"), ("answers", "answers"), ("questions_with_answers", "with answers"),
    ("questions_with_2plus_answers", "2+ answers"), ("tied_questions", "tied (2+)"),
    ("mean_answers_per_question", "answers/q"),
)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.2f}"
    return str(value)


def stats_table(stats: dict[str, object]):
    """A rich Table: one row per source, the total, and one row per split."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Q&A dataset statistics")
    table.add_column("set")
    for _, header in _COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("answer score min/median/max", justify="right")

    def add_row(label: str, row: dict, *, end_section: bool = False) -> None:
        spread = "/".join(_fmt(row.get(k)) for k in ("score_min", "score_median", "score_max"))
        table.add_row(Text(label), *(_fmt(row.get(key)) for key, _ in _COLUMNS), spread,  # a name is text, not markup
                      end_section=end_section)

    sources = stats.get("sources") or {}
    for i, (name, source) in enumerate(sources.items()):
        add_row(name, source["stats"], end_section=i == len(sources) - 1 and "total" not in stats)
    if "total" in stats:
        add_row("total (all sources)", stats["total"], end_section=True)
    for split, row in (stats.get("splits") or {}).items():
        add_row(split, row)
    return table


# Notes that stand for left-out input, said in words in the stats output.
_NOTE_TEXT = {
    "answer_empty_after_cleaning": "answers left out because their text is empty after HTML cleaning "
                                   "(e.g. image-only answers; their questions are kept)",
    "orphan_answers": "answers left out because their question is not in the source",
    "answers_of_skipped_questions": "answers left out with their skipped questions",
}


def stats_notes(stats: dict[str, object]) -> list[str]:
    """Lines for what the table does not show: skipped bad records, filtered questions, notes."""
    lines = []
    for name, source in (stats.get("sources") or {}).items():
        skipped = source.get("skipped_bad") or {}
        if skipped:
            lines.append(f"{name}: skipped bad records: " + ", ".join(f"{k}={v}" for k, v in skipped.items()))
        notes = {k: v for k, v in (source.get("notes") or {}).items() if v}
        for key in [k for k in _NOTE_TEXT if k in notes]:
            lines.append(f"{name}: {_NOTE_TEXT[key]}: {notes.pop(key)} ({key})")
        if notes:
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in notes.items()))
    if stats.get("skipped_sources"):
        lines.append("skipped empty sources: " + ", ".join(stats["skipped_sources"]))
    if "filtered_min_answers" in stats:
        lines.append(f"questions with fewer than {stats.get('min_answers')} answers left out: "
                     f"{stats['filtered_min_answers']}")
    if stats.get("stale"):
        lines.append("warning: stats.json does not match the split files (were they changed after prepare?)")
    return lines
