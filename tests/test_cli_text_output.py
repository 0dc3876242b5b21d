"""What the commands print is text: user paths and names that look like rich markup (``[bold]``, ``[/x]``) are
printed as they are, never styled away or a markup error (a traceback after the work was done)."""

from __future__ import annotations

import shutil

from rich.console import Console

from qaembed.data.dataset import write_jsonl_records
from qaembed.data.stats import stats_table
from qaembed.records import Answer, QARecord


def test_the_eval_command_prints_paths_that_look_like_markup(tiny_model_dir, tmp_path, monkeypatch, qaembed_cli):
    model = tmp_path / "m[" / "x]" / "model[bold]"
    shutil.copytree(tiny_model_dir, model)
    data = tmp_path / "data[/x]"  # not a tag once escaped
    records = [QARecord(id=f"s:{i}", title=f"question {i} about brewing?", answers=[
        Answer(id=f"s:{i}1", text=f"answer one to {i}", score=3), Answer(id=f"s:{i}2", text=f"answer two {i}", score=1)])
        for i in range(6)]
    for split in ("train", "dev", "test"):
        write_jsonl_records(data / f"{split}.jsonl", records)
    monkeypatch.setenv("COLUMNS", "400")
    result = qaembed_cli("eval", "--model", model, "--data", data, "--max-seq-length", "32")
    assert result.exit_code == 0, result.stderr
    assert f"{model} on {data} (test)" in result.stdout


def test_the_stats_table_prints_source_names_as_they_are():
    stats = {"sources": {"[bold]site": {"stats": {"questions": 3}}}, "splits": {"train": {"questions": 3}}}
    console = Console(width=300, record=True)
    console.print(stats_table(stats))
    assert "[bold]site" in console.export_text()
