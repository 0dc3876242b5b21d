"""The embedded default data: chosen when no data is on the search path, complete, attributed, current."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qaembed import paths
from qaembed.cli import app
from qaembed.data.dataset import SPLITS, read_split
from qaembed.suite.dataset import resolve_suite_data

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
# questions per site in ../shared/data/README.md (computed independently twice), and those with answers
SITE_QUESTIONS = {"beer.stackexchange.com": 663, "coffee.stackexchange.com": 225, "genai.stackexchange.com": 181,
                  "matheducators.stackexchange.com": 397, "quantumcomputing.stackexchange.com": 612}
QUESTIONS_WITH_ANSWERS = 644 + 212 + 142 + 384 + 569


@pytest.fixture()
def fresh_machine(tmp_path, monkeypatch) -> Path:
    """No QAEMBED_DATA_DIR, cwd an empty folder (no ../shared), HOME and the cache empty."""
    monkeypatch.delenv("QAEMBED_DATA_DIR", raising=False)
    for name in ("home", "cache", "cwd"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def test_fresh_machine_uses_the_embedded_sample_for_prepare_and_the_suite(fresh_machine):
    default = paths.default_data_sources()
    assert default.embedded and default.sources == [str(paths.EMBEDDED_SAMPLE)]
    assert default.description == "embedded sample of 5 Stack Exchange sites (2,078 questions; CC BY-SA)"
    assert "--data DIR" in default.notice and "qaembed data download SITE" in default.notice

    data = resolve_suite_data(None, fresh_machine / "suite", progress=False)
    assert data.notice == default.notice and data.description == default.description
    assert sum(data.counts.values()) == QUESTIONS_WITH_ANSWERS  # --min-answers 1
    manifest = json.loads((data.dataset_dir / "manifest.json").read_text())
    assert [s["path"] for s in manifest["sources"]] == [str(paths.EMBEDDED_SAMPLE)]
    stats = json.loads((data.dataset_dir / "stats.json").read_text())
    assert stats["total"]["questions"] == sum(SITE_QUESTIONS.values()) and stats["skipped_bad"] == {}

    result = CliRunner().invoke(app, ["data", "prepare", "--out", str(fresh_machine / "ds")])
    assert result.exit_code == 0, result.output
    assert (f"data: {default.description} — give SOURCES or run `qaembed data download SITE` for your own data"
            in result.output)
    for split in SPLITS:  # the CLI and the suite prepare the same default data identically
        assert (fresh_machine / "ds" / f"{split}.jsonl").read_bytes() == (data.dataset_dir / f"{split}.jsonl").read_bytes()


def test_data_on_the_search_path_comes_before_the_embedded_sample(fresh_machine, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(FIXTURES))
    default = paths.default_data_sources()
    assert not default.embedded
    assert default.sources == [str(FIXTURES / "stackexchange" / "example.stackexchange.com")]
    assert default.description.startswith("1 Stack Exchange site(s) in ") and "example.stackexchange.com" in default.notice
    assert "(from QAEMBED_DATA_DIR)" in default.description  # the message says why this folder was used


def test_the_development_layout_is_named_when_it_is_used(tmp_path, monkeypatch):
    import shutil

    shared = tmp_path / "shared" / "data"
    shutil.copytree(FIXTURES / "stackexchange", shared / "stackexchange")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delenv("QAEMBED_DATA_DIR", raising=False)
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    assert paths.data_search_path()[0] == shared
    default = paths.default_data_sources()
    assert "the development layout ../shared/data beside the current folder" in default.description


def test_a_missing_embedded_sample_is_an_error_not_empty_data(fresh_machine, monkeypatch, qaembed_cli):
    monkeypatch.setattr(paths, "EMBEDDED_SAMPLE", fresh_machine / "gone.jsonl.gz")
    with pytest.raises(FileNotFoundError, match="no Stack Exchange data found.*gone.jsonl.gz is missing too"):
        paths.default_data_sources()
    result = qaembed_cli("data", "prepare", "--out", fresh_machine / "ds")
    assert result.exit_code == 2 and "reinstall qaembed" in result.stderr and result.stderr.startswith("error: ")
    assert not (fresh_machine / "ds").exists()


def test_embedded_sample_holds_every_question_with_attribution():
    per_site: Counter[str] = Counter()
    with gzip.open(paths.EMBEDDED_SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            site = record["id"].rsplit(":", 1)[0]
            per_site[site] += 1
            provenance = record["provenance"]
            assert provenance["url"] == f"https://{site}/questions/{provenance['native_id']}"
            assert provenance["license"].startswith("CC BY-SA ") and provenance["site"] == site
            for answer in record.get("answers", []):
                assert answer["provenance"]["license"].startswith("CC BY-SA ")
                assert answer["provenance"]["url"].startswith(f"https://{site}/a/")
    assert dict(per_site) == SITE_QUESTIONS
    readme = (paths.EMBEDDED_SAMPLE.parent / "README.md").read_text()
    assert "CC BY-SA" in readme and "python scripts/build_default_data.py" in readme and "| **2,078** |" in readme


def test_embedded_sample_matches_a_rebuild_from_the_dumps(shared_data):
    """Fails when the ingestion changed and the shipped file was not rebuilt."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_default_data.py"), "--check",
                           "--data-dir", str(shared_data)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout and "2,078 records" in proc.stdout


def test_embedded_sample_prepares_to_the_same_dataset_as_the_dumps(shared_data, tmp_path):
    sites = [str(shared_data / "stackexchange" / site) for site in SITE_QUESTIONS]
    runner = CliRunner()
    assert runner.invoke(app, ["data", "prepare", *sites, "--out", str(tmp_path / "dumps")]).exit_code == 0
    assert runner.invoke(app, ["data", "prepare", str(paths.EMBEDDED_SAMPLE), "--out", str(tmp_path / "sample")]
                         ).exit_code == 0
    for split in SPLITS:
        assert [r.id for r in read_split(tmp_path / "sample", split)] == [r.id for r in read_split(tmp_path / "dumps", split)]
        assert (tmp_path / "sample" / f"{split}.jsonl").read_bytes() == (tmp_path / "dumps" / f"{split}.jsonl").read_bytes()
