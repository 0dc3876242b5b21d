"""Options of an evaluation run (validated on load; unknown fields are errors)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qaembed.records import QuestionTextMode


class EvalConfig(BaseModel):
    """How questions are turned into queries, which cut-offs are reported, and batch sizes."""

    model_config = ConfigDict(extra="forbid")

    query_mode: QuestionTextMode = "title_body"  # question text used as the query
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])  # cut-offs for NDCG, MAP, Recall, Precision
    mrr_k: int = Field(10, ge=1)  # cut-off of MRR
    encode_batch_size: int = Field(256, ge=1)  # texts per model.encode batch
    in_batch_size: int = Field(32, ge=2)  # questions per in-batch comparison group
    seed: int = 0  # seeds the in-batch grouping
    search_chunk_size: int = Field(1024, ge=1)  # queries per matrix-product chunk
    faiss_min_docs: int = Field(100_000, ge=1)  # corpora at least this large are searched with FAISS
    show_progress: bool = False

    @field_validator("ks")
    @classmethod
    def _check_ks(cls, ks: list[int]) -> list[int]:
        if not ks:
            raise ValueError("ks must name at least one cut-off")
        if any(k < 1 for k in ks):
            raise ValueError(f"every cut-off in ks must be >= 1, got {ks}")
        return sorted(set(ks))

    @property
    def depth(self) -> int:
        """How many documents are retrieved per query (the largest cut-off)."""
        return max(max(self.ks), self.mrr_k)
