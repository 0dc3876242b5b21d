"""Shared test fixtures: the real-data root and a tiny model loaded once per session."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_data_dir() -> Path | None:
    """Real data: QAEMBED_DATA_DIR if set, else ../shared/data beside the repository."""
    env = os.environ.get("QAEMBED_DATA_DIR")
    candidate = Path(env) if env else REPO.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("real data not found (set QAEMBED_DATA_DIR or put it at ../shared/data)")
    return root


@pytest.fixture(scope="session")
def _minilm_session():
    from qaembed.model import load_encoder

    return load_encoder("minilm", device="cpu")


@pytest.fixture()
def minilm(_minilm_session):
    """The default model (all-MiniLM-L6-v2), loaded once per session and handed out as a copy."""
    return copy.deepcopy(_minilm_session)
