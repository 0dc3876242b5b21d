"""``qaembed eval`` on a tiny prepared dataset with the default model, and its error exits."""

from __future__ import annotations

import json
import subprocess
import sys

from eval_helpers import make_records
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.dataset import write_jsonl_records
from qaembed.evaluate import EvalResult
from qaembed.records import Answer, QARecord


def _dataset(tmp_path):
    test = [
        QARecord(id="s:1", title="How do I brew a stout?", answers=[
            Answer(id="s:11", text="Use roasted barley and a clean ale yeast.", score=7),
            Answer(id="s:12", text="Buy one at the shop.", score=-1)]),
        QARecord(id="s:2", title="Which glass suits a pilsner?", answers=[
            Answer(id="s:21", text="A tall, slender pilsner glass keeps the head.", score=4),
            Answer(id="s:22", text="Any glass works.", score=1)]),
        QARecord(id="s:3", title="Does coffee go stale?", answers=[
            Answer(id="s:31", text="Roasted beans lose aroma within weeks of roasting.", score=2)]),
    ]
    write_jsonl_records(tmp_path / "test.jsonl", test)
    write_jsonl_records(tmp_path / "train.jsonl", make_records([[1, 2], [3]], prefix="train"))
    return tmp_path


def test_eval_json_with_distractors_saves_per_question_results(tmp_path):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["eval", "--data", str(data), "--json", "--distractors", "train", "--out", str(out), "--batch-size", "4",
              "--max-seq-length", "64"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # progress bars go to stderr
    assert {key.split("/")[0] for key in payload["summary"]} == {"retrieval", "within", "in_batch"}
    assert payload["counts"]["retrieval/documents"] == 5 + 3 and payload["counts"]["within/questions"] == 2
    saved = EvalResult.load(out)
    assert saved.summary == payload["summary"]
    assert list(saved.per_question.index) == ["s:1", "s:2", "s:3"]
    assert saved.info["max_seq_length"] == 64 and "environment" in saved.info


def test_eval_prints_tables_for_all_sections(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--data", str(_dataset(tmp_path)), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    for title in ("Full-corpus retrieval", "Within-question ranking", "In-batch", "ndcg@10", "kendall_tau"):
        assert title in result.output


def test_eval_errors_exit_2_with_the_file(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("")
    run = subprocess.run(
        [sys.executable, "-m", "qaembed", "eval", "--data", f"beir:{tmp_path}"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "corpus.jsonl: the corpus is empty" in run.stderr
