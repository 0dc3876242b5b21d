"""Loss configs: unknown keys, ranges and loss x strategy combinations fail with clear errors."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from qaembed.batching import STRATEGIES
from qaembed.errors import ConfigError
from qaembed.losses import LOSSES, build_loss, check_strategy


@pytest.mark.parametrize(
    ("name", "options", "fragments"),
    [
        ("softmax", {}, ["unknown loss 'softmax'", "allowed: cosine_pair, infonce, listwise, mse, multiple_positives"]),
        ("infonce", {"temp": 0.1}, ["loss 'infonce'", "unknown option 'temp'", "allowed: temperature, symmetric"]),
        ("infonce", {"temperature": 0}, ["option 'temperature'", "greater than 0"]),
        ("relaxed_hard_negative", {"relaxation": 1.0}, ["option 'relaxation'", "less than 1"]),
        ("triplet", {"margin": -1}, ["option 'margin'"]),
        ("cosine_pair", {"labels": "soft"}, ["option 'labels'", "'binary' or 'relevance'"]),
        ("multitask", {}, ["option 'parts'", "required"]),
        ("multitask", {"parts": []}, ["option 'parts'", "at least 1"]),
        ("multitask", {"parts": [{"loss": "infonce", "weight": 0}]}, ["option 'parts.0.weight'"]),
        ("multitask", {"parts": [{"loss": "nope"}]}, ["option 'parts.0.loss'", "unknown name 'nope'", "allowed: infonce,"]),
        ("multitask", {"parts": [{"loss": "infonce", "options": {"tau": 1}}]}, ["option 'parts.0.options.tau'", "unknown key"]),
        ("multitask", {"parts": [{"loss": "multitask", "options": {}}]}, ["option 'parts.0.loss'", "unknown name 'multitask'"]),  # cannot nest
    ],
)
def test_bad_options_raise_config_error_naming_the_field(name, options, fragments):
    with pytest.raises(ConfigError) as info:
        build_loss(name, options)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_defaults_build_for_every_loss_except_composites():
    for name, cls in LOSSES.items():
        if not cls.composite:
            assert build_loss(name).config == cls.config_class()
        assert set(cls.strategies) <= set(STRATEGIES)


def test_check_strategy_lists_the_allowed_combinations():
    check_strategy("listwise", "listwise")
    with pytest.raises(ConfigError, match="loss 'listwise' does not accept batching strategy 'infonce'; it accepts: listwise, hard_negative"):
        check_strategy("listwise", "infonce")
    with pytest.raises(ConfigError, match="unknown batching strategy 'pair'; allowed: hard_negative"):
        check_strategy("infonce", "pair")
    parts = {"parts": [{"loss": "infonce"}, {"loss": "listwise"}]}
    check_strategy("multitask", "hard_negative", parts)
    with pytest.raises(ConfigError, match="it accepts: hard_negative$"):
        check_strategy("multitask", "triplet", parts)


MODULES = [
    "qaembed.losses.scores", "qaembed.losses.infonce", "qaembed.losses.multiple_positives",
    "qaembed.losses.relaxed_hard_negative", "qaembed.losses.triplet", "qaembed.losses.listwise",
    "qaembed.losses.mse", "qaembed.losses.cosine_pair", "qaembed.losses.multitask", "qaembed.losses.pair_bce",
    "qaembed.late_interaction",
    "qaembed.batching.relevance", "qaembed.batching.sampler",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    """The hand-computed examples in each loss docstring hold."""
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_cli_lists_losses_and_strategies_as_json():
    import json

    from typer.testing import CliRunner

    from qaembed.cli import app

    runner = CliRunner()
    losses = json.loads(runner.invoke(app, ["losses", "--json"]).output)
    assert [entry["name"] for entry in losses] == list(LOSSES)
    infonce = next(entry for entry in losses if entry["name"] == "infonce")
    temperature = next(o for o in infonce["options"] if o["name"] == "temperature")
    assert temperature["default"] == 0.05 and temperature["range"] == "> 0, <= 10"
    assert infonce["strategies"] == list(LOSSES["infonce"].strategies) and "hard_negative" in infonce["strategies"]
    strategies = json.loads(runner.invoke(app, ["losses", "--strategies", "--json"]).output)
    assert [entry["name"] for entry in strategies] == list(STRATEGIES)
    table = runner.invoke(app, ["losses"])
    assert table.exit_code == 0 and "relaxed_hard_negative" in table.output


def test_docs_reference_is_up_to_date():
    from qaembed.losses.catalog import losses_markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "losses.md").read_text(encoding="utf-8")
    assert losses_markdown() in docs, (
        "docs/losses.md is stale: keep its hand-written header and replace everything after the "
        "'generated' comment with the output of `qaembed losses --markdown`"
    )
