"""The real run function (train + evaluate with the default model) on a tiny dataset. Slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_fakes import write_tiny_dataset

from qaembed.report import build_report
from qaembed.suite.grid import GridEntry, SuiteConfig, mined_entries
from qaembed.suite.runner import read_status, run_suite


@pytest.mark.slow
def test_real_suite_trains_evaluates_mines_and_reports(tmp_path: Path):
    dataset = write_tiny_dataset(tmp_path / "prepared")
    config = SuiteConfig(
        data=str(dataset), budget=2, budget_unit="steps", batch_size=4, max_seq_length=32, eval_every=1, train_questions=16,
        dev_questions=6, test_questions=20, mine_negatives=True,
        entries=[GridEntry(name="infonce", loss="infonce", strategy="hard_negative"), mined_entries()[0]],
    )
    out = tmp_path / "suite"
    result = run_suite(config, out)
    assert [s.status for s in result.statuses] == ["ok", "ok", "ok"], [s.error for s in result.statuses]
    status = read_status(out / "runs" / "infonce" / "seed0")
    assert 0 <= status.summary["retrieval/ndcg@10"] <= 1 and status.texts_per_s > 0
    assert not (out / "runs" / "infonce" / "seed0" / "train" / "model").exists()  # keep_models=False
    curve = [json.loads(line) for line in (out / "runs" / "infonce" / "seed0" / "train" / "metrics.jsonl").open()]
    assert any("dev/retrieval/ndcg@10" in row for row in curve) and any("loss" in row for row in curve)
    assert (out / "data_mined" / "mining.json").is_file()
    # second invocation: everything is finished
    assert sorted(run_suite(config, out).skipped) == ["baseline", "infonce/seed0", "infonce_mined/seed0"]
    markdown = build_report(out).markdown.read_text()
    assert "| infonce_mined |" in markdown and "| baseline |" in markdown
