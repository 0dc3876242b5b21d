"""Chunking (``qaembed.chunking``, ``qaembed data chunk``): sentence spans, the merge rule against a
hand-written reference, token limits, positives and fallbacks, and every bad input named or counted."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from qaembed.chunking import ChunkingConfig, chunk_documents, merge_sentences, select_positives, split_sentences
from qaembed.chunking.semantic import SentenceTooLong
from qaembed.chunking.sources import Document, QAPair, read_document_folder, read_projects_json, read_qa_file
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.errors import DataError


def reference_merge(embeddings, tokens, threshold, max_tokens):
    """The rule written the plain way: one loop, explicit cosine."""
    chunks, current = [], [0]
    for i in range(1, len(tokens)):
        a, b = embeddings[i - 1], embeddings[i]
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        if cosine >= threshold and sum(tokens[j] for j in current) + tokens[i] <= max_tokens:
            current.append(i)
        else:
            chunks.append(tuple(current))
            current = [i]
    chunks.append(tuple(current))
    return chunks


@pytest.mark.parametrize("seed", range(20))
def test_merge_rule_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    base = rng.normal(size=(3, 8))
    embeddings = base[rng.integers(0, 3, size=n)] + 0.3 * rng.normal(size=(n, 8))  # runs of similar sentences
    tokens = rng.integers(1, 20, size=n).tolist()
    threshold, max_tokens = float(rng.uniform(0.3, 0.95)), int(rng.integers(20, 60))
    got = [chunk.sentences for chunk in merge_sentences(embeddings, tokens, threshold=threshold, max_tokens=max_tokens)]
    assert got == reference_merge(embeddings, tokens, threshold, max_tokens)
    assert [i for chunk in got for i in chunk] == list(range(n))  # every sentence once, in order
    assert all(sum(tokens[i] for i in chunk) <= max_tokens for chunk in got)


def test_overlap_repeats_the_last_sentences_within_the_limit():
    embeddings = np.eye(4)  # all dissimilar: every sentence closes the chunk before
    chunks = merge_sentences(embeddings, [4, 4, 4, 4], threshold=0.7, max_tokens=8, overlap=2)
    assert [c.sentences for c in chunks] == [(0,), (0, 1), (1, 2), (2, 3)]
    assert all(c.tokens <= 8 for c in chunks)


def test_a_sentence_over_the_limit_is_refused():
    with pytest.raises(SentenceTooLong, match="sentence 2 has 9 tokens, more than the chunk size \\(8\\)"):
        merge_sentences(np.eye(3), [2, 9, 2], max_tokens=8)


def test_sentence_spans_point_into_the_original_text():
    text = "  Café naïve 🍺 is e.g. the brewer's drink.  It costs $3.50!\n\n\n1. Heat it.\n2. Drink it.  "
    spans = split_sentences(text)
    pieces = [text[start:end] for start, end in spans]
    assert pieces[0].startswith("Café naïve 🍺 is e.g.") and pieces[1] == "It costs $3.50!"
    assert all(piece == piece.strip() and piece for piece in pieces)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    assert "Heat it." in " ".join(pieces) and pieces[-1].endswith("Drink it.")


def test_paragraphs_are_always_split():
    spans = split_sentences("A title\n\nFirst sentence without a full stop\n \nSecond")
    assert len(spans) == 3


def test_paragraphs_are_split_in_files_with_windows_line_endings():
    text = "A title\r\n\r\nFirst sentence without a full stop\r\n \r\nSecond"
    assert [text[start:end] for start, end in split_sentences(text)] == [
        "A title", "First sentence without a full stop", "Second"]


class FakeEncoder:
    """Embeds by topic word (so similarity is known), counts tokens as words."""

    TOPICS = ("beer", "coffee", "license")

    class _Tokenizer:
        def __call__(self, texts, add_special_tokens=False, truncation=False, verbose=True):
            return {"input_ids": [text.split() for text in texts]}

    tokenizer = _Tokenizer()

    def __init__(self):
        self.encoded: list[str] = []

    def encode(self, texts, **_):
        self.encoded.extend(texts)
        rows = []
        for text in texts:
            row = np.array([text.lower().count(topic) for topic in self.TOPICS], dtype=np.float32) + 0.01
            rows.append(row / np.linalg.norm(row))
        return np.stack(rows)


def test_chunks_keep_document_ids_spans_and_each_sentence_is_encoded_once():
    text = "Beer is brewed. Beer is bottled. Coffee is roasted. Coffee is ground. The license is MIT."
    documents = [Document("a", text, "a.md"), Document("b", "The license is MIT. Beer is brewed.", "b.md")]
    encoder = FakeEncoder()
    chunks, stats = chunk_documents(documents, encoder, ChunkingConfig(max_tokens=50), BadRecordPolicy())
    assert [c.text for c in chunks if c.document_id == "a"] == [
        "Beer is brewed. Beer is bottled.", "Coffee is roasted. Coffee is ground.", "The license is MIT."]
    for chunk in chunks:
        source = text if chunk.document_id == "a" else documents[1].text
        assert source[chunk.start:chunk.end] == chunk.text
    assert sorted(encoder.encoded) == sorted(set(encoder.encoded))  # "The license is MIT." and "Beer is brewed." once
    assert stats["sentences"] == 7 and stats["distinct_sentences"] == 5 and stats["chunks"] == 5


def test_positive_chunk_or_the_answer_fallback_both_counted():
    documents = [Document("a", "Beer is brewed. Beer is bottled. Coffee is roasted. The license is MIT.", "a.md")]
    encoder = FakeEncoder()
    chunks, _ = chunk_documents(documents, encoder, ChunkingConfig(), BadRecordPolicy())
    pairs = [QAPair("1", "How is coffee made?", "Coffee is roasted.", "a"),
             QAPair("2", "What about the weather?", "Sunny today.", "a")]
    rows, stats = select_positives(pairs, chunks, encoder, ChunkingConfig(positive_threshold=0.6))
    assert rows[0]["positive"]["kind"] == "chunk" and rows[0]["positive"]["text"] == "Coffee is roasted."
    assert rows[1]["positive"]["kind"] == "answer" and rows[1]["positive"]["text"] == "Sunny today."
    assert rows[1]["positive"]["similarity"] < 0.6 and rows[1]["positive"]["chunk_id"] is None
    assert stats == {"pairs": 2, "positive_chunk": 1, "answer_fallback": 1}


def test_a_sentence_longer_than_the_chunk_size_names_file_and_line():
    text = "Short one.\n\nBeer beer beer beer beer beer beer beer beer beer."
    document = Document("a", text, "docs/a.md")
    with pytest.raises(DataError, match=r"docs/a.md:3: a sentence has 10 tokens, more than the chunk size --max-tokens 5"):
        chunk_documents([document], FakeEncoder(), ChunkingConfig(max_tokens=5), BadRecordPolicy())
    policy = BadRecordPolicy(skip=True)
    chunks, stats = chunk_documents([document, Document("b", "Beer.", "b.md")], FakeEncoder(), ChunkingConfig(max_tokens=5), policy)
    assert stats["documents_skipped"] == 1 and policy.counts["sentence_too_long"] == 1
    assert [c.document_id for c in chunks] == ["b"]


# --- inputs ---------------------------------------------------------------------------------------

def write_projects(path, projects):
    path.write_text(json.dumps({"projects": projects}), encoding="utf-8")
    return path


def test_projects_json(tmp_path):
    path = write_projects(tmp_path / "p.json", [
        {"project_id": "p1", "readme_content": "# P1\n\nText.", "qa_pairs": [{"question": "Q?", "answer": "A.", "context": "c"}]},
        {"project_id": 7, "readme_content": "Other.", "qa_pairs": []},
    ])
    documents, pairs = read_projects_json(path, BadRecordPolicy())
    assert [d.id for d in documents] == ["p1", "7"]
    assert pairs == [QAPair("p1:0", "Q?", "A.", "p1", "c")]


@pytest.mark.parametrize("project, reason, words", [
    ({"project_id": "p", "readme_content": "   ", "qa_pairs": []}, "empty_document", "projects[0].readme_content"),
    ({"readme_content": "x"}, "missing_field", "projects[0].project_id"),
    ({"project_id": "p", "readme_content": "x", "qa_pairs": [{"question": "", "answer": "a"}]}, "missing_field",
     "projects[0].qa_pairs[0].question"),
    ({"project_id": "p", "readme_content": "", "qa_pairs": [{"question": "q", "answer": "a"}]}, "empty_document", "readme_content"),
    ("not an object", "invalid_record", "projects[0]"),
])
def test_bad_projects_are_named_or_counted(tmp_path, project, reason, words):
    path = write_projects(tmp_path / "p.json", [project, {"project_id": "ok", "readme_content": "Fine."}])
    with pytest.raises(DataError, match=words.replace("[", r"\[").replace("]", r"\]")) as error:
        read_projects_json(path, BadRecordPolicy())
    assert str(path) in str(error.value)
    policy = BadRecordPolicy(skip=True)
    documents, _ = read_projects_json(path, policy)
    assert policy.counts[reason] >= 1 and "ok" in [d.id for d in documents]


def test_projects_json_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"projects": [\n{"project_id": "a",}\n]}')
    with pytest.raises(DataError, match=r"p.json:2"):
        read_projects_json(path, BadRecordPolicy())


def test_document_folder_and_qa_csv(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# A\n\nAbout beer.", encoding="utf-8")
    (docs / "sub" / "b.txt").write_text("About coffee.", encoding="utf-8")
    (docs / "ignored.py").write_text("print('not a document')")
    documents = read_document_folder(docs, BadRecordPolicy())
    assert [d.id for d in documents] == ["a.md", "sub/b.txt"]
    qa = tmp_path / "qa.csv"
    qa.write_text('q,a,doc\n"What is it, really?",Beer.,a.md\nAnd this?,Coffee.,sub/b.txt\n', encoding="utf-8")
    pairs = read_qa_file(qa, BadRecordPolicy(), {"question": "q", "answer": "a", "document": "doc"})
    assert [(p.question, p.document_id, p.where) for p in pairs] == [
        ("What is it, really?", "a.md", f"{qa}:2"), ("And this?", "sub/b.txt", f"{qa}:3")]


@pytest.mark.parametrize("name, content, reason, words", [
    ("empty.md", b"  \n\n ", "empty_document", "empty.md: is empty"),
    ("binary.md", b"PK\x03\x04\x00\x00binary", "binary_file", "binary.md: is a binary file"),
    ("latin1.txt", b"line one\ncaf\xe9 au lait\n", "invalid_encoding", "latin1.txt:2: is not UTF-8 text"),
])
def test_bad_document_files_are_named_or_counted(tmp_path, name, content, reason, words):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / name).write_bytes(content)
    (docs / "good.md").write_text("Good text.")
    with pytest.raises(DataError, match=words):
        read_document_folder(docs, BadRecordPolicy())
    policy = BadRecordPolicy(skip=True)
    assert [d.id for d in read_document_folder(docs, policy)] == ["good.md"]
    assert policy.counts == {reason: 1}


@pytest.mark.parametrize("content, words", [
    ("question,answer\nq,a\n", "lacks column(s) document"),
    ('question,answer,document\n"q,a,x.md\n', "malformed CSV"),
    ("question,answer,document\n", "holds no Q&A rows"),
    ("question,answer,document\n,a,x.md\n", "qa.csv:2, field 'question': is missing or empty"),
    ("question,answer,document\nq,a,\n", "qa.csv:2, field 'document': is missing or empty"),
])
def test_bad_qa_csv(tmp_path, content, words):
    path = tmp_path / "qa.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_qa_file(path, BadRecordPolicy())


@pytest.mark.parametrize("name, content", [
    ("qa.csv", "question,answer,document\nWhat is\u2028it?,Beer\x0cfor sure.,a.md\nAnd this?,Coffee.,a.md\n"),
    ("qa.jsonl", '{"question": "What is\u2028it?", "answer": "Beer\x85for sure.", "document": "a.md"}\n'
                 '{"question": "And this?", "answer": "Coffee.", "document": "a.md"}\n'),
])
def test_qa_rows_are_split_at_line_feeds_only(tmp_path, name, content):
    """U+2028 (line separator), U+0085 or a form feed inside a field is text, not the end of a row (str.splitlines)."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    pairs = read_qa_file(path, BadRecordPolicy())
    assert [(p.question, p.answer, p.where) for p in pairs] == [
        ("What is\u2028it?", "Beer\x85for sure." if name == "qa.jsonl" else "Beer\x0cfor sure.", f"{path}:2" if name == "qa.csv" else f"{path}:1"),
        ("And this?", "Coffee.", f"{path}:3" if name == "qa.csv" else f"{path}:2")]


