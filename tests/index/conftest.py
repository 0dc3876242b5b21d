"""Fixtures for index tests: a tiny prepared Q&A dataset written in the test, and indexes built from it
with the tiny random model (``tiny_model_dir``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from index_helpers import make_records, write_dataset


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
