"""Compute budgets: a texts / tokens / steps budget becomes a step plan, and the run spends it."""

from __future__ import annotations

import json

import pytest

from qaembed.batching import build_strategy
from qaembed.batching.collate import tokenize
from qaembed.data.dataset import read_split
from qaembed.errors import ConfigError
from qaembed.train import train
from qaembed.train.budget import steps_for_budget
from qaembed.train.config import parse_config


def _with_budget(tiny_config, unit: str, amount: int, strategy: str = "hard_negative"):
    raw = {**tiny_config, "strategy": {"name": strategy},
           "training": {**tiny_config["training"], "max_steps": None, "budget": {"unit": unit, "amount": amount},
                        "eval_every": None, "save_every": None}}
    return parse_config(raw)


def test_steps_for_budget_stops_at_the_first_step_that_reaches_it():
    assert steps_for_budget([5, 5, 5], 5) == 1
    assert steps_for_budget([5, 5, 5], 6) == 2
    with pytest.raises(ValueError, match="ran out"):
        steps_for_budget([5], 50)


def test_budget_and_max_steps_are_exclusive(tiny_config):
    raw = {**tiny_config, "training": {**tiny_config["training"], "budget": {"unit": "texts", "amount": 10}}}
    with pytest.raises(ConfigError, match="either max_steps or budget"):
        parse_config(raw)


@pytest.mark.parametrize("strategy", ["infonce", "hard_negative"])
def test_texts_budget_is_spent_within_one_batch(tiny_config, tmp_path, strategy):
    amount = 150
    result = train(_with_budget(tiny_config, "texts", amount, strategy), tmp_path / "run", progress_bar=False)
    config = parse_config(tiny_config)
    records = read_split(config.data.dataset, "train")
    largest_batch = max(b.num_queries + b.num_docs
                        for b in build_strategy(strategy).batches(records, 8, seed=3, drop_last=True))
    assert amount <= result.texts < amount + largest_batch
    assert result.questions == 8 * result.steps
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["texts"] == result.texts and saved["tokens"] == result.tokens > result.texts
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["texts"] for r in logged if "loss" in r][-1] == result.texts


def test_tokens_budget_counts_real_tokens(tiny_config, tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    amount = 2000
    result = train(_with_budget(tiny_config, "tokens", amount), tmp_path / "run", progress_bar=False)
    assert amount <= result.tokens
    # recount from the batches the run saw: attention-mask sums of the collated texts
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    records = read_split(parse_config(tiny_config).data.dataset, "train")
    batches = list(build_strategy("hard_negative").batches(records, 8, seed=3, drop_last=True))[: result.steps]
    counted = [int(tokenize(model, b.queries + b.docs, 32)["attention_mask"].sum()) for b in batches]
    assert sum(counted) == result.tokens
    assert sum(counted[:-1]) < amount


def test_equal_question_order_for_strategies_that_draw_one_item_per_question(tiny_config, tmp_path):
    top = train(_with_budget(tiny_config, "steps", 4, "infonce"), tmp_path / "top", progress_bar=False)
    raw = _with_budget(tiny_config, "steps", 4, "triplet").model_dump(mode="json")
    raw["strategy"] = {"name": "triplet", "options": {"neg_strategy": "in_batch"}}
    raw["loss"] = {"name": "triplet", "options": {}}
    triplet = train(parse_config(raw), tmp_path / "triplet", progress_bar=False)
    assert top.question_order == triplet.question_order and top.questions == triplet.questions == 32
    other_seed = _with_budget(tiny_config, "steps", 4, "infonce").model_dump(mode="json")
    other_seed["training"]["seed"] = 4
    shuffled = train(parse_config(other_seed), tmp_path / "seed4", progress_bar=False)
    assert shuffled.question_order != top.question_order


def test_resume_of_a_finished_run_with_an_incomplete_result_names_the_file(tiny_config, tmp_path):
    from qaembed.errors import DataError

    run = tmp_path / "run"
    config = _with_budget(tiny_config, "steps", 2)
    train(config, run, progress_bar=False)
    result = json.loads((run / "result.json").read_text())
    del result["steps"]
    (run / "result.json").write_text(json.dumps(result))
    with pytest.raises(DataError, match="result.json.*incomplete"):
        train(config, run, resume=True, progress_bar=False)
