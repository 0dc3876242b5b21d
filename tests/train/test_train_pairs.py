"""Training on duplicate-question pair data: the pairs strategy, pair losses, pair dev evaluation, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.errors import ConfigError
from qaembed.train import StopTraining, train
from qaembed.train.config import parse_config


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu").state_dict()


@pytest.fixture()
def pair_config(tiny_model_dir, tiny_pair_dataset):
    return {
        "model": {"base": str(tiny_model_dir), "max_seq_length": 32},
        "data": {"dataset": str(tiny_pair_dataset)},
        "strategy": {"name": "pairs"},
        "loss": {"name": "infonce", "options": {"temperature": 0.1}},
        "training": {"batch_size": 8, "max_steps": 12, "lr": 1e-3, "log_every": 1, "save_every": 4,
                     "eval_every": 6, "seed": 3},
    }


def test_train_data_without_config_uses_the_pairs_strategy_and_pair_dev_evaluation(tiny_model_dir,
                                                                                     tiny_pair_dataset, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_pair_dataset), "--out", str(out),
                                      "--set", f"model.base={tiny_model_dir}", "--set", "training.batch_size=8",
                                      "--set", "training.max_steps=3", "--set", "model.max_seq_length=32"])
    assert result.exit_code == 0, result.output[-3000:]
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] == "completed" and saved["steps"] == 3
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["strategy"]["name"] == "pairs" and config["loss"]["name"] == "infonce"
    dev = [r for r in _metrics(out) if "dev/retrieval/mrr@10" in r]
    assert [r["step"] for r in dev] == [0, 3]
    # the pair evaluation: duplicate retrieval and classification (thresholds chosen on the dev pairs)
    assert 0 <= dev[-1]["dev/classification/average_precision"] <= 1
    assert dev[-1]["dev/retrieval/ndcg@10"] == saved["final_dev"]["retrieval/ndcg@10"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in provenance["data_files"]] == ["train.pairs.jsonl", "dev.pairs.jsonl"]


@pytest.mark.parametrize("loss", [
    {"name": "cosine_pair", "options": {"labels": "binary"}},
    {"name": "multitask", "options": {"parts": [{"loss": "infonce", "weight": 1.0},
                                                {"loss": "cosine_pair", "weight": 0.5}]}},
])
def test_pair_losses_train_under_a_texts_budget(pair_config, loss, tmp_path):
    raw = {**pair_config, "loss": loss}
    raw["training"] = {**raw["training"], "max_steps": None, "budget": {"unit": "texts", "amount": 100},
                       "eval_every": None}
    result = train(parse_config(raw), tmp_path / "run")
    assert result.status == "completed"
    steps = [r for r in _metrics(tmp_path / "run") if "loss" in r]
    per_step = [b - a for a, b in zip([0] + [r["texts"] for r in steps], [r["texts"] for r in steps])]
    assert result.texts >= 100 and result.texts - per_step[-1] < 100  # stops at the first step reaching it
    assert result.steps == len(steps) >= 2
    if loss["name"] == "multitask":
        assert {"loss/infonce/loss", "loss/cosine_pair/loss"} <= set(steps[0])


def test_killed_and_resumed_pair_run_matches_uninterrupted_run(pair_config, tmp_path):
    raw = {**pair_config, "training": {**pair_config["training"], "max_steps": 18, "save_every": 7}}
    config = parse_config(raw)  # 18 steps of 8 anchors: more than one epoch of the train pairs
    straight = tmp_path / "straight"
    result = train(config, straight)
    assert max(r.get("epoch", 0) for r in _metrics(straight)) >= 1
    killed = tmp_path / "killed"

    def kill(step: int) -> None:
        if step == 16:  # the checkpoint at step 14 lies in the second epoch
            raise StopTraining

    train(config, killed, step_callback=kill)
    resumed = train(config, killed, resume=True)
    assert resumed.steps == result.steps == 18 and resumed.question_order == result.question_order
    first, second = _weights(straight / "model"), _weights(killed / "model")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_q_and_a_strategy_on_pair_data_is_a_clear_error_before_the_run_starts(pair_config, tmp_path):
    raw = {**pair_config, "strategy": {"name": "hard_negative"}}
    with pytest.raises(ConfigError, match=r"strategy.name: 'hard_negative' batches Q&A records.*pair dataset.*"
                                          r"'pairs'.*infonce, cosine_pair, pair_bce, multitask"):
        train(parse_config(raw), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_pairs_strategy_on_q_and_a_data_is_a_clear_error(pair_config, tiny_dataset, tmp_path):
    raw = {**pair_config, "data": {"dataset": str(tiny_dataset)}}
    with pytest.raises(ConfigError, match=r"'pairs' batches duplicate-question pairs.*Q&A dataset.*--format"):
        train(parse_config(raw), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_q_and_a_loss_on_pairs_is_a_clear_error_listing_what_it_accepts(pair_config, tmp_path):
    raw = {**pair_config, "loss": {"name": "listwise"}}
    with pytest.raises(ConfigError, match=r"loss 'listwise' does not accept batching strategy 'pairs'; it accepts"):
        train(parse_config(raw), tmp_path / "run")
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "no such folder" in str(result.exception) + result.output


def test_cli_without_config_or_data_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "give --config FILE or --data DIR" in str(result.exception) + result.output
