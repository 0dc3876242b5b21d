"""Graded relevance from vote scores, normalized within one question.

Every strategy labels a question's answers with a gain in ``[0, 1]`` computed from the
votes of *all* the question's answers (not only those that enter the batch), so a
question's labels do not depend on which answers a strategy picked. Three closed methods:

* ``minmax``: ``(s - s_min) / (s_max - s_min)``: top answer 1, lowest 0.
* ``rank``: ``1 - r / (n - 1)`` where ``r`` is the number of answers with strictly more
  votes (tied answers share a rank) and ``n`` the number of answers: linear in rank,
  ignores vote magnitudes.
* ``softmax``: ``exp((s - s_max) / T)``: the softmax distribution over the answers,
  rescaled so that the top answer has 1; ``T`` (``relevance_temperature``) is in votes.

A question whose answers are all tied (including a single answer) gets 1.0 for every
answer under every method: nothing distinguishes them, so none is demoted.

>>> normalize_votes([10, 5, 0], "minmax").tolist()
[1.0, 0.5, 0.0]
>>> normalize_votes([10, 5, 5, 0], "rank").round(4).tolist()
[1.0, 0.6667, 0.6667, 0.0]
>>> normalize_votes([2, 1], "softmax", temperature=1.0).round(4).tolist()
[1.0, 0.3679]
>>> normalize_votes([3, 3], "minmax").tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

RelevanceMethod = Literal["minmax", "rank", "softmax"]
RELEVANCE_METHODS: tuple[str, ...] = ("minmax", "rank", "softmax")


def normalize_votes(scores: Sequence[float], method: RelevanceMethod, temperature: float = 1.0) -> np.ndarray:
    """Gains in ``[0, 1]`` for one question's answer vote ``scores`` (same order)."""
    votes = np.asarray(scores, dtype=np.float64)
    if votes.ndim != 1 or votes.size == 0:
        raise ValueError("normalize_votes needs a non-empty 1-D sequence of vote scores")
    if votes.max() == votes.min():
        return np.ones_like(votes)
    if method == "minmax":
        return (votes - votes.min()) / (votes.max() - votes.min())
    if method == "rank":
        strictly_higher = (votes[None, :] > votes[:, None]).sum(axis=1)  # (n,) tie-aware rank
        return 1.0 - strictly_higher / (votes.size - 1)
    if method == "softmax":
        if temperature <= 0:
            raise ValueError(f"softmax relevance needs temperature > 0, got {temperature}")
        return np.exp((votes - votes.max()) / temperature)
    raise ValueError(f"unknown relevance method {method!r}; allowed: {', '.join(RELEVANCE_METHODS)}")