def test_qa_jsonl_bad_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "q", "answer": "a", "document": "x.md"}\n{oops\n')
    with pytest.raises(DataError, match=r"qa.jsonl:2: invalid JSON"):
        read_qa_file(path, BadRecordPolicy())
    policy = BadRecordPolicy(skip=True)
    assert len(read_qa_file(path, policy)) == 1 and policy.counts == {"invalid_record": 1}
    path.write_text('{"question": "q", "answer": "a", "document": "x.md"}\n{"question": "\\ud800", "answer": "a", '
                    '"document": "x.md"}\n')  # a lone surrogate escape: no tokenizer or writer takes it
    with pytest.raises(DataError, match=r"qa.jsonl:2: invalid JSON"):
        read_qa_file(path, BadRecordPolicy())


# --- the command ----------------------------------------------------------------------------------

def run_cli(monkeypatch, capsys, *args):
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_chunks_and_positives(tmp_path, tiny_model_dir, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "beer.md").write_text("# Beer\n\nBeer is brewed from malt. Hops add bitterness.\n\nStore it cold.")
    (docs / "coffee.md").write_text("Coffee is roasted. Grind it fresh.")
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "How is beer made?", "answer": "From malt.", "document": "beer.md"}\n'
                  '{"question": "Is coffee roasted?", "answer": "Yes.", "document": "coffee.md"}\n')
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "chunk", docs, "--qa", qa, "--out", out,
                                "--model", tiny_model_dir, "--positive-threshold", "-1")
    assert code == 0, err
    assert "2 Q&A pairs: 2 with a positive chunk" in stdout
    chunks = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    texts = {"beer.md": (docs / "beer.md").read_text(), "coffee.md": (docs / "coffee.md").read_text()}
    assert all(texts[c["document_id"]][c["start"]:c["end"]] == c["text"] for c in chunks)
    rows = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    assert [r["positive"]["chunk_id"].split("#")[0] for r in rows] == ["beer.md", "coffee.md"]
    settings = json.loads((out / "chunking.json").read_text())
    assert settings["format"] == "qaembed-chunks" and settings["config"]["threshold"] == 0.7
    # again without --overwrite: refused; with it: replaced
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", docs, "--qa", qa, "--out", out, "--model", tiny_model_dir)
    assert code == 2 and "is not empty" in err


