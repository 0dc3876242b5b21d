"""The server's limits (``qaembed serve`` options), checked before any work is queued."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServerLimits(BaseModel):
    """What one request may ask for, and how much may wait.

    >>> ServerLimits().max_k
    100
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_body_bytes: int = Field(256 * 1024, ge=1, description="Largest request body (bytes); larger gets 413.")
    max_queries: int = Field(32, ge=1, description="Most questions (or texts to embed) in one request.")
    max_query_chars: int = Field(2000, ge=1, description="Longest question or text (characters).")
    max_k: int = Field(100, ge=1, description="Most answers per question.")
    max_pending: int = Field(64, ge=1, description="Requests waiting per index before new ones get 503.")
    max_batch: int = Field(64, ge=1, description="Most texts encoded in one forward pass (requests are batched).")
