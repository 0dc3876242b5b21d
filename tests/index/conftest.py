"""Fixtures for index tests: a tiny prepared Q&A dataset written in the test, and indexes built from it
with the tiny random model (``tiny_model_dir``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, Author, Provenance, QARecord

TOPICS = ["hops", "yeast", "malt", "lager", "stout", "barrel", "cork", "foam", "carbonation", "bottle"]


def make_records(prefix: str, count: int, start: int = 0) -> list[QARecord]:
    """``count`` questions with two answers each; answer texts are distinct and carry attribution."""
    records = []
    for i in range(start, start + count):
        topic = TOPICS[i % len(TOPICS)]
        answers = [
            Answer(
                id=f"{prefix}:{i}:{j}",
                text=f"answer {j} to question {i}: {topic} number {i * 13 + j} matters for {TOPICS[(i + j + 3) % 10]}",
                score=10 - j * 7 + i % 3,
                accepted=j == 0,
                provenance=Provenance(
                    source="test", site="beer.stackexchange.com", url=f"https://beer.stackexchange.com/a/{prefix}{i}{j}",
                    author=Author(id=str(100 + i), name=f"brewer{i}", url=f"https://beer.stackexchange.com/users/{100 + i}"),
                    created="2019-03-01T10:00:00", license="CC BY-SA 4.0",
                ),
            )
            for j in range(2)
        ]
        records.append(QARecord(
            id=f"{prefix}:{i}", title=f"How does {topic} affect beer {i}?", body="Asking for a friend.", answers=answers,
            provenance=Provenance(source="test", site="beer.stackexchange.com",
                                  url=f"https://beer.stackexchange.com/questions/{prefix}{i}", license="CC BY-SA 4.0"),
        ))
    return records


def write_dataset(folder: Path, records: list[QARecord]) -> Path:
    """Train/dev/test thirds of ``records`` as a prepared dataset folder."""
    third = max(1, len(records) // 3)
    parts = {"train": records[:third], "dev": records[third : 2 * third], "test": records[2 * third :]}
    for split, part in parts.items():
        write_jsonl_records(folder / f"{split}.jsonl", part)
    return folder


@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> Path:
    """30 questions, 60 answers."""
    return write_dataset(tmp_path_factory.mktemp("qa_data"), make_records("s", 30))


@pytest.fixture(scope="session")
def more_data(tmp_path_factory) -> Path:
    """6 further questions (12 answers) with new ids."""
    return write_dataset(tmp_path_factory.mktemp("more_data"), make_records("t", 6, start=40))


@pytest.fixture(scope="session")
def built_index(tiny_model_dir, qa_data, tmp_path_factory) -> Path:
    """A flat index of ``qa_data`` (all splits) built with the tiny model; tests must not modify it."""
    from qaembed.index import build_index

    out = tmp_path_factory.mktemp("indexes") / "flat"
    build_index(str(tiny_model_dir), qa_data, out, progress=False)
    return out


@pytest.fixture(scope="session")
def other_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with one weight changed: same architecture and dimension, other weights hash."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        next(iter(model.parameters())).add_(0.01)
    out = tmp_path_factory.mktemp("other_model")
    model.save(str(out))
    return out


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``qaembed ARGS`` through the console entry point, in-process."""
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def qaembed(monkeypatch, capsys):
    return lambda *args: run_main(monkeypatch, capsys, *args)
