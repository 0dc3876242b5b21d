"""The loop's state between steps: what a checkpoint's ``state.json`` holds besides weights and RNG states.

A declared schema (extra keys are errors), so resuming reads back exactly what was written and a
damaged ``state.json`` is an error naming the field.

>>> state = RunState()
>>> state.step, state.best_metric, len(state.question_order)
(0, None, 64)
>>> RunState.model_validate_json(state.model_dump_json()) == state
True
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field


class RunState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(0, ge=0)  # optimizer steps taken
    epoch: int = Field(0, ge=0)  # where the batches resume: (epoch, batch_in_epoch)
    batch_in_epoch: int = Field(0, ge=0)
    best_metric: float | None = None  # best dev value of training.eval_metric so far, and its step
    best_step: int | None = None
    evals_without_improvement: int = Field(0, ge=0)  # early stopping's count
    last_dev: dict[str, float] | None = None  # the latest dev summary, and its step
    last_eval_step: int | None = None
    # what the run spent (all processes; train/budget.py)
    texts: int = Field(0, ge=0)
    tokens: int = Field(0, ge=0)
    questions: int = Field(0, ge=0)
    question_order: str = hashlib.sha256().hexdigest()  # chained sha256 over the trained question ids
    train_seconds: float = 0.0  # time inside training steps
    wall_seconds: float = 0.0  # training wall time, summed over resumes

    def record_step(self, epoch: int, index: int, texts: int, tokens: int, query_ids: list[str]) -> None:
        """Count one optimizer step over the global batch ``(epoch, index)``."""
        order = hashlib.sha256(self.question_order.encode())
        order.update("\n".join(query_ids).encode())
        self.step += 1
        self.epoch, self.batch_in_epoch = epoch, index + 1
        self.texts += texts
        self.tokens += tokens
        self.questions += len(query_ids)
        self.question_order = order.hexdigest()
