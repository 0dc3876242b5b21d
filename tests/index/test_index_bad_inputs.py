"""Bad input to ``qaembed index build|add`` and ``qaembed search``: exit 2, one message naming the
file or option, no traceback, nothing written or lost."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from index_helpers import make_records, write_dataset

from qaembed.data.dataset import write_jsonl_records
from qaembed.errors import ConfigError, DataError
from qaembed.index import load_index


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, *needles: str) -> None:
    code, _, stderr = result
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    message = " ".join(last.split())
    assert code == 2, stderr
    assert message.startswith("error:") and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in message, message


@pytest.fixture()
def index_copy(built_index, tmp_path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(built_index, folder)
    return folder


# search: the index folder ------------------------------------------------------------------------


def test_unknown_index_path(qaembed, tmp_path):
    assert_refused(qaembed("search", "--index", tmp_path / "nowhere", "hops"), "nowhere", "no such index folder")


def test_folder_without_manifest(qaembed, qa_data):
    assert_refused(qaembed("search", "--index", qa_data, "hops"), "manifest.json", "not an index folder")


def test_corrupt_manifest(qaembed, index_copy):
    (index_copy / "manifest.json").write_text('{"format": "qaembed-index", ')
    assert_refused(qaembed("search", "--index", index_copy, "hops"), "manifest.json", "invalid JSON")


def test_manifest_with_a_bad_field(qaembed, index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["dimension"] = "wide"
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(qaembed("search", "--index", index_copy, "hops"), "manifest.json", "field 'dimension'")


@pytest.mark.parametrize("field, value", [("count", 61), ("dimension", 64)])
def test_manifest_disagreeing_with_the_vectors(qaembed, index_copy, field, value):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest[field] = value
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(qaembed("search", "--index", index_copy, "hops"), "vectors.faiss", "manifest.json says")


@pytest.mark.parametrize("name", ["vectors.faiss", "documents.arrow"])
def test_missing_file(qaembed, index_copy, name):
    (index_copy / name).unlink()
    assert_refused(qaembed("search", "--index", index_copy, "hops"), name, "missing")


@pytest.mark.parametrize("name", ["vectors.faiss", "documents.arrow"])
def test_truncated_file(qaembed, index_copy, name):
    path = index_copy / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_refused(qaembed("search", "--index", index_copy, "hops"), name, "truncated")


@pytest.mark.parametrize("name", ["vectors.faiss", "documents.arrow"])
def test_corrupt_file_same_size(qaembed, index_copy, name):
    path = index_copy / name
    data = bytearray(path.read_bytes())
    data[:16] = data[-16:] = b"\x00garbage-garbage"  # header and footer: caught by the hash, and by the reader without it
    path.write_bytes(bytes(data))
    assert_refused(qaembed("search", "--index", index_copy, "hops"), name, "corrupt")
    assert_refused(qaembed("search", "--index", index_copy, "hops", "--no-verify"), name, "rebuild the index")


def test_model_with_other_weights_is_refused_unless_allowed(qaembed, built_index, other_model_dir):
    assert_refused(
        qaembed("search", "--index", built_index, "hops", "--model", other_model_dir),
        "weights", "differ", "--allow-model-mismatch",
    )
    code, stdout, stderr = qaembed(
        "search", "--index", built_index, "hops", "--model", other_model_dir, "--allow-model-mismatch", "--json"
    )
    assert code == 0, stderr and json.loads(stdout)["results"][0]["hits"]


def test_loaded_model_object_with_other_weights(built_index, other_model_dir):
    from sentence_transformers import SentenceTransformer

    other = SentenceTransformer(str(other_model_dir), device="cpu")
    with pytest.raises(ConfigError, match="differ"):
        load_index(built_index, model=other)
    assert load_index(built_index, model=other, allow_model_mismatch=True).search(["hops"], k=1)[0].hits


def test_model_of_another_dimension_is_refused_even_when_mismatch_is_allowed(built_index, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    model = SentenceTransformer(str(load_index(built_index).manifest.model.reference), device="cpu")
    wider = SentenceTransformer(modules=[*model, Dense(32, 48)], device="cpu")
    with pytest.raises(ConfigError, match="48-dimensional"):
        load_index(built_index, model=wider, allow_model_mismatch=True)


def test_model_of_the_manifest_is_gone(qaembed, index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["model"]["reference"] = "/nonexistent/model"
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    assert_refused(qaembed("search", "--index", index_copy, "hops"), "/nonexistent/model", "--model")


# search: k and queries ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one(qaembed, built_index, k):
    assert_refused(qaembed("search", "--index", built_index, "hops", "-k", k), "-k must be at least 1")


def test_library_k_and_queries(built_index):
    index = load_index(built_index)
    with pytest.raises(ConfigError, match="positive integer"):
        index.search(["hops"], k=0)
    with pytest.raises(DataError, match="query 2 is empty"):
        index.search(["hops", "  "], k=1)
    with pytest.raises(DataError, match="no queries"):
        index.search([], k=1)
    with pytest.raises(ConfigError, match="list of strings"):
        index.search("hops", k=1)
    with pytest.raises(DataError, match=r"query 2 is not valid UTF-8 text: character 3 is a lone surrogate \(U\+D800\)"):
        index.search(["hops", "ab\ud800"], k=1)
    with pytest.raises(DataError, match="text 1 is not valid UTF-8 text"):
        index.embed_documents(["\udce9"])


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_question(qaembed, built_index, query):
    assert_refused(qaembed("search", "--index", built_index, query), "empty")


def test_question_argument_that_is_not_utf8(qaembed, built_index):
    # Python reads the byte 0xE9 of argv (Latin-1 "é") as the lone surrogate U+DCE9
    assert_refused(qaembed("search", "--index", built_index, "caf\udce9"),
                   "error: query: not valid UTF-8 text: character 4 is a lone surrogate (U+DCE9)", "not UTF-8")


def test_question_argument_with_a_byte_that_is_not_utf8_through_the_console(built_index):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "qaembed", "search", "--index", str(built_index), b"caf\xe9"],
                          capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: query: not valid UTF-8 text: character 4 is a lone surrogate (U+DCE9)")


def test_question_and_queries_file_together_or_neither(qaembed, built_index, tmp_path):
    (tmp_path / "q.txt").write_text("hops\n")
    assert_refused(qaembed("search", "--index", built_index, "hops", "--queries", tmp_path / "q.txt"), "--queries")
    assert_refused(qaembed("search", "--index", built_index), "--queries")


@pytest.mark.parametrize(
    "name, content, needles",
    [
        ("missing.txt", None, ["missing.txt", "no such queries file"]),
        ("blank.txt", "\n  \n", ["blank.txt", "holds no queries"]),
        ("bad.jsonl", '{"query": "hops"}\n{"query": \n', ["bad.jsonl:2", "invalid JSON"]),
        ("empty.jsonl", '{"query": "hops"}\n{"query": "  "}\n', ["empty.jsonl:2", "field 'query'", "empty"]),
        ("nofield.jsonl", '{"question": "hops"}\n', ["nofield.jsonl:1", "field 'query'", "missing"]),
        ("binary.txt", b"\xff\xfe\x00hops", ["binary.txt", "not UTF-8"]),
        ("surrogate.jsonl", '{"query": "hops"}\n{"query": "\\ud800 hello"}\n',
         ["surrogate.jsonl:2, field 'query': not valid UTF-8 text: character 1 is a lone surrogate (U+D800)"]),
    ],
)
def test_bad_queries_file(qaembed, built_index, tmp_path, name, content, needles):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert_refused(qaembed("search", "--index", built_index, "--queries", path), *needles)


# build ---------------------------------------------------------------------------------------------


def test_existing_out_needs_overwrite(qaembed, tiny_model_dir, qa_data, index_copy):
    before = _tree(index_copy)
    assert_refused(
        qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", index_copy), "--out", "--overwrite"
    )
    assert _tree(index_copy) == before
    code, _, stderr = qaembed(
        "index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", index_copy, "--overwrite", "--split", "test"
    )
    assert code == 0, stderr
    assert load_index(index_copy).manifest.count == 20
    assert not [p for p in index_copy.parent.iterdir() if p.name.startswith(".copy")]


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_what_a_killed_build_left_is_cleaned_and_a_lost_index_put_back(qaembed, tiny_model_dir, qa_data,
                                                                       built_index, index_copy, tmp_path):
    """Killed between its two renames, an --overwrite build left the old index as .NAME.old-PID-* and the new one
    as .NAME.tmp-PID-*, and NAME gone; the next build put neither back nor away."""
    pid = _dead_pid()
    old = tmp_path / f".copy.old-{pid}-0123abcd"
    index_copy.rename(old)
    shutil.copytree(built_index, tmp_path / f".copy.tmp-{pid}-4567cdef")
    alive = tmp_path / f".copy.tmp-{os.getpid()}-89abcdef"  # a build running now: left alone
    alive.mkdir()
    from qaembed.index.store import atomic_folder

    with atomic_folder(index_copy) as folder:  # the recovery runs first: the old index is back under its name
        assert load_index(index_copy).manifest.count == load_index(built_index).manifest.count
        shutil.copytree(built_index, folder, dirs_exist_ok=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")) == [alive.name]
    code, _, stderr = qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", index_copy,
                              "--overwrite", "--split", "test")
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")) == [alive.name]


def test_overwrite_never_deletes_a_file_an_index_folder_does_not_hold(qaembed, tiny_model_dir, qa_data, index_copy):
    (index_copy / "my-notes.txt").write_text("keep me")
    before = _tree(index_copy)
    assert_refused(
        qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", index_copy, "--overwrite"),
        "not part of the index (my-notes.txt)", "would delete them",
    )
    assert _tree(index_copy) == before


def test_overwrite_never_replaces_a_folder_that_is_not_an_index(qaembed, tiny_model_dir, qa_data, tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for options in ([], ["--overwrite"]):  # without --overwrite too: it would not help, so it is not suggested
        code, _, stderr = qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", folder,
                                  *options)
        assert code == 2 and "not a qaembed index" in stderr and "pass --overwrite" not in stderr, stderr
    assert (folder / "notes.txt").read_text() == "keep me"
    dataset = write_dataset(tmp_path / "dataset", make_records("d", 3))
    (dataset / "manifest.json").write_text('{"seed": 13}')  # a prepared dataset's manifest, not an index's
    before = _tree(dataset)
    assert_refused(
        qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", dataset, "--overwrite"),
        "dataset", "not a qaembed index",
    )
    assert_refused(
        qaembed("index", "build", "--model", tiny_model_dir, "--data", dataset, "--out", dataset, "--overwrite"),
        "--out must differ from --data",
    )
    assert _tree(dataset) == before


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--kind", "annoy"], ["--kind", "allowed: auto, flat, hnsw, ivf"]),
        (["--split", "validation"], ["--split", "allowed"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--flat-max", "-1"], ["--flat-max"]),
        (["--device", "tpu"], ["--device"]),
    ],
)
def test_bad_build_options(qaembed, tiny_model_dir, qa_data, tmp_path, extra, needles):
    out = tmp_path / "idx"
    assert_refused(qaembed("index", "build", "--model", tiny_model_dir, "--data", qa_data, "--out", out, *extra), *needles)
    assert not out.exists()


def test_bad_build_data(qaembed, tiny_model_dir, tmp_path):
    args = ("index", "build", "--model", tiny_model_dir, "--out", tmp_path / "idx")
    assert_refused(qaembed(*args, "--data", tmp_path / "nodata"), "nodata", "no such dataset folder")
    only_test = tmp_path / "only_test"
    write_jsonl_records(only_test / "test.jsonl", make_records("s", 2))
    assert_refused(qaembed(*args, "--data", only_test), "train.jsonl", "missing")
    (only_test / "train.jsonl").write_text('{"id": "x"}\n')
    assert_refused(qaembed(*args, "--data", only_test, "--split", "train"), "train.jsonl:1", "field 'title'")
    twice = tmp_path / "twice"
    for split in ("train", "dev", "test"):
        write_jsonl_records(twice / f"{split}.jsonl", make_records("s", 2))
    assert_refused(qaembed(*args, "--data", twice), "dev.jsonl", "'s:0:0' appears twice", "train.jsonl")
    assert_refused(qaembed(*args, "--data", twice, "--split", "test", "--kind", "ivf"), "--kind ivf", "at least 39")
    assert_refused(
        qaembed("index", "build", "--model", tmp_path / "nomodel", "--data", twice, "--split", "test", "--out", tmp_path / "i"),
        "nomodel",
    )
    assert not (tmp_path / "idx").exists() and not (tmp_path / "i").exists()


# add -----------------------------------------------------------------------------------------------


def test_add_with_colliding_ids_changes_nothing(qaembed, index_copy, qa_data, tmp_path):
    before = _tree(index_copy)
    assert_refused(qaembed("index", "add", "--index", index_copy, "--data", qa_data), "already in the index", "'s:0:0'")
    mixed = write_dataset(tmp_path / "mixed", make_records("s", 3, start=29) + make_records("u", 3))
    assert_refused(qaembed("index", "add", "--index", index_copy, "--data", mixed), "2 answer id(s)", "'s:29:0'")
    assert _tree(index_copy) == before


def test_add_to_a_missing_or_damaged_index(qaembed, index_copy, more_data, tmp_path):
    assert_refused(qaembed("index", "add", "--index", tmp_path / "none", "--data", more_data), "no such index folder")
    path = index_copy / "documents.arrow"
    path.write_bytes(path.read_bytes()[:-10])
    assert_refused(qaembed("index", "add", "--index", index_copy, "--data", more_data), "documents.arrow", "truncated")


def test_add_with_another_model_is_refused(qaembed, index_copy, more_data, other_model_dir):
    before = _tree(index_copy)
    assert_refused(
        qaembed("index", "add", "--index", index_copy, "--data", more_data, "--model", other_model_dir),
        "differ", "--allow-model-mismatch",
    )
    assert _tree(index_copy) == before
