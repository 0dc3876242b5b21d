"""Scorers in training: config, GradCache = plain pass for MaxSim and combined, the combined
loss is the weighted sum of its parts, loop runs log the parts, errors instead of fallbacks."""

from __future__ import annotations

import json

import pytest
import torch

from qaembed.batching.collate import Collator
from qaembed.batching.strategies import build_strategy
from qaembed.data.dataset import read_split
from qaembed.errors import ConfigError
from qaembed.late_interaction import add_token_projection, token_projection
from qaembed.losses import build_loss
from qaembed.losses.scores import cosine_scores, maxsim_scores
from qaembed.train.config import ScorerSection, parse_config
from qaembed.train.gradcache import forward_backward
from qaembed.train.scoring import build_scoring

COMBINED = {"name": "combined", "projection_dim": 16, "weights": {"pooled": 0.3, "maxsim": 0.7},
            "maxsim_loss": {"name": "listwise"}}


def _tiny(tiny_model_dir, projection_dim=16):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.eval()  # no dropout: the chunked pass must reproduce the plain one exactly
    return add_token_projection(model, projection_dim, option="scorer.projection_dim")


def test_scorer_section_forms_and_errors(tiny_dataset):
    base = {"data": {"dataset": str(tiny_dataset)}}
    assert parse_config(base).scorer == ScorerSection()  # default: cosine, nothing else set
    assert parse_config({**base, "scorer": "maxsim"}).scorer.name == "maxsim"
    combined = parse_config({**base, "strategy": {"name": "hard_negative"}, "scorer": COMBINED}).scorer
    assert combined.weights.pooled == 0.3 and combined.maxsim_loss.name == "listwise"
    for scorer, message in [
        ("dot", "scorer.name: Input should be 'cosine', 'maxsim' or 'combined'"),
        ({"name": "combined"}, "needs weights"),
        ({"name": "maxsim", "weights": {"pooled": 1, "maxsim": 1}}, "weights: only for scorer 'combined'"),
        ({"name": "cosine", "projection_dim": 128}, "projection_dim: only for scorers 'maxsim' and 'combined'"),
        ({"name": "combined", "weights": {"pooled": 0, "maxsim": 0}}, "at least one weight"),
        ({"name": "maxsim", "reduce": "max"}, "scorer.reduce"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config({**base, "scorer": scorer})


def test_combined_part_losses_are_checked_against_the_strategy(tiny_dataset):
    raw = {"data": {"dataset": str(tiny_dataset)}, "strategy": {"name": "infonce"},
           "scorer": {**COMBINED, "maxsim_loss": {"name": "listwise"}}}
    with pytest.raises(ConfigError, match="scorer.maxsim_loss: loss 'listwise' does not accept batching strategy"):
        parse_config(raw)
    raw["scorer"] = {**COMBINED, "pooled_loss": {"name": "infonce", "options": {"temperature": -1}}}
    with pytest.raises(ConfigError, match="scorer.pooled_loss.options.temperature: Input should be greater than 0"):
        parse_config(raw)


def _loss_and_grads(model, scoring, batch, mini_batch_size):
    model.zero_grad(set_to_none=True)
    features = Collator(model, 32)(batch)
    output = forward_backward(model, features, batch.num_queries, lambda q, d: scoring.loss(q, d, batch),
                              mini_batch_size=mini_batch_size, embed_fn=scoring.embed)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output, grads


@pytest.mark.parametrize(
    ("scorer", "loss_name", "strategy_name"),
    [({"name": "maxsim", "projection_dim": 16}, "infonce", "hard_negative"),
     ({"name": "maxsim", "projection_dim": 16, "reduce": "sum", "query_length": 6}, "listwise", "listwise"),
     (COMBINED, "infonce", "listwise")],
)
def test_gradcache_matches_plain_pass_for_maxsim_and_combined(tiny_model_dir, tiny_dataset, scorer, loss_name,
                                                              strategy_name):
    model = _tiny(tiny_model_dir)
    scoring = build_scoring(ScorerSection.model_validate(scorer), build_loss(loss_name, {}))
    batch = next(build_strategy(strategy_name).batches(read_split(tiny_dataset, "train"), batch_size=8, seed=0))
    plain, plain_grads = _loss_and_grads(model, scoring, batch, None)
    cached, cached_grads = _loss_and_grads(model, scoring, batch, 5)
    assert batch.num_queries + batch.num_docs > 10  # at least three chunks, of different lengths
    assert cached.loss.item() == pytest.approx(plain.loss.item(), abs=1e-5)
    for key, value in plain.metrics.items():
        assert cached.metrics[key].item() == pytest.approx(value.item(), abs=1e-5), key
    projection = [n for n in plain_grads if n.endswith("linear.weight") and plain_grads[n].shape[0] == 16]
    assert projection, "the token projection gets a gradient"
    assert plain_grads.keys() == cached_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_combined_loss_is_the_weighted_sum_of_its_parts(tiny_model_dir, tiny_dataset):
    model = _tiny(tiny_model_dir)
    scorer = ScorerSection.model_validate({**COMBINED, "query_length": 5})
    scoring = build_scoring(scorer, build_loss("infonce", {}))
    batch = next(build_strategy("listwise").batches(read_split(tiny_dataset, "train"), batch_size=6, seed=2))
    features = Collator(model, 32)(batch)
    with torch.no_grad():
        pooled, tokens, mask = scoring.embed(model, features)
        output = scoring.loss((pooled[:6], tokens[:6], mask[:6]), (pooled[6:], tokens[6:], mask[6:]), batch)
        q_mask = mask[:6].clone()
        q_mask[:, 5:] = False  # query_length 5
        late = maxsim_scores(tokens[:6], q_mask, tokens[6:], mask[6:], reduce="mean")
        pooled_part = build_loss("infonce", {})(cosine_scores(pooled[:6], pooled[6:]), batch).loss
        maxsim_part = build_loss("listwise", {})(late, batch).loss
    assert output.loss.item() == pytest.approx(0.3 * pooled_part.item() + 0.7 * maxsim_part.item(), abs=1e-6)
    assert output.metrics["pooled"].item() == pytest.approx(pooled_part.item(), abs=1e-6)
    assert output.metrics["maxsim"].item() == pytest.approx(maxsim_part.item(), abs=1e-6)
    assert "pooled/accuracy" in output.metrics
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(()), atol=1e-5) and tokens.shape[-1] == 16


def test_maxsim_on_a_model_without_token_outputs_is_a_config_error(tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=8)], device="cpu")
    scoring = build_scoring(ScorerSection(name="maxsim"), build_loss("infonce", {}))
    features = model.tokenize(["a question", "an answer"])
    with pytest.raises(ConfigError, match="scorer: maxsim: MaxSim needs token embeddings.*scorer: cosine"):
        scoring.embed(model, features)


