"""Gzipped canonical JSONL sources: streamed, same records as plain JSONL, damaged files a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from qaembed.data.dataset import read_split, write_jsonl_records
from qaembed.data.prepare import PrepareConfig, prepare_dataset
from qaembed.data.sources import open_source
from qaembed.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"
SE_SITE = FIXTURES / "stackexchange" / "example.stackexchange.com"


@pytest.fixture()
def plain_and_gz(tmp_path) -> tuple[Path, Path]:
    records = list(open_source(SE_SITE, progress=False).records())
    plain = tmp_path / "records.jsonl"
    write_jsonl_records(plain, records)
    gz = tmp_path / "records.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    return plain, gz


def test_gz_source_yields_the_same_records_as_plain_jsonl(plain_and_gz, tmp_path):
    plain, gz = plain_and_gz
    adapter = open_source(gz)
    assert adapter.kind == "jsonl" and adapter.name == "records.jsonl.gz"
    assert list(adapter.records()) == list(open_source(plain).records())
    prepare_dataset([str(gz)], tmp_path / "a", PrepareConfig(min_answers=0), progress=False)
    prepare_dataset([str(plain)], tmp_path / "b", PrepareConfig(min_answers=0), progress=False)
    for split in ("train", "dev", "test"):
        assert read_split(tmp_path / "a", split) == read_split(tmp_path / "b", split)


def test_bad_line_inside_gz_names_file_line_and_field(plain_and_gz):
    plain, gz = plain_and_gz
    lines = plain.read_bytes().splitlines(keepends=True)
    lines.insert(1, b'{"id": "x:1", "title": "T", "answers": [{"id": "x:2", "text": "a", "score": "many"}]}\n')
    gz.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(DataError) as info:
        list(open_source(gz).records())
    assert info.value.path == str(gz) and info.value.line == 2 and info.value.field == "answers.0.score"
    skipping = open_source(gz, skip_bad=True)
    assert len(list(skipping.records())) == len(lines) - 1
    assert skipping.policy.counts == {"invalid_record": 1}


def test_truncated_gz_is_an_error_or_keeps_what_was_read(plain_and_gz):
    plain, gz = plain_and_gz
    data = gzip.compress(plain.read_bytes() * 40)  # long enough that the cut falls after some whole lines
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"gzip data truncated after line \d+") as info:
        list(open_source(gz).records())
    assert info.value.path == str(gz)
    skipping = open_source(gz, skip_bad=True)
    kept = list(skipping.records())
    assert 0 < len(kept) and skipping.policy.counts == {"malformed_gzip": 1}


def test_a_file_that_is_not_gzip_is_an_error(tmp_path, qaembed_cli):
    fake = tmp_path / "records.jsonl.gz"
    fake.write_text('{"id": "x:1", "title": "T"}\n')
    with pytest.raises(DataError, match=r"gzip data corrupt .*after line 0"):
        list(open_source(fake).records())
    result = qaembed_cli("data", "prepare", fake, "--out", tmp_path / "out")
    assert result.exit_code == 2 and f"error: {fake}:1: gzip data corrupt" in result.stderr
    assert not (tmp_path / "out").exists()
