"""Failures of the machine rather than of the input end in one line and exit 1, not a traceback: a full disk, a
file that cannot be written, a closed output, memory. ``QAEMBED_TRACEBACK=1`` gives the traceback back; any
other exception (a bug) keeps its traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

SE_SITE = Path(__file__).parent / "data" / "fixtures" / "stackexchange" / "example.stackexchange.com"


def test_output_to_a_full_device_is_one_line_and_exit_1():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "qaembed", "losses", "--json"], stdout=full,
                              stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: No space left on device (set QAEMBED_TRACEBACK=1 to see where)"


def _failing_write(monkeypatch, exc: BaseException) -> None:
    import qaembed.data.prepare as prepare

    def write(path, lines):
        raise exc

    monkeypatch.setattr(prepare, "write_jsonl_lines", write)


def test_a_file_that_cannot_be_written_is_named_and_the_dataset_is_not_left_half_written(
        qaembed_cli, monkeypatch, tmp_path):
    out = tmp_path / "out"
    _failing_write(monkeypatch, PermissionError(errno.EACCES, "Permission denied", str(out / "train.jsonl")))
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", out)
    assert result.exit_code == 1
    assert f"error: Permission denied: {out / 'train.jsonl'} (set QAEMBED_TRACEBACK=1 to see where)" in result.stderr
    assert not out.exists()  # a failed prepare into a new folder leaves nothing


def test_memory_errors_say_what_to_lower(qaembed_cli, monkeypatch, tmp_path):
    _failing_write(monkeypatch, MemoryError())
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "error: out of memory: lower the batch size" in result.stderr


def test_the_traceback_is_there_when_asked_for_and_for_bugs(qaembed_cli, monkeypatch, tmp_path):
    _failing_write(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "x"))
    monkeypatch.setenv("QAEMBED_TRACEBACK", "1")
    with pytest.raises(PermissionError):
        qaembed_cli("data", "prepare", SE_SITE, "--out", tmp_path / "a")
    monkeypatch.delenv("QAEMBED_TRACEBACK")
    _failing_write(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        qaembed_cli("data", "prepare", SE_SITE, "--out", tmp_path / "b")
    assert os.environ.get("QAEMBED_TRACEBACK") is None


def test_a_reader_that_left_ends_the_command_quietly():
    """``qaembed losses | head -1`` style: the pipe's reader is gone before the output is written (click's own
    handling; kept here so that the entry point around it never turns it into a traceback)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "qaembed", "losses", "--json"], stdout=write,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert proc.returncode == 1 and proc.stderr == ""
