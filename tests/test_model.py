from pathlib import Path

import pytest

from qaembed.model import ModelNotFoundError, load_encoder, resolve_model


def test_minilm_resolves_to_packaged_weights():
    path = Path(resolve_model("minilm"))
    assert (path / "modules.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_default_model_encodes(minilm):
    emb = minilm.encode(["how do I brew a stout?", "roast barley gives the colour"])
    assert emb.shape == (2, 384)


def test_missing_local_path_names_what_was_tried(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such local path.*minilm"):
        resolve_model(str(tmp_path / "nope" / "model"))


def test_path_without_weights_is_an_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds no sentence-transformers"):
        resolve_model(str(tmp_path))


def test_unknown_hub_id_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="could not load model 'no-such-org/no-such-model'.*Tried"):
        load_encoder("no-such-org/no-such-model")