def test_a_token_projection_of_another_size_is_a_config_error(tiny_model_dir):
    model = _tiny(tiny_model_dir, 16)
    assert add_token_projection(model, None, option="scorer.projection_dim") is model  # kept
    assert add_token_projection(model, 16, option="scorer.projection_dim") is model
    with pytest.raises(ConfigError, match=r"scorer.projection_dim: 8 does not match the model's token projection "
                                          r"\(32 -> 16\)"):
        add_token_projection(model, 8, option="scorer.projection_dim")


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_combined_run_logs_both_parts_and_saves_a_reloadable_model(tiny_config, tmp_path):
    from sentence_transformers import SentenceTransformer

    from qaembed.train import train

    raw = {**tiny_config, "scorer": {**COMBINED, "maxsim_loss": {"name": "infonce", "options": {"temperature": 0.1}}},
           "training": {**tiny_config["training"], "max_steps": 2, "eval_every": None, "save_every": None}}
    result = train(parse_config(raw), tmp_path / "run")
    assert result.status == "completed"
    logged = [r for r in _metrics(tmp_path / "run") if "loss" in r]
    assert len(logged) == 2 and all({"loss/pooled", "loss/maxsim", "loss/maxsim/accuracy"} <= r.keys() for r in logged)
    for record in logged:
        assert record["loss"] == pytest.approx(0.3 * record["loss/pooled"] + 0.7 * record["loss/maxsim"], abs=1e-5)
    model = SentenceTransformer(str(tmp_path / "run" / "model"), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize", "Dense"]
    assert model.encode(["a question?"]).shape == (1, 32)  # the pooled head is still there
    assert token_projection(model).out_features == 16


def test_maxsim_run_trains_the_projection(tiny_config, tmp_path):
    from sentence_transformers import SentenceTransformer

    from qaembed.train import train

    raw = {**tiny_config, "scorer": {"name": "maxsim", "projection_dim": 16},
           "training": {**tiny_config["training"], "max_steps": 2, "eval_every": None, "save_every": None}}
    train(parse_config(raw), tmp_path / "run")
    from qaembed.late_interaction import load_model

    model = load_model(tmp_path / "run" / "model", device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Dense"]
    base = SentenceTransformer(str(tiny_config["model"]["base"]), device="cpu")
    trained = dict(model.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in base.named_parameters() if n in trained)
    tokens = model.encode(["a question?"], output_value="token_embeddings")[0]
    assert tokens.shape[-1] == 16


def test_killed_and_resumed_combined_run_matches_uninterrupted_run(tiny_config, tmp_path):
    from qaembed.train import StopTraining, train

    scorer = {**COMBINED, "maxsim_loss": {"name": "pair_bce"}}
    raw = {**tiny_config, "scorer": scorer,
           "training": {**tiny_config["training"], "max_steps": 4, "eval_every": None, "save_every": 2}}
    config = parse_config(raw)
    train(config, tmp_path / "straight")

    def kill_after_three(step: int) -> None:
        if step == 3:
            raise StopTraining

    assert train(config, tmp_path / "killed", step_callback=kill_after_three).status == "stopped"
    changed = {**raw, "scorer": {**scorer, "projection_dim": 8}}
    with pytest.raises(ConfigError, match="scorer.projection_dim"):
        train(parse_config(changed), tmp_path / "killed", resume=True)
    train(config, tmp_path / "killed", resume=True)
    straight = [r["loss"] for r in _metrics(tmp_path / "straight") if "loss" in r]
    resumed = [r["loss"] for r in _metrics(tmp_path / "killed") if "loss" in r]
    assert resumed == pytest.approx(straight, abs=1e-6)


def test_maxsim_run_evaluates_dev_with_maxsim(tiny_config, tmp_path, caplog):
    """The logged dev metrics of a maxsim run are the MaxSim evaluation of the saved model (no pooled stand-in)."""
    from qaembed.data.dataset import read_split
    from qaembed.evaluate import EvalConfig, evaluate_model
    from qaembed.late_interaction import load_model
    from qaembed.train import train

    raw = {**tiny_config, "scorer": {"name": "maxsim", "projection_dim": 16, "query_length": 6},
           "training": {**tiny_config["training"], "max_steps": 2, "eval_every": None, "save_every": None}}
    config = parse_config(raw)
    with caplog.at_level("WARNING"):
        train(config, tmp_path / "run")
    assert "pooled" not in caplog.text
    final = [r for r in _metrics(tmp_path / "run") if "dev/retrieval/ndcg@10" in r][-1]
    model = load_model(tmp_path / "run" / "model", device="cpu")
    records = read_split(config.data.dataset, "dev")[: config.data.max_dev_questions]
    expected = evaluate_model(model, records, config=EvalConfig(
        query_mode=config.data.query_text, seed=config.training.seed, scorer="maxsim", query_length=6)).summary
    cosine_keys = {k for k in final if k.startswith("dev/")}
    assert cosine_keys == {f"dev/{k}" for k in expected}
    for key, value in expected.items():
        assert final[f"dev/{key}"] == pytest.approx(value, abs=1e-6), key


def test_combined_run_evaluates_dev_with_both_scorers(tiny_config, tmp_path):
    from qaembed.train import train

    raw = {**tiny_config, "scorer": COMBINED,
           "training": {**tiny_config["training"], "max_steps": 1, "eval_every": None, "save_every": None}}
    train(parse_config(raw), tmp_path / "run")
    final = [r for r in _metrics(tmp_path / "run") if "dev/retrieval/ndcg@10" in r][-1]
    assert {"dev/retrieval/ndcg@10", "dev/maxsim/retrieval/ndcg@10", "dev/maxsim/within/ndcg"} <= final.keys()
    eval_metric = {**raw, "training": {**raw["training"], "eval_metric": "maxsim/retrieval/ndcg@10"}}
    assert train(parse_config(eval_metric), tmp_path / "run2").status == "completed"
