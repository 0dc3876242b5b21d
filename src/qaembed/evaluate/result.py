"""The result of one evaluation: summary metrics, counts and per-question values.

Saved as two files in a folder, so the suite can run paired significance tests on the
per-question values of two models evaluated on the same questions::

    DIR/summary.json        {"summary": {...}, "counts": {...}, "info": {...}}
    DIR/per_question.parquet  one row per question id (index ``question_id``),
                              one column per summary key

Example
-------
>>> import pandas as pd, tempfile
>>> table = pd.DataFrame({"retrieval/mrr@10": [1.0, 0.5]}, index=pd.Index(["s:1", "s:2"], name="question_id"))
>>> result = EvalResult.from_per_question(table, counts={"retrieval/questions": 2})
>>> result.summary
{'retrieval/mrr@10': 0.75}
>>> folder = tempfile.mkdtemp()
>>> _ = result.save(folder)
>>> EvalResult.load(folder).summary == result.summary
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qaembed.arrayfiles import read_parquet
from qaembed.errors import DataError
from qaembed.jsonfiles import read_json, write_json
from qaembed.outputs import replacing

SUMMARY_FILE = "summary.json"
PER_QUESTION_FILE = "per_question.parquet"


@dataclass
class EvalResult:
    summary: dict[str, float]  # flat metric keys, e.g. "retrieval/ndcg@10" -> mean over questions
    counts: dict[str, int]  # evaluated and skipped questions per section
    per_question: pd.DataFrame  # index "question_id", one column per summary key (NaN = not in section)
    info: dict[str, Any] = field(default_factory=dict)  # config, data description, timings, provenance

    @classmethod
    def from_per_question(
        cls, per_question: pd.DataFrame, counts: dict[str, int], info: dict[str, Any] | None = None
    ) -> EvalResult:
        """Summary = mean of each column over the questions where it is defined (not NaN)."""
        means = per_question.mean(axis=0, skipna=True)
        summary = {str(name): float(value) for name, value in means.items() if pd.notna(value)}
        return cls(summary=summary, counts=dict(counts), per_question=per_question, info=dict(info or {}))

    def sections(self) -> dict[str, dict[str, float]]:
        """Summary grouped by section: {"retrieval": {"ndcg@10": ...}, "within": {...}, ...}."""
        grouped: dict[str, dict[str, float]] = {}
        for key, value in self.summary.items():
            section, _, name = key.partition("/")
            grouped.setdefault(section, {})[name] = value
        return grouped

    def save(self, directory: str | Path) -> Path:
        """Write ``summary.json`` and ``per_question.parquet`` into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # an earlier result's summary goes before its table is replaced, the new summary comes last: a process
        # killed in between leaves a folder that does not load, never a new table under an old summary
        with replacing(directory / PER_QUESTION_FILE) as tmp:  # a link planted at the name is replaced
            self.per_question.to_parquet(tmp, index=True)
            (directory / SUMMARY_FILE).unlink(missing_ok=True)
        write_json(directory / SUMMARY_FILE, {"summary": self.summary, "counts": self.counts, "info": self.info})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> EvalResult:
        directory = Path(directory)
        summary_path, table_path = directory / SUMMARY_FILE, directory / PER_QUESTION_FILE
        for path in (summary_path, table_path):
            if not path.is_file():
                raise DataError("no such file (not an evaluation result folder?)", path=str(path))
        payload = read_json(summary_path)
        if not isinstance(payload, dict):
            raise DataError(f"must be a JSON object, got {type(payload).__name__}", path=str(summary_path))
        for key in ("summary", "counts"):
            if key not in payload:
                raise DataError("missing key", path=str(summary_path), field=key)
            if not isinstance(payload[key], dict):
                raise DataError(f"must be an object, got {type(payload[key]).__name__}", path=str(summary_path),
                                field=key)
            for name, value in payload[key].items():
                if isinstance(value, bool) or not isinstance(value, int | float) or (
                        key == "counts" and not float(value).is_integer()):
                    raise DataError(f"must be {'a number' if key == 'summary' else 'an integer'}, got "
                                    f"{type(value).__name__} {value!r}"[:200], path=str(summary_path),
                                    field=f"{key}.{name}")
        info = payload.get("info", {})
        if not isinstance(info, dict):
            raise DataError(f"must be an object, got {type(info).__name__}", path=str(summary_path), field="info")
        return cls(
            summary={k: float(v) for k, v in payload["summary"].items()},
            counts={k: int(v) for k, v in payload["counts"].items()},
            per_question=read_parquet(table_path),
            info=info,
        )
