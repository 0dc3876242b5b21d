"""Every shipped config trains (``--debug``) on the shared Stack Exchange data with the default model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qaembed.cli import app

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def shared_prepared(shared_data: Path, tmp_path_factory) -> Path:
    from qaembed.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("se_prepared")
    prepare_dataset(sorted((shared_data / "stackexchange").iterdir()), out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_trains_on_shared_data_and_saves_a_loadable_model(path, shared_prepared, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--debug", "--set",
                                      f"data.dataset={shared_prepared}", "--out", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    saved = json.loads((out / "result.json").read_text())
    assert saved["status"] == "completed" and saved["steps"] == 3
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 3 and all(math.isfinite(value) for value in losses)  # logged every step
    model = SentenceTransformer(str(out / "model"), device="cpu")
    embedding = model.encode(["How do I store hops?"], normalize_embeddings=True)
    assert embedding.shape[0] == 1 and abs(float((embedding ** 2).sum()) - 1.0) < 1e-5
