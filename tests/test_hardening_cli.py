"""Bad options of ``qaembed eval``, ``train`` and ``mine`` end in exit 2 with a message naming the option.

Each test runs the console entry point :func:`qaembed.cli.main` in-process (the path a user
gets: a ``QaembedError`` is printed as ``error: ...`` and the exit code is 2; anything else
would surface here as a traceback) and checks that nothing was written or lost.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, QARecord


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of ``qaembed ARGS`` through the console entry point."""
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def dataset(tmp_path) -> Path:
    records = [
        QARecord(id=f"s:{i}", title=f"question {i} about brewing?", answers=[
            Answer(id=f"s:{i}1", text=f"answer one to {i}", score=3), Answer(id=f"s:{i}2", text=f"answer two {i}", score=1)])
        for i in range(6)
    ]
    folder = tmp_path / "data"
    for split in ("train", "dev", "test"):
        write_jsonl_records(folder / f"{split}.jsonl", records)
    return folder


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fail the test if a model is loaded: bad options must be refused before any work."""
    import qaembed.mining.dataset
    import qaembed.model

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    for module in (qaembed.model, qaembed.mining.dataset):
        monkeypatch.setattr(module, "load_encoder", refuse)


# --model ---------------------------------------------------------------------------------------

def test_model_typo_names_the_model_and_the_close_builtin_name(monkeypatch, capsys, dataset):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_main(monkeypatch, capsys, "eval", "--model", "minlm", "--data", dataset)
    assert code == 2
    assert "error: could not load model 'minlm'" in err and "Did you mean 'minilm'?" in err


def test_model_folder_without_weights(monkeypatch, capsys, dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run_main(monkeypatch, capsys, "eval", "--model", empty, "--data", dataset)
    assert code == 2 and f"model path {empty} exists but holds no sentence-transformers" in err

    run = tmp_path / "run"  # a training run folder instead of its model/ folder
    (run / "model").mkdir(parents=True)
    (run / "model" / "modules.json").write_text("[]")
    code, err = run_main(monkeypatch, capsys, "eval", "--model", run, "--data", dataset)
    assert code == 2 and f"weights are in {run / 'model'}" in err

    config_only = tmp_path / "config_only"  # a transformers folder whose weights are missing
    config_only.mkdir()
    (config_only / "config.json").write_text('{"model_type": "bert"}')
    code, err = run_main(monkeypatch, capsys, "eval", "--model", config_only, "--data", dataset)
    assert code == 2 and f"could not load model '{config_only}' from {config_only}" in err

    code, err = run_main(monkeypatch, capsys, "eval", "--model", dataset / "test.jsonl", "--data", dataset)
    assert code == 2 and "is a file; give the model's folder" in err


def test_train_with_a_model_typo_names_model_base_and_writes_nothing(monkeypatch, capsys, dataset, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{base: minlm}}\ndata: {{dataset: {dataset}}}\nloss: {{name: infonce}}\n"
                      "strategy: {name: hard_negative}\ntraining: {batch_size: 2, max_steps: 1}\n")
    out = tmp_path / "run"
    code, err = run_main(monkeypatch, capsys, "train", "--config", config, "--out", out)
    assert code == 2 and "error: model.base: could not load model 'minlm'" in err
    assert not out.exists()


# --device --------------------------------------------------------------------------------------

def test_bogus_device_is_refused_before_loading(monkeypatch, capsys, dataset, no_model_load):
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--device", "bogus")
    assert code == 2 and "--device 'bogus': not a device; use cpu, cuda, cuda:N or mps" in err
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--device", "meta")
    assert code == 2 and "--device 'meta': not supported" in err


def test_cuda_device_without_gpu(monkeypatch, capsys, dataset, no_model_load, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--device", "cuda")
    assert code == 2 and "--device 'cuda': no CUDA GPU is visible" in err
    code, err = run_main(monkeypatch, capsys, "mine", "--data", dataset, "--out", tmp_path / "mined", "--device", "cuda")
    assert code == 2 and "--device 'cuda': no CUDA GPU is visible" in err
    assert not (tmp_path / "mined").exists()


def test_mine_bogus_device(monkeypatch, capsys, dataset, tmp_path):
    code, err = run_main(monkeypatch, capsys, "mine", "--data", dataset, "--out", tmp_path / "mined", "--device", "bogus")
    assert code == 2 and "device must be 'cpu' or 'cuda[:N]', got 'bogus'" in err


# --seed ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_the_generators_refuse_is_refused_before_any_work(monkeypatch, capsys, dataset, tmp_path, seed,
                                                                 no_model_load):
    for command in (["eval", "--data", dataset], ["map", "--data", dataset, "--out", tmp_path / "maps"],
                    ["mine", "--data", dataset, "--out", tmp_path / "mined"]):
        code, err = run_main(monkeypatch, capsys, *command, "--seed", seed)
        bound = "greater than or equal to 0" if seed == "-1" else "less than or equal to 4294967295"
        assert code == 2 and "--seed" in err and bound in err, (command, err)
    code, err = run_main(monkeypatch, capsys, "train", "--data", dataset, "--out", tmp_path / "run", "--debug",
                         "--set", f"training.seed={seed}")
    assert code == 2 and "training.seed" in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "maps").exists() and not (tmp_path / "mined").exists()


def test_a_suite_seed_the_generators_refuse_is_a_config_error(tmp_path):
    from qaembed.errors import ConfigError
    from qaembed.suite.grid import SuiteConfig, build_suite_config

    file = tmp_path / "suite.yaml"
    file.write_text("seeds: [0, -1]\n")
    with pytest.raises(ConfigError, match=r"seeds\.1"):
        build_suite_config(file=file)
    assert SuiteConfig(seeds=[0, 2**32 - 1]).seeds == [0, 2**32 - 1]


def test_a_suite_config_that_is_a_folder_or_not_utf8_is_one_line_naming_it(tmp_path):
    from qaembed.errors import ConfigError
    from qaembed.suite.grid import build_suite_config

    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory"):
        build_suite_config(file=tmp_path)
    file = tmp_path / "suite.yaml"
    file.write_bytes(b"seeds: [0]\nmodel: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"suite.yaml: cannot parse: not UTF-8 .* line 2"):
        build_suite_config(file=file)
    file.write_text("preset: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(ConfigError, match=r"suite.yaml: cannot parse"):
        build_suite_config(file=file)


@pytest.mark.parametrize("length", ["1", "2", "0"])
def test_eval_refuses_a_length_that_leaves_no_room_for_text(monkeypatch, capsys, dataset, no_model_load, length):
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--max-seq-length", length)
    assert code == 2 and f"option --max-seq-length must be >= 8 (as in training), got {length}" in err, err


# --split ---------------------------------------------------------------------------------------

def test_unknown_split_names_the_allowed_splits(monkeypatch, capsys, dataset, no_model_load):
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--split", "tset")
    assert code == 2 and "error: --split 'tset': not a split of a prepared dataset; allowed: train, dev, test" in err
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--distractors", "trian")
    assert code == 2 and "--distractors 'trian'" in err and "allowed: train, dev, test" in err


def test_unknown_beir_split_lists_the_qrels_files(monkeypatch, capsys, tmp_path, no_model_load):
    (tmp_path / "beir" / "qrels").mkdir(parents=True)
    for split in ("dev", "test"):
        (tmp_path / "beir" / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n")
    code, err = run_main(monkeypatch, capsys, "eval", "--data", f"beir:{tmp_path / 'beir'}", "--split", "tset")
    assert code == 2 and "--split 'tset'" in err and "has no tset.tsv; allowed: dev, test" in err


# --out -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "eval", "mine"])
def test_out_pointing_at_an_existing_file(monkeypatch, capsys, dataset, tmp_path, command, no_model_load):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{base: minilm}}\ndata: {{dataset: {dataset}}}\nloss: {{name: infonce}}\n"
                      "strategy: {name: hard_negative}\n")
    args = {"train": ["--config", config], "eval": ["--data", dataset], "mine": ["--data", dataset]}[command]
    before = _tree(tmp_path)
    code, err = run_main(monkeypatch, capsys, command, *args, "--out", target)
    assert code == 2 and f"error: --out {target}: is an existing file, not a folder" in err
    assert _tree(tmp_path) == before  # the file is untouched and nothing was written

    inside = target / "sub"
    code, err = run_main(monkeypatch, capsys, command, *args, "--out", inside)
    assert code == 2 and f"--out {inside}: {target} is a file, so no folder can be created in it" in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("command", ["eval", "mine", "map"])
def test_an_out_path_that_is_not_utf8_is_refused_before_any_work(monkeypatch, capsys, dataset, tmp_path, command,
                                                                 no_model_load):
    if os.name != "posix":
        pytest.skip("POSIX paths are bytes")
    out = Path(os.fsdecode(bytes(tmp_path) + b"/o\xff"))  # what Python makes of such a command-line argument
    code, err = run_main(monkeypatch, capsys, command, "--data", dataset, "--out", out)
    assert code == 2 and "the path is not valid UTF-8 text" in err, err
    assert list(tmp_path.iterdir()) == [dataset]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
@pytest.mark.parametrize("command", ["train", "eval", "mine"])
def test_unwritable_out(monkeypatch, capsys, dataset, tmp_path, command, no_model_load):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{base: minilm}}\ndata: {{dataset: {dataset}}}\nloss: {{name: infonce}}\n"
                      "strategy: {name: hard_negative}\n")
    args = {"train": ["--config", config], "eval": ["--data", dataset], "mine": ["--data", dataset]}[command]
    try:
        code, err = run_main(monkeypatch, capsys, command, *args, "--out", locked / "run")
    finally:
        locked.chmod(0o700)
    assert code == 2 and f"the parent folder {locked} is not writable" in err


def test_unwritable_out_is_found_through_the_nearest_existing_parent(monkeypatch, tmp_path):
    """The permission branch, also where tests run as root (for whom every folder is writable)."""
    from qaembed.errors import ConfigError
    from qaembed.outputs import check_output_dir

    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(ConfigError, match=f"--out {tmp_path / 'a' / 'b'}: the parent folder {tmp_path} is not writable"):
        check_output_dir(tmp_path / "a" / "b")


def test_eval_refuses_to_replace_an_earlier_result_before_encoding(monkeypatch, capsys, dataset, tmp_path,
                                                                   no_model_load):
    out = tmp_path / "result"
    out.mkdir()
    (out / "summary.json").write_text('{"summary": {}}')
    code, err = run_main(monkeypatch, capsys, "eval", "--data", dataset, "--out", out)
    assert code == 2 and f"--out {out} already holds a result (summary.json); pass --overwrite" in err
    assert (out / "summary.json").read_text() == '{"summary": {}}'


# remote code ----------------------------------------------------------------------------------

def test_model_loading_never_trusts_remote_code(monkeypatch, tiny_model_dir):
    import sentence_transformers

    from qaembed.model import build_encoder, load_encoder

    seen = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code", "not passed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    load_encoder(str(tiny_model_dir), device="cpu")
    build_encoder(str(tiny_model_dir), projection_dim=4, device="cpu")
    assert seen == [False, False, False]  # load_encoder, build_encoder's load and its rebuild
    with pytest.raises(ValueError, match="remote code"):
        load_encoder(str(tiny_model_dir), trust_remote_code=True)


def test_hugging_face_datasets_never_trust_remote_code(monkeypatch):
    import datasets

    from qaembed.data import hf

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: calls.append(kwargs) or ["row"])
    assert hf._load("some-org/some-dataset", "train") == ["row"]
    assert calls == [{"split": "train", "trust_remote_code": False}]
