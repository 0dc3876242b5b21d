"""A weighted sum of losses, each part logged separately.

Formula
-------
``L = Σ_k w_k · L_k(scores, batch)`` over the configured ``parts``; each part is any other
loss with its own options. Metrics hold every part's metrics prefixed with its name
(``infonce/loss``, ``infonce/accuracy``, ...; a loss used twice gets ``name#2``), and
``loss`` the weighted total; all are detached 0-d tensors, like every loss's metrics.

Config
------
``parts: [{loss: name, weight: w, options: {...}}, ...]`` (at least one; ``multitask``
cannot nest).

Strategies
----------
Those that every part accepts (``strategies_for``; the training config and ``check_strategy`` use it).

Recommendations
---------------
A contrastive loss plus a small graded auxiliary term, e.g. ``infonce`` (weight 1) +
``listwise`` or ``mse`` (weight 0.1-0.5) on ``hard_negative`` batches. On duplicate-question
pairs (``pairs`` batches), the original project's multi-task setup: ``infonce`` (MNRL) plus
``cosine_pair`` on the pair labels.

Example
-------
>>> import torch
>>> from qaembed.batching import RankingBatch
>>> batch = RankingBatch.from_lists(["q"], ["a", "b"], relevance=[[1.0, 0.5]],
...     positive=[[True, False]], known=[[True, True]], rank=[[0, 1]])
>>> loss = MultitaskLoss(MultitaskConfig(parts=[
...     {"loss": "triplet", "weight": 1.0, "options": {"margin": 0.5}},
...     {"loss": "cosine_pair", "weight": 2.0}]))  # 1 * 0.3 + 2 * (0.4² + 0.4²) / 2
>>> out = loss(torch.tensor([[0.6, 0.4]]), batch)
>>> round(out.loss.item(), 4), {key: round(value.item(), 4) for key, value in out.metrics.items() if "/loss" in key}
(0.62, {'triplet/loss': 0.3, 'cosine_pair/loss': 0.16})
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from qaembed.batching.batch import RankingBatch
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.registry import SINGLE_LOSSES
from qaembed.options import named_union


class _PartBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, gt=0, le=1000, description="weight of the part in the sum")


# a part: {loss: NAME, weight: w, options: {NAME's options}}, typed by the part's loss (multitask cannot nest)
MultitaskPart = named_union(SINGLE_LOSSES, key="loss", base=_PartBase, suffix="Part")


class MultitaskConfig(LossConfig):
    parts: list[MultitaskPart] = Field(min_length=1, description="[{loss, weight, options}, ...]")


class MultitaskLoss(RankingLoss):
    name = "multitask"
    config_class = MultitaskConfig
    strategies = ("infonce", "multiple_positives", "hard_negative", "triplet", "listwise", "mined", "pairs")
    composite = True

    def __init__(self, config: MultitaskConfig) -> None:
        super().__init__(config)
        names: list[str] = []
        for part in config.parts:
            count = sum(1 for name in names if name.split("#")[0] == part.loss)
            names.append(part.loss if count == 0 else f"{part.loss}#{count + 1}")
        self.part_names = names
        self.weights = [part.weight for part in config.parts]
        self.parts = torch.nn.ModuleList(SINGLE_LOSSES[part.loss](part.options) for part in config.parts)

    @classmethod
    def strategies_for(cls, config: LossConfig) -> tuple[str, ...]:
        """Strategies every part accepts."""
        assert isinstance(config, MultitaskConfig)
        return tuple(s for s in cls.strategies
                     if all(s in SINGLE_LOSSES[part.loss].strategies_for(part.options) for part in config.parts))

    def forward(self, scores: torch.Tensor, batch: RankingBatch) -> LossOutput:
        total = scores.new_zeros(())
        metrics: dict[str, torch.Tensor] = {}
        for name, weight, part in zip(self.part_names, self.weights, self.parts, strict=True):
            output = part(scores, batch)
            total = total + weight * output.loss
            metrics.update({f"{name}/{key}": value for key, value in output.metrics.items()})
            metrics[f"{name}/loss"] = output.loss.detach()
        metrics["loss"] = total.detach()
        return LossOutput(total, metrics)
