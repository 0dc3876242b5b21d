"""MaxSim training step vs the pooled (cosine) step on the same batch (CPU, MiniLM).

Run (prints a Markdown table)::

    qaembed data prepare --out /tmp/se                       # the shared Stack Exchange sites
    python benchmarks/bench_maxsim_step.py --dataset /tmp/se --repeats 7

One step here is what the loop does per batch without the optimizer: one forward pass over
``queries + docs`` (16 questions, ``hard_negative`` with up to 4 answers, max_seq_length 128),
the scorer's scores, InfoNCE, backward. Scorers are timed alternately on the same batch
(median of ``--repeats`` rounds), so machine load hits them alike. Target of issue 12:
``maxsim`` step <= 1.15 x the pooled step.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from qaembed.batching.collate import Collator
    from qaembed.batching.strategies import build_strategy
    from qaembed.data.dataset import read_split
    from qaembed.late_interaction import add_token_projection
    from qaembed.losses import build_loss
    from qaembed.model import build_encoder
    from qaembed.train.config import ScorerSection
    from qaembed.train.gradcache import forward_backward
    from qaembed.train.scoring import build_scoring

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_encoder("minilm", max_seq_length=128)
    add_token_projection(model, 128, option="scorer.projection_dim")
    model.train()
    records = read_split(args.dataset, "train")
    batch = next(build_strategy("hard_negative", {"max_answers": 4}).batches(records, args.batch_size, seed=0))
    features = Collator(model, 128)(batch)
    loss_fn = build_loss("infonce", {})
    scorings = {
        "cosine": build_scoring(ScorerSection(name="cosine"), loss_fn),
        "maxsim": build_scoring(ScorerSection(name="maxsim", projection_dim=128), loss_fn),
        "combined": build_scoring(ScorerSection.model_validate(
            {"name": "combined", "projection_dim": 128, "weights": {"pooled": 0.3, "maxsim": 0.7},
             "maxsim_loss": {"name": "pair_bce"}}), loss_fn),
    }
    times: dict[str, list[float]] = {name: [] for name in scorings}
    for round_index in range(args.repeats + 1):
        for name, scoring in scorings.items():
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            forward_backward(model, features, batch.num_queries, lambda q, d, s=scoring: s.loss(q, d, batch),
                             embed_fn=scoring.embed)
            elapsed = time.perf_counter() - start
            if round_index:  # the first round warms up
                times[name].append(elapsed)
    texts = batch.num_queries + batch.num_docs
    tokens = int(features["attention_mask"].sum())
    print(f"batch: {batch.num_queries} questions, {texts} texts, {tokens} real tokens, padded to "
          f"{features['attention_mask'].shape[1]}; torch threads {torch.get_num_threads()}\n")
    print("| scorer | median step (s) | ratio to cosine |\n|---|---|---|")
    base = statistics.median(times["cosine"])
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) / base:.3f} |")


if __name__ == "__main__":
    main()
