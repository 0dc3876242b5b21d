"""ColBERT / PyLate tokenization: marker tokens after [CLS], [MASK] query expansion, in training and evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from qaembed.errors import ConfigError
from qaembed.late_interaction import (
    ColbertCollator,
    ColbertTokens,
    add_marker_tokens,
    add_token_projection,
    colbert_features,
    colbert_tokenize,
    saved_colbert_tokens,
)

COLBERT = ColbertTokens("[Q] ", "[D] ", query_expansion=True, query_length=8)


def _model(tiny_model_dir, colbert=COLBERT):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.eval()
    add_token_projection(model, 16, option="scorer.projection_dim")
    add_marker_tokens(model, colbert)
    return model


def test_tokens_are_pylates_marker_after_cls_and_mask_expansion(tiny_model_dir):
    model = _model(tiny_model_dir)
    tok = model.tokenizer
    q_id, d_id = tok.convert_tokens_to_ids("[Q] "), tok.convert_tokens_to_ids("[D] ")
    assert q_id >= tok.vocab_size and d_id >= tok.vocab_size  # new tokens, embeddings resized
    assert model[0].auto_model.get_input_embeddings().num_embeddings == len(tok)
    plain = tok(["brew a stout", "a b"])["input_ids"]  # [CLS] ... [SEP]
    query = colbert_tokenize(tok, ["brew a stout", "a b"], is_query=True, max_length=32, colbert=COLBERT)
    for row, ids in enumerate(plain):
        expected = [ids[0], q_id] + ids[1:]
        expected += [tok.mask_token_id] * (8 - len(expected))  # padded to query_length with [MASK]
        assert query["input_ids"][row].tolist() == expected
        assert query["attention_mask"][row].tolist() == [1] * (len(ids) + 1) + [0] * (8 - len(ids) - 1)
    assert query["maxsim_mask"].tolist() == [[1] * 8, [1] * 8]  # expansion tokens take part in MaxSim
    long_query = colbert_tokenize(tok, ["word " * 40], is_query=True, max_length=32, colbert=COLBERT)
    assert long_query["input_ids"].shape == (1, 8)  # truncated at query_length, marker included
    docs = colbert_tokenize(tok, ["a long answer text here", "a"], is_query=False, max_length=32, colbert=COLBERT)
    plain_docs = tok(["a long answer text here", "a"])["input_ids"]
    assert docs["input_ids"][0].tolist() == [plain_docs[0][0], d_id] + plain_docs[0][1:]
    assert docs["maxsim_mask"].tolist() == docs["attention_mask"].tolist()  # documents: padding is padding
    both = colbert_features(tok, ["brew a stout"], ["a long answer text here"], max_length=32, colbert=COLBERT)
    assert both["input_ids"].shape[0] == 2 and both["maxsim_mask"][0].sum() == 8


def test_gradcache_equals_plain_pass_with_markers_and_expansion(tiny_model_dir, tiny_dataset):
    from qaembed.batching.strategies import build_strategy
    from qaembed.data.dataset import read_split
    from qaembed.losses import build_loss
    from qaembed.train.config import ScorerSection
    from qaembed.train.gradcache import forward_backward
    from qaembed.train.scoring import build_scoring

    model = _model(tiny_model_dir)
    scorer = ScorerSection.model_validate({"name": "maxsim", "projection_dim": 16, "query_length": 8,
                                           "markers": True, "query_expansion": True})
    scoring = build_scoring(scorer, build_loss("infonce", {}))
    batch = next(build_strategy("hard_negative").batches(read_split(tiny_dataset, "train"), batch_size=8, seed=0))
    features = ColbertCollator(model, 32, ColbertTokens.of_scorer(scorer))(batch)
    results = []
    for mini in (None, 5):
        model.zero_grad(set_to_none=True)
        out = forward_backward(model, features, batch.num_queries, lambda q, d: scoring.loss(q, d, batch),
                               mini_batch_size=mini, embed_fn=scoring.embed)
        results.append((out.loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (plain, plain_grads), (cached, cached_grads) = results
    assert cached == pytest.approx(plain, abs=1e-5)
    marker_rows = model[0].auto_model.get_input_embeddings().weight.grad
    assert marker_rows is not None
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_config_errors():
    from qaembed.train.config import ScorerSection

    with pytest.raises(ValueError, match="query_expansion pads queries to query_length"):
        ScorerSection.model_validate({"name": "maxsim", "query_expansion": True})
    with pytest.raises(ValueError, match="markers: only for scorers 'maxsim' and 'combined'"):
        ScorerSection.model_validate({"name": "cosine", "markers": True})


def test_trained_model_saves_pylate_keys_and_eval_uses_them(tiny_config, tmp_path):
    from typer.testing import CliRunner

    from qaembed.cli import app
    from qaembed.late_interaction import load_model
    from qaembed.train import train
    from qaembed.train.config import parse_config

    raw = {**tiny_config, "scorer": {"name": "maxsim", "projection_dim": 16, "query_length": 8, "markers": True,
                                     "query_expansion": True},
           "training": {**tiny_config["training"], "max_steps": 2, "eval_every": None, "save_every": None}}
    result = train(parse_config(raw), tmp_path / "run")
    assert result.status == "completed"
    folder = tmp_path / "run" / "model"
    saved = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert (saved["query_prefix"], saved["document_prefix"], saved["do_query_expansion"], saved["query_length"],
            saved["attend_to_expansion_tokens"]) == ("[Q] ", "[D] ", True, 8, False)
    assert saved_colbert_tokens(folder) == COLBERT
    model = load_model(folder, device="cpu")
    assert "[Q] " in model.tokenizer.get_vocab() and "[D] " in model.tokenizer.get_vocab()
    dev = [r for r in (json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open())
           if "dev/retrieval/ndcg@10" in r]
    assert dev, "dev metrics were logged"
    out = tmp_path / "eval"
    cli = CliRunner().invoke(app, ["eval", "--model", str(folder), "--data", tiny_config["data"]["dataset"],
                                   "--split", "dev", "--scorer", "maxsim", "--json", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    info = json.loads((out / "summary.json").read_text())["info"]
    assert (info["config"]["query_prefix"], info["config"]["query_expansion"]) == ("[Q] ", True)
    questions = json.loads(cli.stdout)["counts"]["retrieval/questions"]
    assert info["maxsim"]["query_tokens"] == 8 * questions  # every query: exactly query_length tokens


def test_markers_on_a_model_without_them_is_a_config_error(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with pytest.raises(ConfigError, match="no marker token '\\[Q\\] '"):
        colbert_tokenize(model.tokenizer, ["q"], is_query=True, max_length=16, colbert=COLBERT)
