"""Losses: pure functions of the (n_q, n_d) score matrix and the :class:`RankingBatch`.

API for the training loop
-------------------------
A sketch (not run: it needs a model and records)::

    from qaembed.losses import build_loss, check_strategy
    from qaembed.losses.scores import cosine_scores
    loss_fn = build_loss("infonce", {"temperature": 0.05})             # ConfigError on bad options
    check_strategy("infonce", "hard_negative", {"temperature": 0.05})  # ConfigError listing allowed pairs
    batch = batch.to(q_emb.device)                                     # masks live beside the scores
    scores = cosine_scores(q_emb, d_emb)                               # (n_q, n_d)
    out = loss_fn(scores, batch)                                       # LossOutput(loss, metrics)
    out.loss.backward(); log({k: v.item() for k, v in out.metrics.items()})  # metrics: 0-d tensors, has "loss"

* ``LOSSES``: closed dict name -> loss class (``infonce``, ``multiple_positives``,
  ``relaxed_hard_negative``, ``triplet``, ``listwise``, ``mse``, ``cosine_pair``,
  ``pair_bce``, ``multitask``). Each class has ``name``, ``config_class`` (pydantic, extra keys
  forbidden, ranges validated) and ``strategies`` (accepted batching strategies).
* ``build_loss(name, options) -> RankingLoss`` validates; ``loss.accepted_strategies()``.
* ``check_strategy(loss_name, strategy_name, options=None)``: raises ConfigError listing
  the strategies the loss accepts (``options`` matter for a composite loss: ``multitask``).
* ``qaembed.losses.scores``: the scorers, ``cosine_scores(q_emb, d_emb)`` and
  ``maxsim_scores(q_tok, q_mask, d_tok, d_mask)`` (late interaction); every loss takes either.
* ``loss_table()`` / ``strategy_table()``: options, defaults, ranges for the CLI and docs.

Masks are applied with ``torch.where`` and a finite dtype-aware large negative
(``masking.py``), so excluded pairs get exactly zero gradient in fp32, bf16 and fp16.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qaembed.batching.strategies import STRATEGIES
from qaembed.errors import ConfigError
from qaembed.losses.base import LossConfig, LossOutput, RankingLoss
from qaembed.losses.multitask import MultitaskLoss
from qaembed.losses.registry import SINGLE_LOSSES
from qaembed.options import parse_options, unknown_name_error

LOSSES: dict[str, type[RankingLoss]] = {**SINGLE_LOSSES, MultitaskLoss.name: MultitaskLoss}


def build_loss(name: str, options: Mapping[str, Any] | LossConfig | None = None) -> RankingLoss:
    """The loss ``name`` with validated ``options`` (a dict, or the loss's typed config); ConfigError names the
    field and what is allowed."""
    if name not in LOSSES:
        raise unknown_name_error("loss", name, LOSSES)
    cls = LOSSES[name]
    return cls(parse_options("loss", name, cls.config_class, options))


def check_strategy(loss_name: str, strategy_name: str, options: Mapping[str, Any] | LossConfig | None = None) -> None:
    """ConfigError unless loss ``loss_name`` accepts batches of strategy ``strategy_name``."""
    if strategy_name not in STRATEGIES:
        raise unknown_name_error("batching strategy", strategy_name, STRATEGIES)
    if loss_name not in LOSSES:
        raise unknown_name_error("loss", loss_name, LOSSES)
    cls = LOSSES[loss_name]
    accepted = cls.strategies_for(parse_options("loss", loss_name, cls.config_class, options))
    if strategy_name not in accepted:
        raise ConfigError(
            f"loss {loss_name!r} does not accept batching strategy {strategy_name!r}; "
            f"it accepts: {', '.join(accepted) or '(none: its parts share no strategy)'}"
        )


__all__ = ["LOSSES", "LossConfig", "LossOutput", "RankingLoss", "build_loss", "check_strategy"]