def test_cli_qa_naming_a_missing_document(tmp_path, tiny_model_dir, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Some text.")
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer,document\nq?,a.,a.md\nr?,b.,missing.md\n")
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", docs, "--qa", qa, "--out", tmp_path / "o", "--model", tiny_model_dir)
    assert code == 2 and f"{qa}:3: names document 'missing.md', which does not exist" in err
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "chunk", docs, "--qa", qa, "--out", tmp_path / "o2",
                                "--model", tiny_model_dir, "--skip-bad")
    assert code == 0 and "skipped: 1 missing_document" in stdout
    assert json.loads((tmp_path / "o2" / "stats.json").read_text())["skipped"]["counts"] == {"missing_document": 1}


@pytest.mark.parametrize("args, words", [
    (["--max-tokens", "0"], "--max-tokens"),
    (["--threshold", "2"], "--threshold"),
    (["--qa-columns", "title=q"], "--qa-columns"),
])
def test_cli_bad_options(tmp_path, monkeypatch, capsys, args, words):
    path = write_projects(tmp_path / "p.json", [{"project_id": "p", "readme_content": "x"}])
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", tmp_path / "o", *args)
    assert code == 2 and words in err and "Traceback" not in err


def test_cli_folder_without_qa(tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", tmp_path / "docs", "--out", tmp_path / "o")
    assert code == 2 and "--qa" in err


def write_train_only_dataset(data, records):
    """A prepared dataset folder whose records are all in train (dev and test empty)."""
    from qaembed.data.dataset import write_jsonl_records
    from qaembed.jsonfiles import write_json

    data.mkdir()
    write_jsonl_records(data / "train.jsonl", records)
    for split in ("dev", "test"):
        write_jsonl_records(data / f"{split}.jsonl", [])
    write_json(data / "manifest.json", {"seed": 13})
    return data


def test_prepared_dataset_answers_as_documents(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from qaembed.records import Answer, QARecord

    long_answer = ("Keep the bottle in the fridge. Cold slows oxidation a lot. Light also spoils beer, so keep it dark. "
                   "Drink it within two days of opening. After that it tastes flat.")
    records = [
        QARecord(id="q1", title="How long does opened beer keep?", body="It is a lager.", answers=[
            Answer(id="a1", text=long_answer, score=5), Answer(id="a2", text="Not long.", score=1)]),
        QARecord(id="q2", title="Is short fine?", answers=[Answer(id="a3", text="Yes.", score=2)]),
    ]
    data = write_train_only_dataset(tmp_path / "data", records)
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "chunk", data, "--out", out, "--model", tiny_model_dir,
                                "--min-chars", "50", "--threshold", "1.0", "--positive-threshold", "-1")
    assert code == 0, err
    chunks = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    assert {c["document_id"] for c in chunks} == {"a1"}  # only answers of at least 50 characters
    assert len(chunks) == 5 and all(long_answer[c["start"]:c["end"]] == c["text"] for c in chunks)
    [row] = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    assert row["id"] == "q1" and row["document_id"] == "a1" and row["split"] == "train" and row["answer"] == ""
    assert row["question"] == "How long does opened beer keep?\n\nIt is a lager."
    assert row["positive"]["kind"] == "chunk" and row["positive"]["chunk_id"].startswith("a1#")


def test_beir_layout_split_by_document_and_evaluable(tmp_path, tiny_model_dir, monkeypatch, capsys):
    projects = [{"project_id": f"p{i}", "readme_content": f"Project {i} brews beer. It uses hops. Version {i}.0 is out.",
                 "qa_pairs": [{"question": f"What does project {i} do?", "answer": "Brews beer."},
                              {"question": f"Which version of {i}?", "answer": f"{i}.0"}]} for i in range(12)]
    path = write_projects(tmp_path / "p.json", projects)
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", out, "--model", tiny_model_dir,
                                "--positive-threshold", "0.99", "--split", "0.5,0.25,0.25")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    split_of_document = {}
    for row in rows:  # every question of a document lands in that document's split
        assert split_of_document.setdefault(row["document_id"], row["split"]) == row["split"]
    assert set(split_of_document.values()) == {"train", "dev", "test"}
    corpus = [json.loads(line) for line in (out / "beir" / "corpus.jsonl").read_text().splitlines()]
    chunk_ids = {json.loads(line)["id"] for line in (out / "chunks.jsonl").read_text().splitlines()}
    assert chunk_ids <= {doc["_id"] for doc in corpus}  # every chunk of every document is retrievable
    fallbacks = [row for row in rows if row["positive"]["kind"] == "answer"]
    assert {f"answer:{row['id']}" for row in fallbacks} == {doc["_id"] for doc in corpus} - chunk_ids
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["queries_per_split"].values()) == len(rows) == 24
    assert stats["positive_chunk"] + stats["answer_fallback"] == 24
    code, stdout, err = run_cli(monkeypatch, capsys, "eval", "--model", tiny_model_dir, "--data", f"beir:{out / 'beir'}",
                                "--split", "test", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["counts"]["retrieval/documents"] == len(corpus)
    assert summary["counts"]["retrieval/questions"] == stats["queries_per_split"]["test"]
    assert 0 <= summary["summary"]["retrieval/ndcg@10"] <= 1


def test_document_targets_judge_every_chunk_of_the_document(tmp_path, tiny_model_dir, monkeypatch, capsys):
    path = write_projects(tmp_path / "p.json", [
        {"project_id": "p", "readme_content": "Beer is brewed. Coffee is roasted. Tea is steeped.",
         "qa_pairs": [{"question": "What is brewed?", "answer": "Beer."}]}])
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", out, "--model", tiny_model_dir,
                           "--threshold", "1.0", "--targets", "document", "--split", "0,0,1")
    assert code == 0, err
    lines = (out / "beir" / "qrels" / "test.tsv").read_text().splitlines()[1:]
    assert lines == ["p:0\tp#0\t1", "p:0\tp#1\t1", "p:0\tp#2\t1"]
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", tmp_path / "o2", "--targets", "all")
    assert code == 2 and "--targets must be best or document" in err


