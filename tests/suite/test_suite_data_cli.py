"""Suite data preparation and reuse, and the ``qaembed suite`` command line (no model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from suite_fakes import FakeRun, tiny_config
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.dataset import read_split, write_jsonl_records
from qaembed.suite.dataset import REQUEST_FILE, resolve_suite_data
from qaembed.suite.runner import run_suite


def test_sources_are_prepared_once_then_reused(tiny_dataset: Path, tmp_path: Path):
    source = tmp_path / "questions.jsonl"
    write_jsonl_records(source, read_split(tiny_dataset, "test")[:60])
    out = tmp_path / "suite"
    first = resolve_suite_data(str(source), out, progress=False)
    assert first.dataset_dir == out / "data" and sum(first.counts.values()) == 60
    request = out / "data" / REQUEST_FILE
    written = (out / "data" / "train.jsonl").stat().st_mtime_ns, request.stat().st_mtime_ns
    second = resolve_suite_data(str(source), out, progress=False)
    assert second.hash == first.hash
    assert ((out / "data" / "train.jsonl").stat().st_mtime_ns, request.stat().st_mtime_ns) == written
    # a damaged split no longer matches its manifest: prepared again
    (out / "data" / "dev.jsonl").write_text("")
    third = resolve_suite_data(str(source), out, progress=False)
    assert third.hash == first.hash and third.counts == first.counts


def test_prepared_folder_is_used_in_place(tiny_dataset: Path, tmp_path: Path):
    data = resolve_suite_data(str(tiny_dataset), tmp_path / "suite")
    assert data.dataset_dir == tiny_dataset and data.counts == {"train": 40, "dev": 10, "test": 120}
    assert not (tmp_path / "suite" / "data").exists()


def test_report_subcommand_and_report_only_flag(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    runner = CliRunner()
    result = runner.invoke(app, ["suite", "report", str(out)])
    assert result.exit_code == 0, result.output
    assert "infonce" in result.output and "beat it significantly" in result.output
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    (out / "report.md").unlink()
    result = runner.invoke(app, ["suite", "--report-only", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file()


def test_a_suite_with_failed_runs_writes_its_report_and_exits_1(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    import qaembed.suite.runner as runner_module

    real = runner_module.run_suite
    fake = FakeRun(fail={"infonce/seed0"})
    monkeypatch.setattr(runner_module, "run_suite", lambda config, out, **kwargs: real(
        tiny_config(tiny_dataset), out, **{**kwargs, "run_fn": fake}))
    out = tmp_path / "suite"
    result = CliRunner().invoke(app, ["suite", "--data", str(tiny_dataset), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "1 run(s) failed" in result.output and "infonce/seed0" in result.output
    assert (out / "report.md").is_file()  # what finished is reported
    fake.fail.clear()
    again = CliRunner().invoke(app, ["suite", "--data", str(tiny_dataset), "--out", str(out)])
    assert again.exit_code == 0, again.output  # the retry redoes only the failed run
    assert [run_id for run_id, _ in fake.calls].count("infonce/seed0") == 2


def test_unknown_loss_name_exits_2_with_the_known_names(tiny_dataset: Path, tmp_path: Path):
    completed = subprocess.run(
        [sys.executable, "-m", "qaembed", "suite", "--losses", "infonce,nope", "--data", str(tiny_dataset),
         "--out", str(tmp_path / "suite")],
        capture_output=True, text=True,
    )
    assert completed.returncode == 2
    assert "unknown entries ['nope']" in completed.stderr and "listwise_in_batch" in completed.stderr


def test_date_split_and_base_model_notes_reach_suite_json_and_report(tmp_path: Path, shared_data: Path):
    import json

    from qaembed.report import build_report
    from qaembed.suite.grid import GridEntry, SuiteConfig

    sites = "beer.stackexchange.com,genai.stackexchange.com"  # genai is entirely newer than the base model
    config = SuiteConfig(data=sites, test_after="2023-06-01", budget=4, budget_unit="steps",
                         entries=[GridEntry(name="infonce", loss="infonce", strategy="hard_negative")])
    out = tmp_path / "suite"
    run_suite(config, out, run_fn=FakeRun())
    test = read_split(out / "data", "test")
    assert test and all(r.provenance.created[:10] >= "2023-06-01" for r in test)
    assert all(r.provenance.created[:10] < "2023-06-01" for r in read_split(out / "data", "train"))
    suite = json.loads((out / "suite.json").read_text())
    assert suite["data"]["split"]["test_after"] == "2023-06-01"
    notes = " ".join(suite["base_model_notes"])
    assert "names Stack Exchange" in notes and "test_after" in notes
    markdown = build_report(out).markdown.read_text()
    assert "date split: test questions created on/after 2023-06-01" in markdown
    assert "names Stack Exchange" in markdown.split("## Main metrics")[0]


def test_suite_cli_rejects_a_bad_budget_unit_and_date(tmp_path: Path):
    for args, field in ((["--budget-unit", "hours"], "budget_unit"), (["--test-after", "yesterday"], "test_after")):
        result = subprocess.run([sys.executable, "-m", "qaembed", "suite", *args, "--out", str(tmp_path / "s")],
                                capture_output=True, text=True)
        assert result.returncode == 2 and field in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "s").exists()


def test_a_suite_folder_whose_path_looks_like_markup_is_printed_as_it_is(tiny_dataset: Path, tmp_path: Path):
    """Paths and names are text: ``[/x]`` in the folder's path is neither dropped nor a markup error (traceback)."""
    out = tmp_path / "a[" / "x]" / "suite[bold]"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    result = CliRunner().invoke(app, ["suite", "report", str(out)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.output
