"""The suite on chunked passages (``qaembed data chunk`` → ``OUT/records``): every passage is in the corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qaembed.data.dataset import CORPUS_FILE, read_corpus
from qaembed.report import build_report
from qaembed.suite.dataset import resolve_suite_data
from qaembed.suite.grid import GridEntry, SuiteConfig
from qaembed.suite.runner import extra_documents, read_status, run_suite


def chunk_projects(tmp_path: Path, model: Path, monkeypatch) -> Path:
    from qaembed.cli import main

    projects = [{"project_id": f"p{i}", "readme_content": f"Project {i} brews beer with hops. It needs {i} kg of malt. "
                 f"Version {i}.0 runs on Linux. Bottle it after {i} weeks.",
                 "qa_pairs": [{"question": f"What does project {i} brew?", "answer": "Beer."},
                              {"question": f"How much malt for project {i}?", "answer": f"{i} kg."}]} for i in range(24)]
    projects += [{"project_id": f"lonely{i}", "readme_content": f"Nobody asks about lonely {i}. It is alone.",
                  "qa_pairs": []} for i in range(3)]
    path = tmp_path / "projects.json"
    path.write_text(json.dumps({"projects": projects}))
    out = tmp_path / "chunks"
    monkeypatch.setattr(sys, "argv", ["qaembed", "data", "chunk", str(path), "--out", str(out), "--model", str(model),
                                      "--threshold", "1.0", "--positive-threshold", "-1", "--split", "0.5,0.2,0.3"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out / "records"


def test_suite_on_passages_ranks_against_every_chunk(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    records = chunk_projects(tmp_path, tiny_model_dir, monkeypatch)
    chunks = (records.parent / "chunks.jsonl").read_text().splitlines()
    lonely = read_corpus(records)
    assert len(lonely) == 6  # two sentences of each of the three documents nobody asks about
    config = SuiteConfig(data=str(records), model=str(tiny_model_dir), seeds=[0], budget=2, budget_unit="steps",
                         batch_size=4, max_seq_length=32, eval_every=None, dev_questions=4, map_points=None,
                         entries=[GridEntry(name="infonce", loss="infonce", strategy="infonce")])
    assert len(extra_documents(config, records)) == 6
    assert extra_documents(config.model_copy(update={"distractor_questions": 5}), records) == []
    out = tmp_path / "suite"
    result = run_suite(config, out)
    assert [s.status for s in result.statuses] == ["ok", "ok"], [s.error for s in result.statuses]
    status = read_status(out / "runs" / "infonce" / "seed0")
    assert status.corpus_documents == len(chunks) and status.extra_documents == 6
    assert "6 documents no question owns" in build_report(out).markdown.read_text()


def test_the_corpus_file_is_part_of_the_data_hash(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    records = chunk_projects(tmp_path, tiny_model_dir, monkeypatch)
    before = resolve_suite_data(str(records), tmp_path / "suite", progress=False).hash
    (records / CORPUS_FILE).write_text((records / CORPUS_FILE).read_text().splitlines()[0] + "\n")
    assert resolve_suite_data(str(records), tmp_path / "suite", progress=False).hash != before
