"""Compute budgets: how many optimizer steps spend a budget of texts, tokens or steps.

Different batching strategies put different numbers of texts in a batch of ``batch_size``
questions (one answer per question, or every answer, or a triplet), so "the same number of
steps" is not the same compute. A :class:`Budget` in ``texts`` or ``tokens`` is turned into
a step count *before* training by walking the run's own batches (deterministic for the
seed, cheap: batches are lists of strings until the collator tokenizes them), so the
learning-rate schedule knows its length and the run stops once the budget is spent.

* ``texts``  — queries + documents embedded (summed over processes), the unit of encoder work;
* ``tokens`` — real (non-padding) tokens after truncation at ``max_seq_length``;
* ``steps``  — optimizer steps (what ``training.max_steps`` means).

The plan is the smallest number of steps whose cumulative spend reaches the budget, so a
run overshoots by less than one batch. The loop records what it really spent
(``result.json``: steps, texts, tokens, questions).

Example
-------
>>> from qaembed.train.budget import steps_for_budget
>>> steps_for_budget([10, 12, 11, 9], 30)  # cumulative 10, 22, 33: the third step reaches 30
3
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qaembed.batching.batch import RankingBatch

BudgetUnit = Literal["texts", "tokens", "steps"]
BUDGET_UNITS: tuple[str, ...] = ("texts", "tokens", "steps")


class Budget(BaseModel):
    """A compute budget: ``amount`` of ``unit`` (texts, tokens or steps)."""

    model_config = ConfigDict(extra="forbid")

    unit: BudgetUnit = "texts"
    amount: int = Field(ge=1)


def steps_for_budget(costs: Iterable[int], amount: int) -> int:
    """Number of steps (in order) until the cumulative cost reaches ``amount``."""
    spent = 0
    for step, cost in enumerate(costs, start=1):
        if cost <= 0:
            raise ValueError(f"step {step} costs {cost}: every batch must encode something")
        spent += cost
        if spent >= amount:
            return step
    raise ValueError("the batches ran out before the budget was spent")


class TokenCounter:
    """Real tokens of a text after truncation, counted once per distinct text."""

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self._cache: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> int:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            encoded = self.tokenizer(missing, truncation=True, max_length=self.max_length)["input_ids"]
            self._cache.update({text: len(ids) for text, ids in zip(missing, encoded, strict=True)})
        return sum(self._cache[t] for t in texts)


def batch_cost(shards: list[RankingBatch], unit: BudgetUnit, count_tokens: Callable[[list[str]], int] | None) -> int:
    """What one global batch (its per-process shards) costs in ``unit``."""
    if unit == "steps":
        return 1
    if unit == "texts":
        return sum(shard.num_queries + shard.num_docs for shard in shards)
    if count_tokens is None:
        raise ValueError("a token budget needs a token counter")
    return sum(count_tokens(shard.queries + shard.docs) for shard in shards)


def plan_steps(
    budget: Budget,
    batches: Iterator[list[RankingBatch]],
    count_tokens: Callable[[list[str]], int] | None = None,
) -> int:
    """Steps that spend ``budget`` on ``batches`` (an endless iterator of per-step shard lists)."""
    if budget.unit == "steps":
        return budget.amount
    return steps_for_budget((batch_cost(shards, budget.unit, count_tokens) for shards in batches), budget.amount)
