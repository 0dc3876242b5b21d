"""Fixtures for the data tests: the ``qaembed`` command line run in-process, as the console script runs it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture()
def qaembed_cli(monkeypatch, capsys) -> Callable[..., CliResult]:
    """``qaembed_cli("data", "prepare", ...)``: exit code (2 for a user error), stdout, stderr.

    Goes through :func:`qaembed.cli.main`, so a :class:`~qaembed.errors.QaembedError` becomes
    ``error: ...`` on stderr and exit code 2, and any other exception (a traceback) propagates.
    """
    from qaembed.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        out = capsys.readouterr()
        code = info.value.code
        return CliResult(0 if code is None else int(code), out.out, out.err)

    return run
