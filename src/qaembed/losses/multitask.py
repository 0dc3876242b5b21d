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
Those that every part accepts (``accepted_strategies()``; ``check_strategy`` uses it).

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

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from qaembed.batching.batch import RankingBatch
from qaembed.errors import ConfigError
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss


class MultitaskPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loss: str = Field(description="name of the part's loss")
    weight: float = Field(1.0, gt=0, le=1000, description="weight of the part in the sum")
    options: dict[str, Any] = Field(default_factory=dict, description="the part's own options")


class MultitaskConfig(LossConfig):
    parts: list[MultitaskPart] = Field(min_length=1, description="[{loss, weight, options}, ...]")


class MultitaskLoss(RankingLoss):
    name = "multitask"
    config_class = MultitaskConfig
    strategies = ("infonce", "multiple_positives", "hard_negative", "triplet", "listwise", "mined", "pairs")

    def __init__(self, config: MultitaskConfig) -> None:
        super().__init__(config)
        from qaembed.losses import build_loss

        names: list[str] = []
        losses = []
        for index, part in enumerate(config.parts):
            if part.loss == self.name:
                raise ConfigError(f"loss 'multitask': option 'parts.{index}.loss': multitask cannot contain multitask")
            try:
                losses.append(build_loss(part.loss, part.options))
            except ConfigError as exc:
                raise ConfigError(f"loss 'multitask': option 'parts.{index}': {exc}") from exc
            count = sum(1 for name in names if name.split("#")[0] == part.loss)
            names.append(part.loss if count == 0 else f"{part.loss}#{count + 1}")
        self.part_names = names
        self.weights = [part.weight for part in config.parts]
        self.parts = torch.nn.ModuleList(losses)

    def accepted_strategies(self) -> tuple[str, ...]:
        """Strategies every part accepts."""
        return tuple(s for s in self.strategies if all(s in part.accepted_strategies() for part in self.parts))

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