def test_questions_about_a_skipped_document_are_counted_not_lost(tmp_path, tiny_model_dir, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("Good text here.")
    (docs / "binary.md").write_bytes(b"\x00\x01binary")
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer,document\nq1?,a.,good.md\nq2?,b.,binary.md\nq3?,c.,binary.md\n")
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "chunk", docs, "--qa", qa, "--out", out,
                                "--model", tiny_model_dir, "--skip-bad")
    assert code == 0, err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["skipped"]["counts"] == {"binary_file": 1, "missing_document": 2}
    assert stats["pairs"] == 1
    assert "which was skipped" in stats["skipped"]["examples"]["missing_document"][0]


def test_a_rerun_encodes_only_new_sentences(tmp_path, tiny_model_dir, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Beer is brewed. Hops add bitterness. Store it cold.")
    qa = tmp_path / "qa.csv"
    qa.write_text("question,answer,document\nq?,a.,a.md\n")
    out = tmp_path / "out"
    args = ["data", "chunk", docs, "--qa", qa, "--out", out, "--model", tiny_model_dir]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    first = json.loads((out / "stats.json").read_text())
    assert first["sentences_encoded"] == 3 and first["sentence_cache"]["size"] == 3
    (docs / "b.md").write_text("Beer is brewed. Coffee is roasted.")
    assert run_cli(monkeypatch, capsys, *args, "--overwrite", "--threshold", "0.1")[0] == 0
    second = json.loads((out / "stats.json").read_text())
    assert second["sentences_encoded"] == 1 and second["sentence_cache"]["hits"] == 3  # distinct known ones; "Coffee is roasted." is new
    assert second["sentence_cache"]["size"] == 4


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_records_are_a_prepared_dataset_of_passages(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """OUT/records: each question's answers are its document's passages, the positive on top; passages of
    documents no question names go to corpus.jsonl; qaembed eval reads it with every chunk in the corpus."""
    from qaembed.data.dataset import read_corpus, read_split
    from qaembed.suite.dataset import is_prepared_dataset

    projects = [{"project_id": f"p{i}", "readme_content": f"Project {i} brews beer. It uses hops. Version {i}.0 is out.",
                 "qa_pairs": [{"question": f"What does project {i} do?", "answer": "Brews beer."},
                              {"question": f"Which version of {i}?", "answer": f"{i}.0"}]} for i in range(8)]
    projects.append({"project_id": "orphan", "readme_content": "Nobody asks about this. It is alone.", "qa_pairs": []})
    path = write_projects(tmp_path / "p.json", projects)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", out, "--model", tiny_model_dir,
                           "--threshold", "1.0", "--positive-threshold", "0.99", "--split", "0.5,0.25,0.25")
    assert code == 0, err
    records_dir = out / "records"
    assert is_prepared_dataset(records_dir)
    rows = {row["id"]: row for row in read_jsonl(out / "qa.jsonl")}
    chunks = read_jsonl(out / "chunks.jsonl")
    chunk_ids_of = {}
    for chunk in chunks:
        chunk_ids_of.setdefault(chunk["document_id"], []).append(chunk["id"])
    seen = 0
    for split in ("train", "dev", "test"):
        for record in read_split(records_dir, split):
            row = rows[record.id]
            seen += 1
            assert row["split"] == split and record.title == row["question"]
            ids = [a.id for a in record.answers]
            positive = row["positive"]
            if positive["kind"] == "chunk":
                assert ids == chunk_ids_of[row["document_id"]]
                assert record.top_answer().id == positive["chunk_id"]
            else:  # the fallback answer text is the top answer; the document's chunks follow, lower
                assert ids == [f"answer:{record.id}", *chunk_ids_of[row["document_id"]]]
                assert record.top_answer().text == row["answer"]
            assert len({a.score for a in record.answers}) == (2 if len(ids) > 1 else 1)  # graded: positive above
    assert seen == len(rows) == 16
    corpus = read_corpus(records_dir)
    assert [d.id for d in corpus] == chunk_ids_of["orphan"] and all(d.document_id == "orphan" for d in corpus)
    manifest = json.loads((records_dir / "manifest.json").read_text())
    assert manifest["corpus"]["documents"] == len(corpus) and manifest["chunking"]["targets"] == "best"
    code, stdout, err = run_cli(monkeypatch, capsys, "eval", "--model", tiny_model_dir, "--data", records_dir,
                                "--split", "test", "--distractors", "train,dev", "--json")
    assert code == 0, err
    counts = json.loads(stdout)["counts"]
    fallbacks = sum(row["positive"]["kind"] == "answer" for row in rows.values())
    assert counts["retrieval/documents"] == len(chunks) + fallbacks  # every chunk of every document, once
    assert counts["retrieval/extra_documents"] == len(corpus)


def test_prepared_answers_grade_passages_by_votes_and_fall_back_to_the_whole_answer(
        tmp_path, tiny_model_dir, monkeypatch, capsys):
    from qaembed.data.dataset import read_split
    from qaembed.records import Answer, QARecord

    top = "Keep the bottle in the fridge. Cold slows oxidation a lot. Light also spoils beer, so keep it dark."
    second = "Drink it within two days of opening. After that it tastes flat and stale."
    records = [QARecord(id="q1", title="How long does opened beer keep?", answers=[
        Answer(id="a1", text=top, score=5), Answer(id="a2", text=second, score=2), Answer(id="a3", text="No.", score=1)])]
    data = write_train_only_dataset(tmp_path / "data", records)
    for threshold, kind in (("-1", "chunk"), ("0.999", "answer")):
        out = tmp_path / f"out{kind}"
        code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", data, "--out", out, "--model", tiny_model_dir,
                               "--min-chars", "50", "--threshold", "1.0", "--positive-threshold", threshold)
        assert code == 0, err
        [row] = read_jsonl(out / "qa.jsonl")
        assert row["positive"]["kind"] == kind and row["related"] == [["a2", 2.0]]
        [record] = read_split(out / "records", "train")
        scores = {a.id: a.score for a in record.answers}
        # the top answer's passages at its votes (the positive one above), the second answer's at its own
        assert all(scores[c] == 2.0 for c in scores if c.startswith("a2#"))
        assert sorted(scores[c] for c in scores if c.startswith("a1#"))[:-1 if kind == "chunk" else None] == [5.0] * (
            3 - (kind == "chunk"))
        assert record.top_answer().score == 6.0
        if kind == "answer":  # no own answer text: the fallback is the whole top answer, not an empty text
            assert row["positive"]["text"] == top and record.top_answer().text == top
        assert not (out / "records" / "corpus.jsonl").read_text()  # both long answers belong to q1


