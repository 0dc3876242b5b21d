"""Typed, validated options of ``qaembed mine`` (see docs/mining.md for what each one does).

Light to import (pydantic only), so the command line takes its defaults from here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qaembed.model import DEFAULT_MODEL
from qaembed.options import Seed, parse_options
from qaembed.records import QuestionTextMode

IndexKind = Literal["exact", "ivf", "hnsw", "auto"]
# ``auto``: exact search up to this many answers, FAISS IVF above (qaembed.search explains the trade-off)
AUTO_EXACT_MAX_CORPUS = 250_000
AUTO_EXACT_MAX_CORPUS_GPU = 2_000_000


def choose_index(kind: IndexKind, n_corpus: int, device: str) -> Literal["exact", "ivf", "hnsw"]:
    """Resolve ``auto`` (exact up to :data:`AUTO_EXACT_MAX_CORPUS` answers on CPU, 2 M on CUDA, else IVF);
    other kinds are returned unchanged."""
    if kind != "auto":
        return kind
    limit = AUTO_EXACT_MAX_CORPUS_GPU if device.startswith("cuda") else AUTO_EXACT_MAX_CORPUS
    return "exact" if n_corpus <= limit else "ivf"


class MiningConfig(BaseModel):
    """Options of hard-negative mining; unknown keys and out-of-range values are errors.

    Margins: at most one of ``absolute_margin`` and ``relative_margin``. The default is
    ``relative_margin=0.05`` (NV-Retriever's TopK-PercPos 95%); setting
    ``absolute_margin`` without ``relative_margin`` switches the relative margin off, and
    ``relative_margin=None`` with no absolute margin mines without a margin.

    >>> MiningConfig(absolute_margin=0.1).relative_margin is None
    True
    >>> MiningConfig(num_negatives=3).effective_range_max(max_answers=2)
    32
    """

    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_MODEL
    question_text: QuestionTextMode = "title_body"
    num_negatives: int = Field(3, ge=1)
    range_min: int = Field(0, ge=0)
    range_max: int | None = Field(None, ge=1)
    absolute_margin: float | None = Field(None, allow_inf_nan=False)
    relative_margin: float | None = Field(0.05, ge=0, allow_inf_nan=False)
    max_score: float | None = Field(None, allow_inf_nan=False)
    near_duplicate_cosine: float | None = Field(0.98, gt=0, le=1)
    sampling: Literal["top", "random"] = "top"
    index: IndexKind = "auto"
    nprobe: int = Field(32, ge=1)
    ef_search: int = Field(256, ge=1)
    batch_size: int = Field(32, ge=1)
    encode_chunk_size: int = Field(16384, ge=1)
    device: str | None = None
    seed: Seed = 0
    cache: bool = True

    @model_validator(mode="before")
    @classmethod
    def _absolute_margin_replaces_default_relative(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("absolute_margin") is not None and "relative_margin" not in data:
            data = {**data, "relative_margin": None}
        return data

    @model_validator(mode="after")
    def _check_ranges(self) -> MiningConfig:
        if self.absolute_margin is not None and self.relative_margin is not None:
            raise ValueError("give at most one of absolute_margin and relative_margin")
        if self.range_max is not None:
            if self.range_min >= self.range_max:
                raise ValueError(
                    f"range_min ({self.range_min}) must be smaller than range_max ({self.range_max})"
                )
            if self.num_negatives > self.range_max - self.range_min:
                raise ValueError(
                    f"num_negatives ({self.num_negatives}) is larger than the rank window range_max - range_min "
                    f"= {self.range_max - self.range_min}"
                )
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        return self

    @classmethod
    def from_options(cls, **options: Any) -> MiningConfig:
        """Build and validate a config; a bad value raises :class:`ConfigError` naming the field."""
        return parse_options("mining", "options", cls, options)

    @property
    def removes_candidates(self) -> bool:
        """Whether a score filter (margin, max_score, near-duplicate cosine) is on."""
        return (
            self.absolute_margin is not None
            or self.relative_margin is not None
            or self.max_score is not None
            or self.near_duplicate_cosine is not None
        )

    def effective_range_max(self, max_answers: int) -> int:
        """``range_max``, or when unset the rule of sentence-transformers' ``mine_hard_negatives``.

        ``range_min + 10·K + max_answers`` when a filter can remove candidates (so enough
        survive), else ``range_min + K + max_answers``; ``max_answers`` is the largest
        number of answers of one question (its own answers are never negatives).
        """
        if self.range_max is not None:
            return self.range_max
        spare = 10 * self.num_negatives if self.removes_candidates else self.num_negatives
        return self.range_min + spare + max_answers
