"""What every loss is: a pure function of the (n_q, n_d) score matrix and the batch.

A loss is an ``nn.Module`` subclass of :class:`RankingLoss` with three class attributes:

* ``name``: the closed-set name used in configs (``"infonce"``, ``"listwise"``, ...);
* ``config_class``: a pydantic :class:`LossConfig` with validated options;
* ``strategies``: the batching strategies it accepts (checked when a config is loaded;
  :meth:`RankingLoss.strategies_for` narrows them by the options, e.g. ``multitask``'s parts).

``forward(scores, batch)`` returns a :class:`LossOutput`: the scalar loss and a small
dict of metrics (e.g. in-batch accuracy), or named parts for multi-task sums. Metrics are
detached 0-d tensors on the scores' device, never Python floats: ``float()`` of a GPU
tensor waits for the device, and the loop only needs the numbers every ``log_every``
steps, so it converts them there (``train/loop.py``).
Losses never call a model, so GradCache, cross-device negatives and late-interaction
scorers work with every loss unchanged.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from qaembed.batching.batch import RankingBatch


class LossConfig(BaseModel):
    """Base of every loss's typed options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class LossOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    metrics: dict[str, torch.Tensor]  # small, detached 0-d tensors for logging (float() only when logged)


class RankingLoss(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type[LossConfig]]
    strategies: ClassVar[tuple[str, ...]]
    composite: ClassVar[bool] = False  # True: the accepted strategies depend on the options (multitask's parts)

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.config_class()

    @classmethod
    def strategies_for(cls, config: LossConfig) -> tuple[str, ...]:
        """The batching strategies the loss accepts with options ``config`` (a composite loss: those all its parts accept)."""
        return cls.strategies

    def accepted_strategies(self) -> tuple[str, ...]:
        """The batching strategies this loss, with its options, accepts."""
        return type(self).strategies_for(self.config)

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:  # pragma: no cover
        raise NotImplementedError
