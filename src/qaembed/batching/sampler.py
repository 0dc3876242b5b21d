"""Seeded, length-aware order of questions into batches.

All strategies share this sampler so that, for the same seed and epoch, they consume
questions in the same order wherever their eligibility rules agree (a fair comparison
of losses sees the same data order). Steps, all drawn from one
``numpy.random.default_rng([seed, epoch])``:

1. a random permutation of the eligible questions;
2. consecutive buckets of ``batch_size * bucket_batches`` questions, each sorted by the
   length key (the longest text the question brings: its query or one of its answers,
   in characters) so that a batch holds texts of similar length and pads little;
3. each bucket cut into batches of ``batch_size`` questions, and the order of all
   batches shuffled, so lengths do not trend over the epoch.

>>> length_aware_batches([5, 1, 4, 2, 3, 9], batch_size=2, seed=0, epoch=0, bucket_batches=3)
[[1, 3], [4, 2], [0, 5]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_aware_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    bucket_batches: int = 50,
    drop_last: bool = False,
) -> list[list[int]]:
    """Batches of indices into ``lengths`` (one entry per eligible question)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bucket_batches < 1:
        raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
    rng = np.random.default_rng([seed, epoch])
    keys = np.asarray(lengths, dtype=np.int64)
    order = rng.permutation(keys.size)
    bucket = batch_size * bucket_batches
    batches: list[np.ndarray] = []
    for start in range(0, order.size, bucket):
        members = order[start : start + bucket]
        members = members[np.argsort(keys[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, members.size, batch_size))
    if drop_last and batches and batches[-1].size < batch_size:
        # the only short batch is the last one of the last bucket, before shuffling
        batches.pop()
    batch_order = rng.permutation(len(batches))
    return [batches[i].tolist() for i in batch_order]