def test_mining_passages_takes_negatives_from_other_documents_only(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from qaembed.data.dataset import read_split

    projects = [{"project_id": f"p{i}", "readme_content": f"Project {i} brews beer. It uses hops number {i}. "
                 f"Version {i}.0 is out. It runs on Linux {i}.", "qa_pairs": [
                     {"question": f"What does project {i} do?", "answer": "Brews beer."}]} for i in range(10)]
    path = write_projects(tmp_path / "p.json", projects)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "data", "chunk", path, "--out", out, "--model", tiny_model_dir,
                           "--threshold", "1.0", "--split", "1,0,0")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "mine", "--data", out / "records", "--out", tmp_path / "mined",
                           "--model", tiny_model_dir, "--num-negatives", "3", "--no-margin", "--near-duplicate-cosine", "1.0")
    assert code == 0, err
    mined = read_split(tmp_path / "mined", "train")
    assert mined and all(len(r.negatives) == 3 for r in mined)
    for record in mined:
        own_document = record.answers[0].id.split("#")[0]
        assert all(n.id.split("#")[0] != own_document for n in record.negatives)


class LimitedEncoder(FakeEncoder):
    """A FakeEncoder that, like a sentence-transformers model, reads at most ``max_seq_length`` tokens, two of them
    its [CLS] and [SEP]."""

    max_seq_length = 8

    class _Tokenizer(FakeEncoder._Tokenizer):
        def num_special_tokens_to_add(self, pair=False):
            return 2

    tokenizer = _Tokenizer()


