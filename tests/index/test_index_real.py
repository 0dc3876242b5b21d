"""The real model on real data (slow): build an index of a Stack Exchange site with all-MiniLM-L6-v2 and
search it by test questions' titles."""

from __future__ import annotations

import json

import pytest

from qaembed.data.dataset import read_split


@pytest.mark.slow
def test_minilm_index_of_a_real_site_finds_answers_with_attribution(qaembed, shared_data, tmp_path):
    site = shared_data / "stackexchange" / "coffee.stackexchange.com"
    if not site.is_dir():
        pytest.skip(f"{site} not found")
    data, out = tmp_path / "coffee", tmp_path / "index"
    code, _, stderr = qaembed("data", "prepare", site, "--out", data)
    assert code == 0, stderr
    code, stdout, stderr = qaembed("index", "build", "--model", "minilm", "--data", data, "--out", out)
    assert code == 0, stderr
    assert "flat index, dimension 384, model minilm" in stdout

    questions = [r for r in read_split(data, "test") if r.answers]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"query": r.title}) + "\n" for r in questions))
    code, stdout, stderr = qaembed("search", "--index", out, "--queries", queries, "--json", "-k", 10)
    assert code == 0, stderr
    results = json.loads(stdout)["results"]
    found = [any(hit["question_id"] == r.id for hit in result["hits"]) for r, result in zip(questions, results)]
    assert sum(found) / len(found) > 0.5  # zero-shot MiniLM finds an own answer in the top 10 for most titles
    hit = results[0]["hits"][0]
    assert hit["url"].startswith("https://coffee.stackexchange.com/a/") and hit["license"].startswith("CC BY-SA")
    assert hit["author"]
