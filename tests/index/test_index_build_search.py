"""Build, load, search and add with the library and through ``qaembed index build|add`` / ``qaembed search``."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from qaembed.data.dataset import read_split
from qaembed.index import add_to_index, build_index, load_index, read_manifest
from qaembed.provenance import hash_files

SRC_INDEX = Path(__file__).resolve().parents[2] / "src" / "qaembed" / "index"


def _answers(folder: Path) -> list:
    return [a for split in ("train", "dev", "test") for r in read_split(folder, split) for a in r.answers]


def test_search_finds_each_document_by_its_own_text_at_rank_1(built_index, qa_data):
    index = load_index(built_index)
    answers = _answers(qa_data)
    results = index.search([a.text for a in answers], k=3)
    assert [r.hits[0].id for r in results] == [a.id for a in answers]
    assert all(r.hits[0].score == pytest.approx(1.0, abs=1e-4) for r in results)
    assert all([h.rank for h in r.hits] == [1, 2, 3] for r in results)
    assert all(r.hits[0].score >= r.hits[1].score >= r.hits[2].score for r in results)


def test_results_carry_votes_links_and_attribution(built_index, qa_data):
    index = load_index(built_index)
    record = read_split(qa_data, "dev")[2]
    answer = record.answers[1]
    [result] = index.search([answer.text], k=1)
    hit = result.hits[0]
    assert (hit.id, hit.text, hit.votes, hit.accepted) == (answer.id, answer.text, answer.score, False)
    assert (hit.question_id, hit.question_title, hit.split) == (record.id, record.title, "dev")
    assert hit.url == answer.provenance.url and hit.question_url == record.provenance.url
    assert (hit.author, hit.author_url) == (answer.provenance.author.name, answer.provenance.author.url)
    assert (hit.license, hit.site, hit.created) == ("CC BY-SA 4.0", "beer.stackexchange.com", "2019-03-01T10:00:00")
    assert json.loads(json.dumps(result.to_dict()))["hits"][0]["url"] == hit.url


def test_manifest_records_model_data_and_settings(built_index, qa_data, tiny_model_dir):
    manifest = read_manifest(built_index)
    assert manifest.count == 60 and manifest.dimension == 32 and manifest.normalized
    assert manifest.index.kind == "flat" and manifest.index.requested == "auto" and manifest.index.flat_max == 250_000
    assert manifest.model.reference == str(tiny_model_dir.resolve())
    assert manifest.model.files_hash == hash_files([tiny_model_dir / "model.safetensors"])
    assert len(manifest.model.weights_hash) == 16
    [source] = manifest.data
    assert source.splits == ["train", "dev", "test"] and source.documents == 60
    assert source.hashes["test"] == hash_files([qa_data / "test.jsonl"])
    assert manifest.qaembed_version and manifest.built_at and {"git", "versions"} <= set(manifest.environment)
    assert set(manifest.files) == {"vectors.faiss", "documents.arrow"}


def test_loading_memory_maps_vectors_and_documents(built_index):
    before = pa.total_allocated_bytes()
    index = load_index(built_index)
    assert index.memory_mapped == index.info()["memory_mapped"] == {"vectors": True, "documents": True}
    # zero-copy: the documents' buffers live in the file's mapping, not in Arrow's allocator
    assert pa.total_allocated_bytes() - before < 4096
    assert index.documents.num_rows == len(index) == 60


def test_flat_and_hnsw_agree_on_top_1(tiny_model_dir, qa_data, tmp_path):
    model = str(tiny_model_dir)
    build_index(model, qa_data, tmp_path / "flat", kind="flat", progress=False)
    build_index(model, qa_data, tmp_path / "hnsw", kind="hnsw", progress=False)
    flat, hnsw = load_index(tmp_path / "flat"), load_index(tmp_path / "hnsw")
    assert hnsw.manifest.index.kind == "hnsw"
    queries = [r.title for split in ("train", "test") for r in read_split(qa_data, split)]
    top_flat = [r.hits[0].id for r in flat.search(queries, k=5)]
    top_hnsw = [r.hits[0].id for r in hnsw.search(queries, k=5)]
    assert top_flat == top_hnsw


def test_auto_threshold_ivf_and_adding_to_approximate_indexes(tiny_model_dir, qa_data, more_data, tmp_path):
    manifest = build_index(str(tiny_model_dir), qa_data, tmp_path / "auto", flat_max=10, progress=False)
    assert (manifest.index.kind, manifest.index.requested, manifest.index.flat_max) == ("hnsw", "auto", 10)
    manifest = build_index(str(tiny_model_dir), qa_data, tmp_path / "ivf", kind="ivf", progress=False)
    assert manifest.index.kind == "ivf" and manifest.index.nlist == 1
    index = load_index(tmp_path / "ivf")
    answers = _answers(qa_data)[:5]
    assert [r.hits[0].id for r in index.search([a.text for a in answers], k=2)] == [a.id for a in answers]
    new = _answers(more_data)[:4]
    for name, kind in (("auto", "hnsw"), ("ivf", "ivf")):
        grown = add_to_index(tmp_path / name, more_data, progress=False)
        assert (grown.count, grown.index.kind) == (72, kind)
        index = load_index(tmp_path / name)
        assert [r.hits[0].id for r in index.search([a.text for a in new], k=3)] == [a.id for a in new]


def test_add_appends_and_search_finds_the_new_documents(built_index, more_data, tmp_path):
    folder = tmp_path / "grown"
    shutil.copytree(built_index, folder)
    before = read_manifest(folder)
    manifest = add_to_index(folder, more_data, progress=False)
    assert manifest.count == before.count + 12 and manifest.model == before.model
    assert [s.operation for s in manifest.data] == ["build", "add"] and manifest.data[1].first_row == 60
    index = load_index(folder)
    new = _answers(more_data)
    assert [r.hits[0].id for r in index.search([a.text for a in new], k=1)] == [a.id for a in new]
    old = load_index(built_index)
    some_old = old.documents.column("text").to_pylist()[:5]
    assert [r.hits[0].id for r in index.search(some_old, k=1)] == old.documents.column("id").to_pylist()[:5]
    assert index.documents.column("id").to_pylist()[:60] == load_index(built_index).documents.column("id").to_pylist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".grown")]  # no temp folders left


def test_concurrent_searches_match_sequential_ones(built_index, qa_data):
    index = load_index(built_index)
    queries = [a.text for a in _answers(qa_data)[:20]]
    expected = [index.search([q], k=4)[0].to_dict() for q in queries]  # one query per call, as the threads do
    outputs, errors = {}, []

    def worker(n):
        try:
            outputs[n] = [index.search([q], k=4)[0].to_dict() for q in queries]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and all(outputs[n] == expected for n in range(4))


def test_cli_build_search_add_end_to_end(qaembed, tiny_model_dir, qa_data, more_data, tmp_path):
    out = tmp_path / "idx"
    code, stdout, stderr = qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", out,
                                   "--split", "test,dev", "--batch-size", 8)
    assert code == 0, stderr
    assert "40 answers, flat index" in stdout and "encode" in stderr  # progress bar on stderr
    assert read_manifest(out).data[0].splits == ["dev", "test"]

    answer = read_split(qa_data, "test")[0].answers[0]
    code, stdout, stderr = qaembed("search", "--index", out, answer.text, "-k", 3)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == f"query: {answer.text}" and lines[1].lstrip().startswith("1. 1.0000  votes")
    assert answer.provenance.url in stdout and "by brewer" in stdout and "CC BY-SA 4.0" in stdout

    code, stdout, stderr = qaembed("search", "--index", out, answer.text, "--json", "-k", 2)
    payload = json.loads(stdout)
    assert code == 0 and payload["k"] == 2 and payload["results"][0]["hits"][0]["id"] == answer.id
    assert set(payload["results"][0]["hits"][0]) >= {"score", "votes", "question_title", "url", "author", "license"}

    new = read_split(more_data, "train")[0].answers[1]
    code, stdout, stderr = qaembed("index", "add", "--index", out, "--data", more_data)
    assert code == 0, stderr
    assert "12 answers added, 52 in all" in stdout
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"query": new.text}) + "\n\n" + json.dumps({"query": answer.text, "id": 2}) + "\n")
    code, stdout, stderr = qaembed("search", "--index", out, "--queries", queries, "--json", "-k", 1)
    assert code == 0, stderr
    assert [r["hits"][0]["id"] for r in json.loads(stdout)["results"]] == [new.id, answer.id]

    text_queries = tmp_path / "queries.txt"
    text_queries.write_text(f"{new.text}\n\n{answer.text}\n")
    code, stdout, _ = qaembed("search", "--index", out, "--queries", text_queries, "--json", "-k", 1)
    assert code == 0 and [r["query"] for r in json.loads(stdout)["results"]] == [new.text, answer.text]


def test_k_above_the_index_size_is_clamped_with_a_note(qaembed, built_index):
    code, stdout, stderr = qaembed("search", "--index", built_index, "hops", "-k", 500, "--json")
    assert code == 0 and json.loads(stdout)["k"] == 60 and len(json.loads(stdout)["results"][0]["hits"]) == 60
    assert "-k 500 is more than the index holds; showing all 60" in stderr


def test_no_pickle_anywhere(built_index, tmp_path):
    for path in built_index.rglob("*"):
        assert path.suffix not in {".pkl", ".pickle", ".npy"}
        if path.is_file() and path.name != "vectors.faiss":
            data = path.read_bytes()
            assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data, path
    forbidden = re.compile(r"import pickle|from pickle|pickle\.|allow_pickle|torch\.(save|load)|np\.(save|load)\b|joblib")
    for source in [*SRC_INDEX.glob("*.py"), SRC_INDEX.parent / "cli" / "index.py"]:
        assert not forbidden.search(source.read_text()), source


@pytest.mark.parametrize("module", ["qaembed.index.documents", "qaembed.index.store", "qaembed.index.build"])
def test_docstring_examples(module):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(module)).failed == 0


def test_index_of_a_chunk_folder(tiny_model_dir, tmp_path):
    """Chunked documents (qaembed data chunk) are indexed chunk by chunk, each pointing to its document."""
    import json as json_module

    from qaembed.chunking import ChunkingConfig, run_chunking
    from qaembed.index import build_index, load_index

    projects = [{"project_id": f"p{i}", "readme_content": f"Project {i} brews beer. It ships hops. Version {i} is out.",
                 "qa_pairs": [{"question": f"What does {i} do?", "answer": "Brews."}]} for i in range(6)]
    source = tmp_path / "projects.json"
    source.write_text(json_module.dumps({"projects": projects}))
    chunks_dir = tmp_path / "chunks"
    run_chunking(source, chunks_dir, model=str(tiny_model_dir), config=ChunkingConfig(threshold=1.0),
                 split="0.5,0.5,0", log=lambda _: None)
    chunks = [json_module.loads(line) for line in (chunks_dir / "chunks.jsonl").read_text().splitlines()]
    manifest = build_index(str(tiny_model_dir), chunks_dir, tmp_path / "index", progress=False)
    assert manifest.count == len(chunks) == 18
    index = load_index(tmp_path / "index")
    [result] = index.search(["What does 3 do?"], k=18)
    by_id = {chunk["id"]: chunk for chunk in chunks}
    assert {hit.id for hit in result.hits} == set(by_id)
    hit = result.hits[0]
    assert hit.question_id == by_id[hit.id]["document_id"] and hit.text == by_id[hit.id]["text"]
    splits = {row["document_id"]: row["split"] for row in map(json_module.loads, (chunks_dir / "qa.jsonl").read_text().splitlines())}
    only_train = build_index(str(tiny_model_dir), chunks_dir, tmp_path / "train-index", splits=["train"], progress=False)
    assert only_train.count == 3 * sum(split == "train" for split in splits.values())


def test_index_of_a_pair_dataset(tiny_model_dir, tmp_path):
    """A pair dataset's distinct questions are the documents: search finds a question's duplicates."""
    from pathlib import Path as PathType

    from qaembed.data.pairs import prepare_pairs, read_pair_split
    from qaembed.index import build_index, load_index

    fixture = PathType(__file__).resolve().parents[1] / "data" / "fixtures" / "pairs" / "qqp.tsv"
    data = tmp_path / "pairs"
    prepare_pairs([fixture], data, "pairs-qqp", split=(1.0, 0.0, 0.0), progress=False)
    pairs = read_pair_split(data, "train")
    questions = {q.id: q.text for pair in pairs for q in (pair.question1, pair.question2)}
    manifest = build_index(str(tiny_model_dir), data, tmp_path / "index", splits=["train"], progress=False)
    assert manifest.count == len(questions)
    index = load_index(tmp_path / "index")
    some_id, some_text = next(iter(questions.items()))
    [result] = index.search([some_text], k=len(questions))
    assert {hit.id for hit in result.hits} == set(questions)
    top = result.hits[0]
    assert top.id == some_id and top.question_id == some_id and top.text == some_text and top.split == "train"
