"""Fixtures for suite tests (helpers live in suite_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_fakes import write_tiny_dataset


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "prepared")
