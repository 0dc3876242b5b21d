"""Token embeddings for MaxSim and the saved layout: a MaxSim model saves in PyLate's
``models.ColBERT`` layout, a combined one keeps its pooled head; both reload with the same
token embeddings."""

from __future__ import annotations

import doctest
import json

import pytest
import torch

from qaembed import late_interaction
from qaembed.late_interaction import add_token_projection, load_model, save_model, token_embeddings, token_projection

TEXTS = ["How do I store hops?", "Keep them cold and away from air; vacuum-sealed in a freezer works best.", "hi"]


def _model(tiny_model_dir, projection_dim=16):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(1)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.eval()
    return add_token_projection(model, projection_dim, option="scorer.projection_dim")


def _tokens(model):
    features = model.tokenize(TEXTS)
    with torch.no_grad():
        return token_embeddings(model(features))


def test_docstring_examples_run():
    assert doctest.testmod(late_interaction).failed == 0


def test_token_embeddings_are_projected_and_unit_length_and_pooling_is_unchanged(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model = _model(tiny_model_dir)
    projection = token_projection(model)
    assert (projection.in_features, projection.out_features, projection.bias) == (32, 16, False)
    assert projection.linear.bias is None
    tokens, mask = _tokens(model)
    assert tokens.shape[:2] == mask.shape and tokens.shape[2] == 16 and mask.dtype == torch.bool
    torch.testing.assert_close(tokens.norm(dim=-1), torch.ones(mask.shape), atol=1e-5, rtol=0)
    # the projection sits after the pooling: the pooled embedding is the base model's
    torch.testing.assert_close(torch.as_tensor(model.encode(TEXTS)), torch.as_tensor(plain.encode(TEXTS)))


def test_maxsim_model_saves_in_pylate_layout_and_reloads_with_equal_tokens(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    model = _model(tiny_model_dir)
    before, mask = _tokens(model)
    save_model(model, tmp_path / "m", "maxsim", query_length=24)
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert [(m["idx"], m["path"], m["type"]) for m in modules] == [
        (0, "", "sentence_transformers.models.Transformer"), (1, "1_Dense", "pylate.models.Dense.Dense")]
    dense = json.loads((tmp_path / "m" / "1_Dense" / "config.json").read_text())
    assert dense == {"in_features": 32, "out_features": 16, "bias": False,
                     "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False}
    assert list(load_file(str(tmp_path / "m" / "1_Dense" / "model.safetensors"))) == ["linear.weight"]
    transformer = json.loads((tmp_path / "m" / "sentence_bert_config.json").read_text())
    assert transformer == {"max_seq_length": model.max_seq_length, "do_lower_case": False}  # the 5.x form
    config = json.loads((tmp_path / "m" / "config_sentence_transformers.json").read_text())
    assert {k: config[k] for k in ("query_prefix", "document_prefix", "do_query_expansion", "skiplist_words",
                                   "attend_to_expansion_tokens")} == \
        {"query_prefix": "", "document_prefix": "", "do_query_expansion": False, "skiplist_words": [],
         "attend_to_expansion_tokens": False}
    assert config["query_length"] == 24 and config["document_length"] == model.max_seq_length
    reloaded = load_model(tmp_path / "m", device="cpu")
    assert [type(m).__name__ for m in reloaded] == ["Transformer", "Dense"]
    after, after_mask = _tokens(reloaded)
    assert torch.equal(after_mask, mask)
    assert (after - before).abs().max() <= 1e-5
    # sentence-transformers' own encode gives the same (unnormalized) projected tokens
    raw = reloaded.encode(TEXTS[:1], output_value="token_embeddings")[0]
    torch.testing.assert_close(torch.nn.functional.normalize(torch.as_tensor(raw), dim=-1),
                               before[0][mask[0]], atol=1e-5, rtol=0)


def test_combined_model_keeps_the_pooled_head_and_reloads_with_equal_tokens(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = _model(tiny_model_dir)
    before, _ = _tokens(model)
    pooled = model.encode(TEXTS)
    save_model(model, tmp_path / "m", "combined")
    reloaded = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling", "Normalize", "Dense"]
    assert [type(m).__name__ for m in load_model(tmp_path / "m")] == ["Transformer", "Pooling", "Normalize", "Dense"]
    assert (_tokens(reloaded)[0] - before).abs().max() <= 1e-5
    assert abs(reloaded.encode(TEXTS) - pooled).max() <= 1e-5


def test_a_reloaded_model_keeps_its_projection_as_base_of_a_new_run(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    save_model(_model(tiny_model_dir), tmp_path / "m", "combined")
    reloaded = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert add_token_projection(reloaded, 16, option="scorer.projection_dim") is reloaded
    assert len(reloaded) == 4  # not a second projection
    from qaembed.errors import ConfigError

    with pytest.raises(ConfigError, match="scorer.projection_dim: 128 does not match"):
        add_token_projection(reloaded, 128, option="scorer.projection_dim")


def test_single_vector_commands_refuse_a_maxsim_only_model_clearly(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """index build / search / eval score with pooled cosine: a MaxSim-only folder is a clear error, not an import failure."""
    import sys as sys_module

    from qaembed.cli import main
    from qaembed.late_interaction import is_maxsim_only

    save_model(_model(tiny_model_dir), tmp_path / "m", "maxsim", query_length=24)
    save_model(_model(tiny_model_dir), tmp_path / "c", "combined")
    assert is_maxsim_only(tmp_path / "m") and not is_maxsim_only(tmp_path / "c") and not is_maxsim_only(tiny_model_dir)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"id": "q", "title": "t", "answers": [{"id": "a", "text": "x", "score": 1}]}\n')
    for command in (["index", "build", "--data", str(data), "--split", "train", "--out", str(tmp_path / "i")],
                    ["eval", "--data", str(data), "--split", "train"]):
        monkeypatch.setattr(sys_module, "argv", ["qaembed", *command, "--model", str(tmp_path / "m")])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "late-interaction (MaxSim-only) model" in err and "Traceback" not in err, err


def _drop_in_features(folder):
    config = json.loads((folder / "1_Dense" / "config.json").read_text())
    del config["in_features"]
    (folder / "1_Dense" / "config.json").write_text(json.dumps(config))


def _module_path(value):
    def damage(folder):
        modules = json.loads((folder / "modules.json").read_text())
        modules[0]["path"] = value
        (folder / "modules.json").write_text(json.dumps(modules))
    return damage


DAMAGED_MAXSIM_FOLDERS = {  # one change to a saved maxsim model -> (file, field, message)
    "entry without path": (lambda f: (f / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "type": "pylate.models.Dense.Dense"}]'), "modules.json", "0.path", "missing"),
    "dense config without in_features": (_drop_in_features, "1_Dense/config.json", "in_features", "missing"),
    "dense without weights": (lambda f: (f / "1_Dense" / "model.safetensors").unlink(),
                              "1_Dense/model.safetensors", None, "missing"),
    "garbage dense weights": (lambda f: (f / "1_Dense" / "model.safetensors").write_bytes(b"not safetensors"),
                              "1_Dense/model.safetensors", None, "unreadable (corrupt or truncated"),
    # a valid transformer sits beside the model folder: it must not be read from there
    "transformer path outside the folder": (_module_path("../outside"), "modules.json", "0.path",
                                            "'../outside' resolves outside the model folder"),
    "absolute transformer path": (_module_path("/"), "modules.json", "0.path", "resolves outside the model folder"),
}


@pytest.mark.parametrize("case", list(DAMAGED_MAXSIM_FOLDERS))
def test_a_damaged_pylate_layout_folder_is_a_data_error_naming_file_and_field(case, tiny_model_dir, tmp_path,
                                                                              monkeypatch, capsys):
    import shutil
    import sys as sys_module

    from qaembed.cli import main
    from qaembed.errors import DataError
    from qaembed.model import load_token_encoder

    damage, file, field, message = DAMAGED_MAXSIM_FOLDERS[case]
    monkeypatch.chdir(tmp_path)
    save_model(_model(tiny_model_dir), tmp_path / "m", "maxsim", query_length=24)
    shutil.copytree(tiny_model_dir, tmp_path / "outside")
    damage(tmp_path / "m")
    capsys.readouterr()
    with pytest.raises(DataError) as info:
        load_model("m", device="cpu")
    assert (info.value.path, info.value.field) == (f"m/{file}", field) and message in info.value.message
    with pytest.raises(Exception) as wrapped:
        load_token_encoder("m", device="cpu")
    assert str(wrapped.value) == f"could not load model 'm': {info.value}"
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text('{"id": "q", "title": "t", "answers": [{"id": "a", "text": "x", "score": 1}]}\n')
    monkeypatch.setattr(sys_module, "argv", ["qaembed", "eval", "--scorer", "maxsim", "--model", "m",
                                             "--data", str(data), "--split", "test"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"error: could not load model 'm': {info.value}"
