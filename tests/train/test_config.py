"""Training config: loading, overrides, validation messages, shipped example configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qaembed.errors import ConfigError
from qaembed.train.config import debug_config, load_config, parse_config
from qaembed.train.loop import build_components

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_defaults_and_yaml_typed_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  dataset: some/dir\nloss:\n  name: listwise\nstrategy: {name: listwise}\n")
    config = load_config(path, ["training.lr=1e-4", "model.projection_dim=128", "loss.options.temperature=0.1",
                                "training.trackers=[tensorboard]", "training.max_grad_norm=null"])
    assert config.training.lr == 1e-4 and config.model.projection_dim == 128
    assert config.loss.options.temperature == 0.1 and config.loss.options.in_batch_negatives is False
    assert config.to_dict()["loss"] == {"name": "listwise", "options": {"temperature": 0.1}}  # as given
    assert config.training.trackers == ["tensorboard"] and config.training.max_grad_norm is None
    assert config.model.base == "minilm" and config.training.mini_batch_size is None


def test_json_config_is_accepted(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"data": {"dataset": "d"}, "training": {"batch_size": 4}}')
    assert load_config(path).training.batch_size == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"dataset": "d"}, "training": {"batch_sise": 4}}, "training.batch_sise: unknown key"),
        ({"data": {"dataset": "d"}, "training": {"lr": 0}}, "training.lr: Input should be greater than 0"),
        ({"data": {"dataset": "d"}, "training": {"mixed_precision": "fp8"}}, "training.mixed_precision"),
        ({"data": {"dataset": "d"}, "training": {"scheduler": "step"}}, "training.scheduler"),
        ({"data": {"dataset": "d"}, "model": {"pooling": "sum"}}, "model.pooling"),
        ({"data": {"dataset": "d"}, "training": {"trackers": ["neptune"]}}, "training.trackers.0"),
        ({"training": {}}, "data: required"),
        ({"data": {"dataset": "d"}, "loss": {"name": "softmax"}}, "loss.name: unknown name 'softmax'; allowed: infonce,"),
        ({"data": {"dataset": "d"}, "loss": {"options": {"temp": 1}}}, "loss.options.temp: unknown key"),
        ({"data": {"dataset": "d"}, "strategy": {"name": "triplet", "options": {"neg_strategy": "x"}}},
         "strategy.options.neg_strategy: Input should be"),
        ({"data": {"dataset": "d"}, "loss": {"name": "multitask", "options": {"parts": [{"loss": "triplet"}]}}},
         "loss 'multitask' does not accept batching strategy 'infonce'; it accepts: hard_negative, triplet, mined"),
        ({"data": {"dataset": "d"}, "training": {"early_stopping_patience": 2}}, "needs eval_every"),
        # YAML's .inf (or 1.0e400): the learning rate made every loss after the first step NaN, epochs crashed
        # with an OverflowError traceback when the run's step count was computed
        ({"data": {"dataset": "d"}, "training": {"lr": float("inf")}}, "training.lr: Input should be a finite number"),
        ({"data": {"dataset": "d"}, "training": {"epochs": float("inf")}}, "training.epochs: Input should be a finite"),
        ({"data": {"dataset": "d"}, "training": {"weight_decay": float("inf")}}, "training.weight_decay: Input should"),
        ({"data": {"dataset": "d"}, "training": {"max_grad_norm": float("inf")}}, "training.max_grad_norm: Input"),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_config(raw)


def test_bad_override_and_missing_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {dataset: d}\n")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["training.lr"])
    with pytest.raises(ConfigError, match="'dataset' is a value"):
        load_config(path, ["data.dataset=x", "data.dataset.sub=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_a_config_that_is_a_folder_or_does_not_parse_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=f"^config file {tmp_path} is a directory, not a file$"):
        load_config(tmp_path)
    planted = tmp_path / "planted.yaml"
    planted.write_text('training: !!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(planted)
    assert str(info.value) == (f"{planted}: cannot parse: could not determine a constructor for the tag "
                               "'tag:yaml.org,2002:python/object/apply:os.system' (line 1, column 11)")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"training:\n  lr: 1e-4\xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert str(info.value) == f"{binary}: cannot parse: not UTF-8 (invalid start byte at byte 20, line 2)"
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", "train", "--config", str(tmp_path), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: config file {tmp_path} is a directory, not a file"


def test_loss_options_and_strategy_pairing_fail_when_the_config_is_read():
    base = {"data": {"dataset": "d"}}  # no dataset on disk, no model: nothing heavy has started
    with pytest.raises(ConfigError, match="loss.options.temperature: Input should be greater than 0"):
        parse_config({**base, "loss": {"name": "infonce", "options": {"temperature": -1}}})
    with pytest.raises(ConfigError, match="does not accept batching strategy 'listwise'"):
        parse_config({**base, "strategy": {"name": "listwise"}, "loss": {"name": "infonce"}})
    with pytest.raises(ConfigError, match="data.query_text"):
        parse_config({**base, "strategy": {"name": "infonce", "options": {"query_text": "title"}}})


def test_typed_options_reach_the_components_with_the_data_query_text():
    config = parse_config({"data": {"dataset": "d", "query_text": "title"},
                           "strategy": {"name": "multiple_positives", "options": {"pos_count": 2}},
                           "loss": {"name": "multiple_positives", "options": {"use_scores": True}}})
    strategy, loss_fn = build_components(config)
    assert strategy.config.pos_count == 2 and strategy.config.query_text == "title"
    assert loss_fn.config.use_scores is True and loss_fn.config is config.loss.options
    assert "query_text" not in config.to_dict()["strategy"]["options"]  # the saved config stays as written
    assert parse_config(config.to_dict()) == config  # a saved config reads back to the same config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate_and_fit_together(path):
    config = load_config(path)
    strategy, loss_fn = build_components(config)
    assert strategy.name == config.strategy.name and loss_fn.name == config.loss.name
    small = debug_config(config)
    assert small.training.max_steps == 3 and small.model.max_seq_length == 64


def test_shipped_configs_cover_the_seed_project_losses():
    names = {p.stem for p in CONFIGS}
    assert {"infonce", "infonce_random_answer", "multiple_positives_rank", "multiple_positives_score",
            "relaxed_hard_negative", "triplet", "listwise", "mse", "infonce_no_in_batch",
            "infonce_no_hard_negatives"} <= names


def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path):
    """PyYAML and json.loads keep the last of two equal keys: the first value would be dropped without a word."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("data: {dataset: d}\ntraining: {lr: 1.0e-4}\ntraining: {batch_size: 4}\n")
    with pytest.raises(ConfigError) as info:
        load_config(twice)
    assert str(info.value) == (f"{twice}: cannot parse: while constructing a mapping: found duplicate key "
                               "'training' (line 3, column 1)")
    inner = tmp_path / "inner.yaml"
    inner.write_text("data: {dataset: d}\ntraining:\n  lr: 1.0e-4\n  lr: 3.0e-4\n")
    with pytest.raises(ConfigError, match=r"found duplicate key 'lr' \(line 4, column 3\)$"):
        load_config(inner)
    as_json = tmp_path / "twice.json"
    as_json.write_text('{"data": {"dataset": "d"}, "training": {"lr": 1e-4, "lr": 2e-4}}')
    with pytest.raises(ConfigError, match=f"^{as_json}: cannot parse: duplicate key 'lr'$"):
        load_config(as_json)
    merged = tmp_path / "merged.yaml"  # a key a merge brings in may be overridden: that is what YAML means
    merged.write_text("data: {dataset: d}\nmodel: &m {max_seq_length: 64}\ntraining: {<<: {lr: 1.0e-4, seed: 1}, lr: 3.0e-4}\n")
    config = load_config(merged)
    assert config.training.lr == 3e-4 and config.training.seed == 1 and config.model.max_seq_length == 64


def test_an_integer_too_long_for_python_is_a_config_error(tmp_path):
    digits = "1" + "0" * 5000
    for name, text in (("big.yaml", f"data: {{dataset: d}}\ntraining: {{batch_size: {digits}}}\n"),
                       ("big.json", f'{{"data": {{"dataset": "d"}}, "training": {{"batch_size": {digits}}}}}')):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"^{path}: cannot parse: an integer of more than \\d+ digits$"):
            load_config(path)
    with pytest.raises(ConfigError, match=r"^--set training.batch_size: value is not valid YAML: an integer of more"):
        load_config(None, [f"training.batch_size={digits}"], dataset="d")


def test_a_set_value_that_is_not_yaml_is_one_line():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.lr=[1"], dataset="d")
    assert str(info.value) == ("--set training.lr: value '[1' is not valid YAML: while parsing a flow sequence: "
                               "expected ',' or ']', but got '<stream end>' (line 1, column 3)")
    with pytest.raises(ConfigError, match=r"^--set training: .*found duplicate key 'lr' \(line 1, column 9\)$"):
        load_config(None, ["training={lr: 1, lr: 2}"], dataset="d")
