"""`qaembed data` commands: prepare, stats, download (lookup and offline error; no network)."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data import download as download_module
from qaembed.errors import QaembedError

FIXTURES = Path(__file__).parent / "fixtures"
SE_SITE = FIXTURES / "stackexchange" / "example.stackexchange.com"
runner = CliRunner()


def test_prepare_then_stats_print_the_table(tmp_path):
    out = tmp_path / "ds"
    result = runner.invoke(app, ["data", "prepare", str(SE_SITE), str(FIXTURES / "ranked_qa.json"), "--out", str(out),
                                 "--seed", "3", "--min-answers", "2"])
    assert result.exit_code == 0, result.output
    assert "example.stackexchange.com" in result.output and "ranked_qa.json" in result.output
    assert "fewer than 2 answers left out: 2" in result.output
    assert (out / "train.jsonl").is_file() and (out / "manifest.json").is_file()
    stats = runner.invoke(app, ["data", "stats", str(out)])
    assert stats.exit_code == 0, stats.output
    assert "total (all sources)" in stats.output and "train" in stats.output


def test_bad_input_exits_2_with_file_line_and_field(tmp_path):
    site = tmp_path / "bad.stackexchange.com"
    site.mkdir()
    (site / "Posts.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
                                    '  <row Id="1" PostTypeId="1" Score="x" Title="T" Body="b" />\n</posts>\n')
    proc = subprocess.run([sys.executable, "-m", "qaembed", "data", "prepare", str(site), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{site / 'Posts.xml'}:3, field 'Score': not an integer: 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr
    skipped = runner.invoke(app, ["data", "prepare", str(site), str(SE_SITE), "--skip-bad", "--out", str(tmp_path / "o")])
    assert skipped.exit_code == 0, skipped.output
    assert "bad.stackexchange.com: skipped bad records: empty_source=1, non_numeric=1" in skipped.output


def test_download_finds_a_site_on_the_search_path(tmp_path, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    result = runner.invoke(app, ["data", "download", "example.stackexchange.com", "--mirror", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(SE_SITE)


def test_download_failure_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(download_module, "find_extractor", lambda: "py7zr")
    with pytest.raises(QaembedError) as info:
        download_module.download_stackexchange_site("missing.stackexchange.com", mirror="http://127.0.0.1:9",
                                                    timeout_s=5)
    message = str(info.value)
    assert "could not download http://127.0.0.1:9/missing.stackexchange.com.7z" in message
    assert str(tmp_path / "cache" / "data" / "stackexchange" / "missing.stackexchange.com") in message
    assert "QAEMBED_DATA_DIR" in message


def test_download_without_an_extractor_says_how_to_install_one(tmp_path, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "py7zr", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QaembedError, match="pip install py7zr"):
        download_module.download_stackexchange_site("missing.stackexchange.com", mirror="http://127.0.0.1:9")


def test_prepare_without_sources_uses_the_sites_on_the_data_search_path(tmp_path, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(FIXTURES))
    result = runner.invoke(app, ["data", "prepare", "--out", str(tmp_path / "ds"), "--min-answers", "0"])
    assert result.exit_code == 0, result.output
    assert "example.stackexchange.com" in result.output
    assert '"path": "' + str(SE_SITE) in (tmp_path / "ds" / "manifest.json").read_text()


def test_empty_splits_are_warned_about_and_an_all_skipped_source_says_what_was_skipped(tmp_path, shared_data,
                                                                                       qaembed_cli):
    site = tmp_path / "tiny.stackexchange.com"
    site.mkdir()
    (site / "Posts.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
                                    '  <row Id="1" PostTypeId="1" Score="1" Title="T" Body="b" />\n'
                                    '  <row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="an answer" />\n</posts>\n')
    result = runner.invoke(app, ["data", "prepare", str(site), "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    assert "warning: the " in result.stderr and "splits are empty (1 questions in all" in result.stderr
    coffee = shared_data / "stackexchange" / "coffee.stackexchange.com"
    assert "warning" not in runner.invoke(app, ["data", "prepare", str(coffee), "--out", str(tmp_path / "o")]).stderr
    (site / "Posts.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
                                    '  <row Id="1" PostTypeId="1" Score="x" Title="T" Body="b" />\n</posts>\n')
    skipped = qaembed_cli("data", "prepare", site, "--skip-bad", "--out", tmp_path / "none")
    assert skipped.exit_code == 2
    assert "no records left to write (after --min-answers 1; skipped as bad: empty_source: 1, non_numeric: 1)" in (
        " ".join(skipped.stderr.split()))


def test_a_site_folder_not_named_after_its_host_is_warned_about(tmp_path, qaembed_cli):
    for name, warned in (("coffee", True), ("coffee.stackexchange.com", False)):
        site = tmp_path / name
        site.mkdir()
        (site / "Posts.xml").write_bytes((SE_SITE / "Posts.xml").read_bytes())
        result = qaembed_cli("data", "prepare", site, "--out", tmp_path / f"out-{name}")
        assert result.exit_code == 0, result.stderr
        assert ("the site name 'coffee' (the folder's name) is not a host name" in result.stderr) == warned


def test_a_mined_dataset_prepared_again_keeps_no_negative_of_a_question_outside_train(tmp_path, qaembed_cli):
    """Split again, a mined record's negatives (other train questions' answers) may be answers of dev or test
    questions: those are dropped from train records, counted and warned about; the others are kept."""
    import json

    lines = []
    for i in range(60):
        record = {"id": f"s:{i}", "title": f"question {i}?", "answers": [{"id": f"a{i}", "text": f"answer {i}",
                                                                           "score": 1}]}
        if i % 2 == 0:
            record["negatives"] = [{"id": f"a{j}", "text": f"answer {j}", "question_id": f"s:{j}",
                                    "similarity": 0.5, "rank": rank} for rank, j in enumerate((i + 1, i + 3))]
        lines.append(json.dumps(record))
    mined = tmp_path / "train.jsonl"
    mined.write_text("\n".join(lines) + "\n")
    result = qaembed_cli("data", "prepare", mined, "--out", tmp_path / "again", "--seed", "5")
    assert result.exit_code == 0, result.stderr
    splits = {split: [json.loads(line) for line in (tmp_path / "again" / f"{split}.jsonl").read_text().splitlines()]
              for split in ("train", "dev", "test")}
    train_ids = {record["id"] for record in splits["train"]}
    assert 0 < len(train_ids) < 60
    expected_dropped = sum(1 for i in range(0, 60, 2) if f"s:{i}" in train_ids
                           for j in (i + 1, i + 3) if f"s:{j}" not in train_ids)
    assert expected_dropped > 0
    kept = [(record["id"], negative["question_id"]) for record in splits["train"]
            for negative in record.get("negatives", [])]
    assert kept and all(owner in train_ids for _, owner in kept)  # none left that is not a train question's answer
    assert len(kept) + expected_dropped == 2 * sum(1 for i in range(0, 60, 2) if f"s:{i}" in train_ids)
    evaluated = [record for split in ("dev", "test") for record in splits[split] if int(record["id"][2:]) % 2 == 0]
    assert evaluated and all(len(record["negatives"]) == 2 for record in evaluated)  # not trained on: as they were
    assert f"warning: 30 records carry mined negatives (a mined dataset prepared again); {expected_dropped} of" \
        in result.stderr
    notes = json.loads((tmp_path / "again" / "stats.json").read_text())["sources"]["train.jsonl"]["notes"]
    assert notes == {"records_with_mined_negatives": 30, "mined_negatives_dropped": expected_dropped}
    # prepared again with the same seed (the same split), every negative stays
    same = qaembed_cli("data", "prepare", *(tmp_path / "again" / f"{s}.jsonl" for s in ("train", "dev", "test")),
                       "--out", tmp_path / "same", "--seed", "5")
    assert same.exit_code == 0, same.stderr
    assert (tmp_path / "same" / "train.jsonl").read_bytes() == (tmp_path / "again" / "train.jsonl").read_bytes()
    assert "were dropped" not in same.stderr
