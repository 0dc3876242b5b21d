"""Options of an evaluation run (validated on load; unknown fields are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qaembed.options import Seed
from qaembed.records import QuestionTextMode


class EvalConfig(BaseModel):
    """How questions are turned into queries, which cut-offs are reported, and batch sizes."""

    model_config = ConfigDict(extra="forbid")

    query_mode: QuestionTextMode = "title_body"  # question text used as the query
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])  # cut-offs for NDCG, MAP, Recall, Precision
    mrr_k: int = Field(10, ge=1)  # cut-off of MRR
    encode_batch_size: int | None = Field(None, ge=1)  # texts per encoding batch; None: by device (model.encode_batch_size)
    in_batch_size: int = Field(32, ge=2)  # questions per in-batch comparison group
    seed: Seed = 0  # seeds the in-batch grouping
    search_chunk_size: int = Field(1024, ge=1)  # queries per matrix-product chunk
    faiss_min_docs: int = Field(100_000, ge=1)  # corpora at least this large are searched with FAISS
    show_progress: bool = False
    # scoring: pooled cosine (one vector per text) or MaxSim over token embeddings (qaembed.evaluate.maxsim)
    scorer: Literal["cosine", "maxsim"] = "cosine"
    query_length: int | None = Field(None, ge=1)  # maxsim: query tokens kept (counting [CLS]); None: all
    # maxsim, ColBERT tokenization (qaembed.late_interaction.ColbertTokens; a saved model declares it)
    query_prefix: str = ""  # marker token after [CLS] of queries, e.g. "[Q] "
    document_prefix: str = ""  # e.g. "[D] "
    query_expansion: bool = False  # queries padded to query_length with [MASK] tokens that take part in MaxSim
    maxsim_search: Literal["exact", "ann"] = "exact"  # exact over the whole corpus, or ANN candidates + exact re-rank
    maxsim_chunk_docs: int = Field(1024, ge=1)  # documents read from the token store per exact-search chunk
    maxsim_block_mb: int = Field(256, ge=1)  # bound on one (queries, docs, L_q, L_d) float32 similarity block
    maxsim_exact_max_docs: int = Field(200_000, ge=1)  # larger corpora need maxsim_search: ann
    maxsim_ann_tokens: int = Field(32, ge=1)  # ann: nearest document tokens per query token
    maxsim_ann_nprobe: int = Field(16, ge=1)  # ann: IVF lists searched per query token
    maxsim_ann_nlist: int | None = Field(None, ge=1)  # ann: IVF lists (None: ~4 sqrt(tokens))
    maxsim_ann_recall_queries: int = Field(100, ge=0)  # ann: queries whose candidates are checked against exact
    maxsim_store_key: str | None = None  # with an encode function instead of a model: names it, so stores are reused

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