def test_the_chunk_size_defaults_to_what_the_encoder_reads_whole_and_a_larger_one_is_refused(minilm):
    from qaembed.chunking.chunk import encoder_token_limit
    from qaembed.errors import ConfigError

    assert encoder_token_limit(minilm) == minilm.max_seq_length - 2 == 254  # [CLS] and [SEP]
    text = "Beer beer beer. Beer is brewed. Beer is bottled. Beer is cold."  # 3 words a sentence
    chunks, _ = chunk_documents([Document("a", text, "a.md")], LimitedEncoder(), ChunkingConfig(), BadRecordPolicy())
    assert [c.text for c in chunks] == ["Beer beer beer. Beer is brewed.", "Beer is bottled. Beer is cold."]  # 6 = 8 - 2
    with pytest.raises(ConfigError, match=r"--max-tokens 7 is more than the encoder reads whole: max_seq_length 8 less "
                                          r"2 special token\(s\) = 6; .* Use --max-tokens 6 or less"):
        chunk_documents([Document("a", text, "a.md")], LimitedEncoder(), ChunkingConfig(max_tokens=7), BadRecordPolicy())
    long = Document("b", "Beer beer beer beer beer beer beer.", "b.md")
    with pytest.raises(DataError, match=r"more than the chunk size --max-tokens 6; that is all the encoder reads whole"):
        chunk_documents([long], LimitedEncoder(), ChunkingConfig(), BadRecordPolicy())
    with pytest.raises(DataError, match=r"--max-tokens 5; raise --max-tokens \(up to 6: what the encoder reads whole\)"):
        chunk_documents([long], LimitedEncoder(), ChunkingConfig(max_tokens=5), BadRecordPolicy())
