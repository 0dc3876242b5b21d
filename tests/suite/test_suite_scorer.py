"""Grid entries with a scorer: config, hashes, the test evaluation's scorer and the report's grid table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_fakes import write_tiny_dataset

from qaembed.errors import ConfigError
from qaembed.suite.grid import GridEntry, SuiteConfig, build_suite_config, expand_runs
from qaembed.suite.runner import train_config_for

MAXSIM = {"name": "maxsim", "projection_dim": 16, "query_length": 12}
COMBINED = {"name": "combined", "projection_dim": 16, "weights": {"pooled": 0.3, "maxsim": 0.7},
            "maxsim_loss": {"name": "pair_bce"}}


def _entries():
    return [GridEntry(name="infonce", loss="infonce", strategy="hard_negative"),
            GridEntry(name="infonce_maxsim", loss="infonce", strategy="hard_negative", scorer=MAXSIM),
            GridEntry(name="coltrast", loss="infonce", strategy="hard_negative", scorer=COMBINED)]


def test_entry_scorer_from_yaml_and_its_test_scorer(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("entries:\n  - {name: a, loss: infonce, strategy: hard_negative, scorer: maxsim}\n"
                    "  - {name: b, loss: infonce, strategy: hard_negative, scorer: {name: combined, "
                    "weights: {pooled: 0.3, maxsim: 0.7}}, eval_scorer: cosine}\n")
    config = build_suite_config(file=path)
    assert [e.scorer.name for e in config.entries] == ["maxsim", "combined"]
    assert [e.test_scorer for e in config.entries] == ["maxsim", "cosine"]
    assert [e.test_scorer for e in _entries()] == ["cosine", "maxsim", "maxsim"]
    path.write_text("entries:\n  - {name: a, loss: infonce, strategy: hard_negative, scorer: {name: combined}}\n")
    with pytest.raises(ConfigError, match=r"entries.0.scorer.*weights"):
        build_suite_config(file=path)
    path.write_text("entries:\n  - {name: c, loss: infonce, strategy: hard_negative, scorer: {name: combined, "
                    "weights: {pooled: 0.3, maxsim: 0.7}, maxsim_loss: {name: pair_bce, options: {temperature: -1}}}}\n")
    with pytest.raises(ConfigError, match=r"entries\.0\.scorer\.maxsim_loss\.options\.temperature: Input should be "
                                          r"greater than 0 \(got -1\)"):
        build_suite_config(file=path)
    with pytest.raises(ValueError, match="entry 'd': scorer.maxsim_loss: loss 'listwise' does not "
                                         "accept batching strategy 'triplet'"):  # when the entry is made
        GridEntry(name="d", loss="infonce", strategy="triplet", scorer={**COMBINED, "maxsim_loss": {"name": "listwise"}})
    path.write_text("entries:\n  - {name: e, loss: infonce, loss_options: {temp: 1}, strategy: hard_negative}\n")
    with pytest.raises(ConfigError, match=r"entries\.0: .*entry 'e': loss_options\.temp: unknown key"):
        build_suite_config(file=path)


def test_scorer_enters_the_hash_but_default_entries_keep_theirs():
    plain = GridEntry(name="infonce", loss="infonce", strategy="hard_negative")
    # the payload of an entry without scorer is what it was before entries had one
    assert plain.hash_payload() == {"name": "infonce", "loss": "infonce", "loss_options": {},
                                    "strategy": "hard_negative", "strategy_options": {}}
    variants = [plain, plain.model_copy(update={"scorer": GridEntry(name="x", loss="infonce", strategy="hard_negative",
                                                                     scorer=MAXSIM).scorer}),
                plain.model_copy(update={"eval_scorer": "maxsim"})]
    hashes = [expand_runs(SuiteConfig(entries=[v], baseline=False), "d")[0].config_hash for v in variants]
    assert len(set(hashes)) == 3


def test_train_config_of_an_entry_carries_its_scorer(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "prepared")
    config = SuiteConfig(data=str(dataset), entries=_entries(), baseline=False)
    runs = expand_runs(config, "d")
    scorers = [train_config_for(spec, config, dataset).scorer for spec in runs]
    assert [s.name for s in scorers] == ["cosine", "maxsim", "combined"]
    assert scorers[1].query_length == 12 and scorers[2].maxsim_loss.name == "pair_bce"


def test_suite_evaluates_each_entry_with_its_scorer_and_reports_it(tiny_model_dir, tmp_path: Path):
    from qaembed.report import build_report
    from qaembed.suite.runner import run_suite

    dataset = write_tiny_dataset(tmp_path / "prepared")
    config = SuiteConfig(model=str(tiny_model_dir), data=str(dataset), budget=1, budget_unit="steps", batch_size=4,
                         max_seq_length=32, eval_every=None, train_questions=8, dev_questions=4, test_questions=10,
                         distractor_questions=5, baseline=False, entries=_entries())
    out = tmp_path / "suite"
    result = run_suite(config, out)
    assert [s.status for s in result.statuses] == ["ok"] * 3, [s.error for s in result.statuses]
    scorers = {}
    for name in ("infonce", "infonce_maxsim", "coltrast"):
        info = json.loads((out / "runs" / name / "seed0" / "eval" / "summary.json").read_text())["info"]
        scorers[name] = info["config"]["scorer"], info["config"]["query_length"]
    assert scorers == {"infonce": ("cosine", None), "infonce_maxsim": ("maxsim", 12), "coltrast": ("maxsim", None)}
    markdown = build_report(out).markdown.read_text()
    assert "scorer (train / test)" in markdown
    assert "| infonce_maxsim | infonce | defaults | hard_negative | maxsim |" in markdown
    assert "| coltrast | infonce | defaults | hard_negative | combined 0.3/0.7 / test maxsim |" in markdown
