"""Every loss: reference values, permutation invariance, masking, separation, numerical safety,
metrics as tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch

from qaembed.batching import RankingBatch
from qaembed.losses import LOSSES, build_loss


@dataclass
class Case:
    loss: str
    options: dict[str, Any]
    strategy: str
    strategy_options: dict[str, Any] = field(default_factory=dict)
    excluded: Callable[[RankingBatch], torch.Tensor] | None = None  # pairs the loss must ignore
    ideal: Callable[[RankingBatch], torch.Tensor] | None = None  # scores at which the loss is (near) minimal

    @property
    def id(self) -> str:
        return f"{self.loss}-{self.strategy}-" + "-".join(f"{k}={v}" for k, v in self.options.items() if k != "parts")


def separated(batch: RankingBatch) -> torch.Tensor:
    return torch.where(batch.positive, 1.0, -1.0)


def in_batch(batch: RankingBatch) -> torch.Tensor:
    return batch.in_batch_negative


CASES = [
    Case("infonce", {}, "hard_negative", ideal=separated),
    Case("infonce", {"symmetric": True}, "triplet", {"neg_strategy": "mixed"}, ideal=separated),
    Case("infonce", {"in_batch_negatives": False}, "hard_negative", excluded=in_batch, ideal=separated),
    Case("infonce", {"hard_negatives": False}, "hard_negative", excluded=lambda b: b.hard_negative, ideal=separated),
    Case("infonce", {"in_batch_negatives": False}, "mined", excluded=in_batch, ideal=separated),
    Case("triplet", {}, "mined", excluded=in_batch, ideal=separated),
    Case("multiple_positives", {"use_ranks": True, "use_scores": True}, "multiple_positives", {"pos_count": 2},
         ideal=separated),
    Case("multiple_positives", {"use_ranks": True, "in_batch_negatives": False}, "hard_negative",
         excluded=in_batch, ideal=separated),
    Case("relaxed_hard_negative", {"relaxation": 0.2, "in_batch_negatives": False}, "hard_negative",
         excluded=in_batch, ideal=lambda b: _relaxed_ideal(b, 0.2, 0.05)),
    Case("triplet", {"margin": 0.3}, "hard_negative", excluded=in_batch, ideal=separated),
    Case("listwise", {"in_batch_negatives": True, "temperature": 0.1, "target_temperature": 0.2}, "listwise",
         ideal=lambda b: b.relevance * 0.1 / 0.2),
    Case("listwise", {}, "hard_negative", excluded=in_batch, ideal=lambda b: b.relevance * 0.05 / 0.1),
    Case("mse", {}, "listwise", excluded=lambda b: b.rank < 0, ideal=lambda b: b.relevance),
    Case("cosine_pair", {}, "triplet", {"neg_strategy": "in_batch"}, excluded=in_batch,
         ideal=lambda b: b.positive.float()),
    Case("cosine_pair", {"labels": "relevance", "in_batch_negatives": True}, "hard_negative",
         ideal=lambda b: b.relevance),
    Case("pair_bce", {}, "hard_negative", ideal=separated),
    Case("pair_bce", {"in_batch_negatives": False, "balanced": False}, "mined", excluded=in_batch, ideal=separated),
    Case("pair_bce", {"hard_negatives": False}, "hard_negative", excluded=lambda b: b.hard_negative, ideal=separated),
    Case("multitask", {"parts": [{"loss": "infonce", "options": {"in_batch_negatives": False}},
                                 {"loss": "triplet", "weight": 0.5}]}, "hard_negative", excluded=in_batch,
         ideal=separated),
]
CASE_IDS = [case.id for case in CASES]


def _relaxed_ideal(batch: RankingBatch, p: float, tau: float) -> torch.Tensor:
    others = batch.hard_negative & (batch.rank >= 0)
    n_others = others.sum(dim=1, keepdim=True)
    share = torch.where(n_others > 0, p, 0.0)
    target = (1 - share) * batch.positive + share * others / n_others.clamp(min=1)
    return (tau * torch.log(target.clamp(min=1e-30))).clamp(min=-1)


def random_scores(batch: RankingBatch, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch.num_queries, batch.num_docs, generator=generator) * 2 - 1


def permute(batch: RankingBatch, query_order: torch.Tensor, doc_order: torch.Tensor) -> RankingBatch:
    pick = lambda m: m[query_order][:, doc_order]  # noqa: E731
    return RankingBatch(
        queries=[batch.queries[i] for i in query_order],
        docs=[batch.docs[j] for j in doc_order],
        relevance=pick(batch.relevance), positive=pick(batch.positive), known=pick(batch.known),
        rank=pick(batch.rank),
        query_ids=[batch.query_ids[i] for i in query_order], doc_ids=[batch.doc_ids[j] for j in doc_order],
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_permuting_queries_and_docs_leaves_the_loss_unchanged(case, make_batch):
    batch = make_batch(case.strategy, **case.strategy_options)
    loss_fn = build_loss(case.loss, case.options)
    scores = random_scores(batch)
    generator = torch.Generator().manual_seed(1)
    q_order = torch.randperm(batch.num_queries, generator=generator)
    d_order = torch.randperm(batch.num_docs, generator=generator)
    permuted = loss_fn(scores[q_order][:, d_order], permute(batch, q_order, d_order)).loss
    assert torch.allclose(permuted, loss_fn(scores, batch).loss, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if c.excluded is not None], ids=[c.id for c in CASES if c.excluded])
def test_excluded_pairs_get_exactly_zero_gradient(case, make_batch):
    batch = make_batch(case.strategy, **case.strategy_options)
    excluded = case.excluded(batch)
    assert excluded.any() and not excluded.all()
    loss_fn = build_loss(case.loss, case.options)
    for dtype in (torch.float32, torch.bfloat16):
        scores = random_scores(batch).to(dtype).requires_grad_()
        loss = loss_fn(scores, batch).loss
        loss.backward()
        assert torch.all(scores.grad[excluded] == 0), dtype
        assert scores.grad[~excluded].abs().sum() > 0
        # the excluded scores do not change the value either
        moved = scores.detach() + torch.where(excluded, 0.9, 0.0).to(dtype)
        assert loss_fn(moved, batch).loss.item() == pytest.approx(loss.item(), abs=1e-6)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_separated_scores_give_near_minimal_loss(case, make_batch):
    batch = make_batch(case.strategy, **case.strategy_options)
    loss_fn = build_loss(case.loss, case.options)
    ideal = loss_fn(case.ideal(batch), batch).loss.item()
    assert ideal < 0.02 * case.options.get("margin", 1.0) + 1e-3
    randoms = [loss_fn(random_scores(batch, seed), batch).loss.item() for seed in range(5)]
    assert ideal < min(randoms)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_finite_with_extreme_similarities(case, make_batch, dtype):
    batch = make_batch(case.strategy, **case.strategy_options)
    options = dict(case.options)
    for key in ("temperature", "target_temperature"):
        if key in LOSSES[case.loss].config_class.model_fields:
            options[key] = 1e-3  # logits up to ±1000
    loss_fn = build_loss(case.loss, options)
    generator = torch.Generator().manual_seed(2)
    extreme = torch.where(torch.rand(batch.num_queries, batch.num_docs, generator=generator) > 0.5, 1.0, -1.0)
    for scores in (extreme, -extreme, separated(batch), -separated(batch)):
        scores = scores.to(dtype).requires_grad_()
        output = loss_fn(scores, batch)
        output.loss.backward()
        assert torch.isfinite(output.loss) and torch.isfinite(scores.grad).all()
        assert all(math.isfinite(value.item()) for value in output.metrics.values())


# ---- reference values: straightforward per-query Python loops against the vectorized losses ----


def _lse(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def reference_infonce(s, b, tau, in_batch=True, hard=True, symmetric=False):
    terms, doc_terms = [], []
    for i in range(b.num_queries):
        p = int(b.positive[i].nonzero())
        allowed = lambda k, j: b.positive[k, j] or (hard and b.known[k, j]) or (in_batch and not b.known[k, j])  # noqa: E731
        terms.append(_lse([s[i][j] / tau for j in range(b.num_docs) if allowed(i, j)]) - s[i][p] / tau)
        cands = [s[k][p] / tau for k in range(b.num_queries) if k == i or (allowed(k, p) and not b.positive[k, p])]
        doc_terms.append(_lse(cands) - s[i][p] / tau)
    q2d = sum(terms) / len(terms)
    return (q2d + sum(doc_terms) / len(doc_terms)) / 2 if symmetric else q2d


def reference_multiple_positives(s, b, tau, rank_weight, score_weight):
    per_query = []
    for i in range(b.num_queries):
        negatives = [s[i][j] / tau for j in range(b.num_docs) if not b.positive[i, j]]
        total = weight_sum = 0.0
        for j in range(b.num_docs):
            if b.positive[i, j]:
                w = 1 + rank_weight / (1 + int(b.rank[i, j])) + score_weight * float(b.relevance[i, j])
                total += w * (_lse([s[i][j] / tau] + negatives) - s[i][j] / tau)
                weight_sum += w
        per_query.append(total / weight_sum)
    return sum(per_query) / len(per_query)


def reference_relaxed(s, b, tau, p):
    kls = []
    for i in range(b.num_queries):
        cols = list(range(b.num_docs))
        others = [j for j in cols if b.known[i, j] and not b.positive[i, j] and b.rank[i, j] >= 0]
        log_z = _lse([s[i][j] / tau for j in cols])
        kl = 0.0
        for j in cols:
            t = (1 - p if others else 1.0) if b.positive[i, j] else (p / len(others) if j in others else 0.0)
            if t > 0:
                kl += t * (math.log(t) - (s[i][j] / tau - log_z))
        kls.append(kl)
    return sum(kls) / len(kls)


def reference_listwise(s, b, tau, tau_target):
    kls = []
    for i in range(b.num_queries):
        cols = [j for j in range(b.num_docs) if b.known[i, j]]
        if len(cols) < 2:
            continue
        log_zt = _lse([float(b.relevance[i, j]) / tau_target for j in cols])
        log_z = _lse([s[i][j] / tau for j in cols])
        kls.append(sum(
            math.exp(float(b.relevance[i, j]) / tau_target - log_zt)
            * ((float(b.relevance[i, j]) / tau_target - log_zt) - (s[i][j] / tau - log_z))
            for j in cols
        ))
    return sum(kls) / len(kls)


def reference_triplet(s, b, margin):
    hinges = []
    for i in range(b.num_queries):
        p = int(b.positive[i].nonzero())
        hinges += [max(0.0, margin - s[i][p] + s[i][j]) for j in range(b.num_docs) if b.known[i, j] and j != p]
    return sum(hinges) / len(hinges)


def reference_pair_mse(s, b, use, label):
    errors = [(s[i][j] - label(i, j)) ** 2 for i in range(b.num_queries) for j in range(b.num_docs) if use(i, j)]
    return sum(errors) / len(errors)


def reference_pair_bce(s, b, tau, offset, balanced, in_batch=True, hard=True):
    def bce(i, j, label):
        x = (s[i][j] - offset) / tau
        return math.log1p(math.exp(-x)) if label else math.log1p(math.exp(x))

    pos, neg = [], []
    for i in range(b.num_queries):
        for j in range(b.num_docs):
            if b.positive[i, j]:
                pos.append(bce(i, j, 1))
            elif (b.known[i, j] and hard) or (not b.known[i, j] and in_batch):
                neg.append(bce(i, j, 0))
    if balanced:
        return (sum(pos) / len(pos) + sum(neg) / len(neg)) / 2
    return (sum(pos) + sum(neg)) / (len(pos) + len(neg))


REFERENCES = [
    ("infonce", {"temperature": 0.1}, "hard_negative", lambda s, b: reference_infonce(s, b, 0.1)),
    ("infonce", {"temperature": 0.2, "symmetric": True}, "hard_negative",
     lambda s, b: reference_infonce(s, b, 0.2, symmetric=True)),
    ("infonce", {"temperature": 0.1, "symmetric": True, "hard_negatives": False}, "hard_negative",
     lambda s, b: reference_infonce(s, b, 0.1, hard=False, symmetric=True)),
    ("infonce", {"temperature": 0.1, "in_batch_negatives": False}, "hard_negative",
     lambda s, b: reference_infonce(s, b, 0.1, in_batch=False)),
    ("multiple_positives", {"temperature": 0.1, "use_ranks": True, "use_scores": True, "rank_weight": 0.5,
                            "score_weight": 0.3}, "multiple_positives",
     lambda s, b: reference_multiple_positives(s, b, 0.1, 0.5, 0.3)),
    ("relaxed_hard_negative", {"temperature": 0.1, "relaxation": 0.3}, "hard_negative",
     lambda s, b: reference_relaxed(s, b, 0.1, 0.3)),
    ("listwise", {"temperature": 0.1, "target_temperature": 0.5}, "hard_negative",
     lambda s, b: reference_listwise(s, b, 0.1, 0.5)),
    ("triplet", {"margin": 0.5}, "hard_negative", lambda s, b: reference_triplet(s, b, 0.5)),
    ("mse", {}, "listwise",
     lambda s, b: reference_pair_mse(s, b, lambda i, j: b.rank[i, j] >= 0, lambda i, j: float(b.relevance[i, j]))),
    ("cosine_pair", {"in_batch_negatives": True}, "hard_negative",
     lambda s, b: reference_pair_mse(s, b, lambda i, j: True, lambda i, j: float(b.positive[i, j]))),
    ("pair_bce", {"temperature": 0.2, "offset": 0.3}, "hard_negative",
     lambda s, b: reference_pair_bce(s, b, 0.2, 0.3, balanced=True)),
    ("pair_bce", {"temperature": 0.5, "balanced": False, "in_batch_negatives": False}, "mined",
     lambda s, b: reference_pair_bce(s, b, 0.5, 0.0, balanced=False, in_batch=False)),
]


@pytest.mark.parametrize(("loss", "options", "strategy", "reference"), REFERENCES,
                         ids=[f"{r[0]}-{'-'.join(r[1])}" for r in REFERENCES])
def test_matches_a_per_query_reference(loss, options, strategy, reference, make_batch):
    batch = make_batch(strategy, **({"pos_count": 2} if strategy == "multiple_positives" else {}))
    scores = random_scores(batch, seed=7).double()
    expected = reference(scores.tolist(), batch)
    assert build_loss(loss, options)(scores, batch).loss.item() == pytest.approx(expected, rel=1e-6)  # labels are float32


def test_multitask_is_the_weighted_sum_with_parts_logged(make_batch):
    batch = make_batch("hard_negative")
    scores = random_scores(batch, seed=3)
    parts = [{"loss": "infonce", "weight": 1.0}, {"loss": "listwise", "weight": 0.25},
             {"loss": "infonce", "weight": 2.0, "options": {"temperature": 0.5}}]
    output = build_loss("multitask", {"parts": parts})(scores, batch)
    values = [build_loss(p["loss"], p.get("options"))(scores, batch).loss.item() for p in parts]
    assert output.loss.item() == pytest.approx(values[0] + 0.25 * values[1] + 2.0 * values[2], rel=1e-6)
    assert output.metrics["infonce/loss"].item() == pytest.approx(values[0], rel=1e-6)
    assert output.metrics["infonce#2/loss"].item() == pytest.approx(values[2], rel=1e-6)
    assert output.metrics["listwise/loss"].item() == pytest.approx(values[1], rel=1e-6)
    assert "infonce/accuracy" in output.metrics


def test_infonce_accuracy_metric(make_batch):
    batch = make_batch("infonce")
    assert build_loss("infonce")(separated(batch), batch).metrics["accuracy"].item() == 1.0
    assert build_loss("infonce")(-separated(batch), batch).metrics["accuracy"].item() == 0.0


def test_single_positive_losses_reject_multi_positive_batches(make_batch):
    batch = make_batch("multiple_positives", pos_count=2)
    with pytest.raises(ValueError, match=r"'infonce' needs exactly one positive per query; query 'q\d' has 2"):
        build_loss("infonce")(random_scores(batch), batch)


# ---- metrics: detached 0-d tensors, made without turning a tensor into a Python number ----
# On a GPU, float(t) / t.item() waits for every queued kernel (a device-to-host sync); the training
# loop reads the metrics only every log_every steps (train/loop.py), so the loss itself must not.


def test_the_counter_sees_conversions(host_conversions):
    # the check below is only as good as its counter: float() and .item() of a tensor are seen
    with host_conversions() as calls:
        float(torch.tensor(1.5))
        torch.tensor(2.0).item()
    assert [name for name, _ in calls] == ["__float__", "item"]


def test_every_registered_loss_is_covered():
    assert {case.loss for case in CASES} == set(LOSSES)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_metrics_are_detached_scalar_tensors_made_without_host_conversion(case, make_batch, host_conversions):
    batch = make_batch(case.strategy, **case.strategy_options)
    loss_fn = build_loss(case.loss, case.options)
    scores = random_scores(batch, seed=1).requires_grad_()
    with host_conversions() as calls:
        output = loss_fn(scores, batch)
    assert calls == [], f"loss {case.loss!r} converted tensors to Python numbers: {calls}"
    assert output.metrics and "loss" in output.metrics
    for key, value in output.metrics.items():
        assert isinstance(value, torch.Tensor), (key, type(value))
        assert value.dim() == 0 and not value.requires_grad and value.is_floating_point(), key
    assert output.metrics["loss"].item() == pytest.approx(output.loss.item())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_and_backward_never_wait_for_the_device(case, make_batch):
    # On the "meta" device tensors have shapes but no values: anything that needs a value on the host
    # (.item(), float(), bool() of a tensor, boolean-mask indexing, .nonzero()) raises. A loss that runs
    # there makes no device-to-host sync, the way it must on a GPU every step.
    batch = make_batch(case.strategy, **case.strategy_options).to("meta")
    loss_fn = build_loss(case.loss, case.options)
    scores = torch.empty(batch.num_queries, batch.num_docs, device="meta", requires_grad=True)
    output = loss_fn(scores, batch)
    output.loss.backward()
    assert output.loss.device.type == "meta" and scores.grad is not None and scores.grad.shape == scores.shape
    assert all(value.device.type == "meta" for value in output.metrics.values())
