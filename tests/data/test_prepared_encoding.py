"""Bytes that are not UTF-8 in a prepared dataset's files: every reader names the file and line, with the
message ``qaembed data prepare`` gives for the same file, never a UnicodeDecodeError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaembed.data.dataset import SPLITS, read_corpus, read_split
from qaembed.data.pairs import prepare_pairs, read_pair_split
from qaembed.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"
SE_SITE = FIXTURES / "stackexchange" / "example.stackexchange.com"
BAD_LINE = b"\xff\xfe\n"


@pytest.fixture()
def dataset(qaembed_cli, tmp_path) -> Path:
    out = tmp_path / "ds"
    result = qaembed_cli("data", "prepare", str(SE_SITE), str(FIXTURES / "ranked_qa.json"), "--out", str(out),
                         "--split", "0.4,0.3,0.3")
    assert result.exit_code == 0, result.stderr
    assert all((out / f"{split}.jsonl").read_bytes() for split in SPLITS)  # every split holds records
    return out


def _spoil(path: Path) -> int:
    """Append a line that is not UTF-8 to ``path``; its line number."""
    lines = path.read_bytes().count(b"\n")
    with path.open("ab") as fh:
        fh.write(BAD_LINE)
    return lines + 1


@pytest.mark.parametrize("split", SPLITS)
def test_a_split_with_a_byte_that_is_not_utf8_names_file_and_line(dataset, split, qaembed_cli):
    path = dataset / f"{split}.jsonl"
    line = _spoil(path)
    expected = f"{path}:{line}: not UTF-8 (invalid start byte at byte 0)"
    with pytest.raises(DataError) as info:
        read_split(dataset, split)
    assert str(info.value) == expected
    stats = qaembed_cli("data", "stats", str(dataset))
    assert stats.exit_code == 2 and stats.stderr.strip() == f"error: {expected}"
    prepare = qaembed_cli("data", "prepare", str(path), "--out", str(dataset.parent / "again"))
    assert prepare.exit_code == 2 and f"error: {expected}" in prepare.stderr  # the same words as data prepare's


def test_the_line_number_counts_blank_lines_and_is_exact_far_into_the_file(dataset):
    path = dataset / "train.jsonl"
    records = path.read_bytes()
    path.write_bytes(records + b"\n" + records * 200)  # well past one text-mode read buffer
    line = _spoil(path)
    with pytest.raises(DataError, match=rf"train\.jsonl:{line}: not UTF-8"):
        read_split(dataset, "train")


def test_corpus_file_with_a_byte_that_is_not_utf8(dataset):
    corpus = dataset / "corpus.jsonl"
    corpus.write_bytes(b'{"id": "d1", "text": "a passage"}\n' + b'{"id": "d2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError) as info:
        read_corpus(dataset)
    assert str(info.value) == f"{corpus}:2: not UTF-8 (invalid continuation byte at byte 25)"


def test_pair_split_with_a_byte_that_is_not_utf8(tmp_path):
    out = tmp_path / "qqp"
    prepare_pairs([FIXTURES / "pairs" / "qqp.tsv"], out, "pairs-qqp", seed=1, split=(0.5, 0.25, 0.25))
    path = out / "train.pairs.jsonl"
    line = _spoil(path)
    with pytest.raises(DataError) as info:
        read_pair_split(out, "train")
    assert str(info.value) == f"{path}:{line}: not UTF-8 (invalid start byte at byte 0)"


def test_a_long_broken_line_is_quoted_shortened(dataset):
    path = dataset / "dev.jsonl"
    broken = '{"id": "x:1", "title": "' + "word " * 400 + '", "answers": [oops]}\n'
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines) + broken, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_split(dataset, "dev")
    message = str(caught.value)
    assert message.startswith(f"{path}:{len(lines) + 1}: Invalid JSON") and f"({len(broken)} characters)" in message
    assert len(message) < len(str(path)) + 200
