"""Nothing is written outside the output folder, and no path read from a file leaves its folder.

Two ways out are planted here and must fail: a symbolic link inside an output folder (``OUT/report.md ->
~/.bashrc``, at a temporary name, or a linked sub-folder), whose target must stay as it was; and a hostile path
in a file qaembed reads back (``suite.json``'s run ids, an index manifest's file names, ``result.json``'s model
folder), which must be refused with an error naming the file and field, or not be used at all.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qaembed.errors import ConfigError, DataError
from qaembed.outputs import LOCK_FILE

sys.path.insert(0, str(Path(__file__).parent / "suite"))
from suite_fakes import FakeRun, tiny_config, write_tiny_dataset  # noqa: E402

SE_SITE = Path(__file__).parent / "data" / "fixtures" / "stackexchange" / "example.stackexchange.com"
PRECIOUS = "export PATH=$HOME/bin:$PATH  # the user's own file, outside every output folder\n"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A folder of the user's own files that no command is given."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def precious(folder: Path, name: str, text: str = PRECIOUS) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def plant(link: Path, target: Path) -> Path:
    """A symbolic link at ``link`` (inside an output folder) to ``target`` (outside it)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


# --- links planted in an output folder -----------------------------------------------------------------------------

def test_a_lock_file_link_is_refused_and_its_target_kept(qaembed_cli, tmp_path, outside):
    out = tmp_path / "prepared"
    bashrc = precious(outside, ".bashrc")
    plant(out / LOCK_FILE, bashrc)
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", out)
    assert result.exit_code == 2, result.stderr
    assert LOCK_FILE in result.stderr and "symbolic link" in result.stderr
    assert bashrc.read_text() == PRECIOUS  # the lock's truncate + pid went nowhere


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def _write_json(path):
    from qaembed.jsonfiles import write_json

    write_json(path, {"a": 1})


def _write_jsonl(path):
    from qaembed.data.dataset import write_jsonl_records
    from qaembed.records import Answer, QARecord

    write_jsonl_records(path, [QARecord(id="q", title="t", answers=[Answer(id="a", text="x", score=1)])])


def _replace_text(path):
    from qaembed.outputs import replace_text

    replace_text(path, "new\n")


def _save_figure(path):
    from qaembed.figures import save_figure

    save_figure(_figure(), path)


def _write_parquet(path):
    from qaembed.arrayfiles import write_parquet

    write_parquet(pd.DataFrame({"score": [0.5]}), path)


def _save_sample(path):
    from qaembed.embedding_maps import MapSample, save_sample_embeddings

    sample = MapSample(["q1", "q2"], ["a", "b"], ["", ""], "tag", available=2)
    save_sample_embeddings(path, sample, np.eye(2, dtype=np.float32))


def _save_config(path):
    from qaembed.train.config import parse_config, save_config

    save_config(parse_config({"data": {"dataset": "x"}}), path)


def _shards(path):
    from qaembed.data.parquet import write_parquet_shards
    from qaembed.records import Answer, QARecord

    records = [QARecord(id="q", title="t", answers=[Answer(id="a", text="x", score=1)])]
    write_parquet_shards(path.parents[1], "train", records)


def _memmap(path):
    from qaembed.mining.embed import encode_to_memmap

    class Encoder:
        def get_embedding_dimension(self):
            return 4

        def encode_query(self, texts, **kwargs):
            return np.ones((len(texts), 4), dtype=np.float32)

    encode_to_memmap(Encoder(), ["a", "b", "c"], "query", path, batch_size=2, chunk_size=2)


# (writer, final name, the temporary name it writes first)
WHOLE_FILES = {
    "encode_to_memmap": (_memmap, "queries.npy", f"queries.npy.{os.getpid()}.tmp"),
    "write_json": (_write_json, "stats.json", "stats.json.tmp"),
    "write_jsonl_records": (_write_jsonl, "train.jsonl", "train.jsonl.tmp"),
    "replace_text": (_replace_text, "report.md", "report.md.tmp"),
    "save_figure": (_save_figure, "metrics.png", "metrics.tmp.png"),
    "write_parquet": (_write_parquet, "per_pair.parquet", "per_pair.parquet.tmp"),
    "save_sample_embeddings": (_save_sample, "map_sample.npz", "map_sample.tmp.npz"),
    "save_config": (_save_config, "config.yaml", "config.yaml.tmp"),
    "write_parquet_shards": (_shards, "parquet/train-00000.parquet", "parquet/train-00000.parquet.tmp"),
}


@pytest.mark.parametrize("writer", sorted(WHOLE_FILES))
def test_whole_file_writes_replace_links_at_their_name_and_temporary_name(writer, tmp_path, outside):
    write, name, tmp_name = WHOLE_FILES[writer]
    out = tmp_path / "out"
    final_target, tmp_target = precious(outside, "final.txt"), precious(outside, "tmp.txt")
    plant(out / name, final_target)
    plant(out / tmp_name, tmp_target)
    write(out / name)
    assert final_target.read_text() == PRECIOUS and tmp_target.read_text() == PRECIOUS
    assert (out / name).is_file() and not (out / name).is_symlink()
    assert not (out / tmp_name).exists() and not (out / tmp_name).is_symlink()


def test_eval_result_save_replaces_links(tmp_path, outside):
    from qaembed.evaluate.result import EvalResult

    out = tmp_path / "eval"
    targets = {name: precious(outside, name) for name in
               ("per_question.parquet", "per_question.parquet.tmp", "summary.json", "summary.json.tmp")}
    for name, target in targets.items():
        plant(out / name, target)
    per_question = pd.DataFrame({"retrieval/ndcg@10": [0.5, 1.0]}, index=pd.Index(["a", "b"], name="question_id"))
    EvalResult.from_per_question(per_question, {"retrieval/questions": 2}).save(out)
    assert all(target.read_text() == PRECIOUS for target in targets.values())
    assert EvalResult.load(out).summary == {"retrieval/ndcg@10": 0.75}


def test_eval_out_replaces_a_link_at_per_pair_parquet(qaembed_cli, tmp_path, outside, tiny_model_dir,
                                                      tiny_pair_dataset):
    out = tmp_path / "eval"
    target = precious(outside, "notes.parquet")
    plant(out / "per_pair.parquet", target)
    result = qaembed_cli("eval", "--model", tiny_model_dir, "--data", tiny_pair_dataset, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert target.read_text() == PRECIOUS
    assert not (out / "per_pair.parquet").is_symlink() and set(pd.read_parquet(out / "per_pair.parquet")) >= {"label"}


def test_eval_maxsim_refuses_a_linked_token_store(qaembed_cli, tmp_path, outside, tiny_model_dir):
    data = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "eval"
    plant(out / "maxsim_tokens", outside)
    result = qaembed_cli("eval", "--model", tiny_model_dir, "--data", data, "--scorer", "maxsim", "--out", out)
    assert result.exit_code == 2 and "maxsim_tokens" in result.stderr and "symbolic link" in result.stderr
    assert not any(outside.iterdir())


def test_token_store_files_replace_links(tmp_path, outside):
    from qaembed.evaluate.maxsim import TokenStore

    folder = tmp_path / "maxsim_tokens"
    targets = {name: precious(outside, name) for name in ("tokens.f16.tmp", "offsets.npy", "offsets.tmp.npy",
                                                          "meta.json")}
    for name, target in targets.items():
        plant(folder / name, target)
    store = TokenStore.build(folder, ["a", "b"], lambda texts: [np.ones((2, 4)) for _ in texts], key="k")
    assert store.offsets.tolist() == [0, 2, 4]
    assert all(target.read_text() == PRECIOUS for target in targets.values())


@pytest.fixture(scope="module")
def suite_folder(tmp_path_factory) -> Path:
    """A finished suite folder (fake runs: no model), copied by each test that changes it."""
    from qaembed.suite.runner import run_suite

    root = tmp_path_factory.mktemp("suite")
    run_suite(tiny_config(write_tiny_dataset(root / "prepared"), seeds=[0]), root / "suite", run_fn=FakeRun())
    return root / "suite"


def _copy(folder: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(folder, to, symlinks=True)
    return to


def test_suite_report_never_writes_through_links_in_the_suite_folder(qaembed_cli, suite_folder, tmp_path, outside):
    out = _copy(suite_folder, tmp_path / "suite")
    names = ("report.md", "report.md.tmp", "report.html.tmp", "results.csv.tmp", "results.json.tmp",
             "plots/metrics.png", "plots/metrics.tmp.png")
    targets = {name: precious(outside, name.replace("/", "_")) for name in names}
    for name, target in targets.items():
        plant(out / name, target)
    result = qaembed_cli("suite", "report", out)
    assert result.exit_code == 0, result.stderr
    assert {name: target.read_text() for name, target in targets.items()} == dict.fromkeys(names, PRECIOUS)
    assert (out / "report.md").is_file() and not (out / "report.md").is_symlink()
    assert (out / "plots" / "metrics.png").is_file() and not (out / "plots" / "metrics.png").is_symlink()


def test_suite_report_refuses_a_linked_plots_folder(qaembed_cli, suite_folder, tmp_path, outside):
    out = _copy(suite_folder, tmp_path / "suite")
    before = precious(outside, "metrics.png")
    plant(out / "plots", outside)
    result = qaembed_cli("suite", "report", out)
    assert result.exit_code == 2 and "plots" in result.stderr and "symbolic link" in result.stderr
    assert before.read_text() == PRECIOUS and sorted(p.name for p in outside.iterdir()) == ["metrics.png"]


def test_suite_refuses_a_linked_run_folder_and_deletes_nothing_there(tmp_path, outside):
    from qaembed.suite.runner import run_suite

    data = write_tiny_dataset(tmp_path / "prepared")
    kept = [precious(outside, "seed0/spec.json", "{not a spec"), precious(outside, "seed0/eval/summary.json")]
    before = snapshot(outside)
    out = tmp_path / "suite"
    plant(out / "runs" / "infonce", outside)  # the run infonce/seed0 would be cleared (its spec is unreadable)
    with pytest.raises(ConfigError, match=r"runs/infonce: is a symbolic link"):
        run_suite(tiny_config(data, seeds=[0]), out, run_fn=FakeRun())
    assert snapshot(outside) == before and all(path.is_file() for path in kept)


def test_suite_refuses_a_linked_data_folder(tmp_path, outside):
    from qaembed.suite.dataset import resolve_suite_data

    write_tiny_dataset(outside / "prepared")
    before = snapshot(outside)
    out = tmp_path / "suite"
    plant(out / "data", outside / "prepared")  # the suite prepares its sources there, replacing what it holds
    with pytest.raises(ConfigError, match=r"data: is a symbolic link"):
        resolve_suite_data(str(SE_SITE), out, progress=False)
    assert snapshot(outside) == before


def test_suite_refuses_a_linked_mined_data_folder(tmp_path, outside):
    from qaembed.suite.dataset import PreparedData, mine_suite_data

    data = PreparedData(dataset_dir=write_tiny_dataset(tmp_path / "prepared"), hash="h", description="d", counts={})
    out = tmp_path / "suite"
    plant(out / "data_mined", outside)
    with pytest.raises(ConfigError, match=r"data_mined: is a symbolic link"):
        mine_suite_data(data, out, "minilm")
    assert not any(outside.iterdir())


def test_appended_files_refuse_links(tmp_path, outside):
    from qaembed.outputs import open_append
    from qaembed.suite.runner import _stderr_to
    from qaembed.train.trackers import METRICS_FILE, MetricsLog

    target = precious(outside, "notes.txt")
    metrics = plant(tmp_path / "run" / METRICS_FILE, target)
    log = MetricsLog(metrics, SimpleNamespace(is_main_process=True), trackers=[])
    with pytest.raises(ConfigError, match=r"metrics\.jsonl: is a symbolic link"):
        log({"step": 1, "loss": 0.5})
    run_log = plant(tmp_path / "run" / "run.log", target)
    with pytest.raises(ConfigError, match=r"run\.log: is a symbolic link"), _stderr_to(run_log):
        pass
    dangling = plant(tmp_path / "run" / "train.log", outside / "created.log")
    with pytest.raises(ConfigError, match="train.log"):
        open_append(dangling)
    assert target.read_text() == PRECIOUS and not (outside / "created.log").exists()


def test_resume_refuses_a_linked_metrics_file(tmp_path, outside):
    from qaembed.train.loop import _truncate_metrics

    lines = '{"step": 1, "loss": 1.0}\n{"step": 5, "loss": 0.5}\n'
    target = precious(outside, "metrics.jsonl", lines)
    with pytest.raises(ConfigError, match="symbolic link"):
        _truncate_metrics(plant(tmp_path / "run" / "metrics.jsonl", target), 1)
    assert target.read_text() == lines


def test_training_refuses_linked_checkpoint_and_tracking_folders(tmp_path, outside, monkeypatch):
    from qaembed.train.checkpoint import latest_checkpoint
    from qaembed.train.loop import _check_run_dir
    from qaembed.train.trackers import check_trackers

    run = tmp_path / "run"
    plant(run / "checkpoints", outside)
    with pytest.raises(ConfigError, match="checkpoints: is a symbolic link"):
        _check_run_dir(None, run, resume=True)
    (run / "checkpoints").unlink()
    precious(outside, "step-000009/state.json", "{}")
    plant(run / "checkpoints" / "step-000009", outside / "step-000009")  # never resumed from, nor deleted
    assert latest_checkpoint(run) is None
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plant(run / "tracking", outside)
    with pytest.raises(ConfigError, match="tracking: is a symbolic link"):
        check_trackers(["mlflow"], run)
    assert not (outside / "mlflow.db").exists()


def test_a_saved_model_replaces_a_linked_model_folder(tmp_path, outside, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    from qaembed.train.loop import _Run

    model_dir = outside / "my-model"
    kept = precious(model_dir, "config.json", '{"mine": true}')
    run = tmp_path / "run"
    plant(run / "model", model_dir)
    precious(run / "best_model", "README.md")
    plant(run / "best_model" / "config.json", kept)  # a link inside the earlier folder
    loop_run = SimpleNamespace(main=True, run_dir=run, model=SentenceTransformer(str(tiny_model_dir), device="cpu"),
                               accelerator=SimpleNamespace(unwrap_model=lambda model: model),
                               config=SimpleNamespace(scorer=SimpleNamespace(name="cosine", query_length=None)))
    for folder in ("model", "best_model"):
        _Run.save(loop_run, folder)
        assert not (run / folder).is_symlink() and (run / folder / "modules.json").is_file()
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json"] and kept.read_text() == '{"mine": true}'
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_replacing_folder_removes_the_new_folder_on_error(tmp_path):
    from qaembed.outputs import replacing_folder

    with pytest.raises(RuntimeError), replacing_folder(tmp_path / "model") as new:
        (new / "half").write_text("x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_chunk_refuses_a_linked_sentence_cache(qaembed_cli, tmp_path, outside):
    docs = tmp_path / "docs"
    precious(docs, "beer.md", "# Beer\n\nBeer is brewed from malt.")
    qa = precious(tmp_path, "qa.jsonl", '{"question": "How is beer made?", "answer": "From malt.", "document": '
                                        '"beer.md"}\n')
    out = tmp_path / "chunks"
    plant(out / "sentences.sqlite", outside / "cache.sqlite")  # SQLite would create (and fill) it
    result = qaembed_cli("data", "chunk", docs, "--qa", qa, "--out", out)
    assert result.exit_code == 2 and "sentences.sqlite" in result.stderr and "symbolic link" in result.stderr
    assert not (outside / "cache.sqlite").exists()


# --- paths read from files --------------------------------------------------------------------------------------------

def test_suite_report_refuses_a_run_id_that_leaves_the_suite_folder(qaembed_cli, suite_folder, tmp_path, outside):
    out = _copy(suite_folder, tmp_path / "suite")
    record = json.loads((out / "suite.json").read_text())
    record["runs"][0]["run_id"] = "../../home/run"
    (out / "suite.json").write_text(json.dumps(record))
    precious(outside, "run/status.json", "{}")
    result = qaembed_cli("suite", "report", out)
    assert result.exit_code == 2
    assert "suite.json" in result.stderr and "runs.0.run_id" in result.stderr


def test_a_finished_runs_model_folder_is_its_own(tmp_path, outside):
    from qaembed.train.loop import RESULT_FILE, finished_result

    run = tmp_path / "run"
    precious(run, RESULT_FILE, json.dumps({
        "status": "completed", "steps": 3, "best_metric": None, "best_step": None, "final_dev": None,
        "model_dir": str(outside / "model"), "best_model_dir": str(outside / "best"), "wall_time_s": 1.0,
        "texts_per_s": 1.0}))
    result = finished_result(run)
    assert result.model_dir == str(run / "model") and result.best_model_dir is None


def _manifest(folder: Path, files: dict) -> Path:
    from qaembed.index.store import IndexSettings, Manifest, ModelInfo

    manifest = Manifest(model=ModelInfo(reference="m", resolved="m", weights_hash="0", files_hash=None,
                                        max_seq_length=None), dimension=2, count=0,
                        index=IndexSettings(kind="flat", requested="flat"), files={}, data=[], built_at="",
                        updated_at="", build_seconds=0.0, qaembed_version="0")
    payload = {**manifest.model_dump(mode="json"), "files": files}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(payload))
    return folder


@pytest.mark.parametrize("name", ["../../home/secret", "/etc/passwd", "sub/vectors.faiss", "manifest.json"])
def test_an_index_manifest_lists_only_its_own_files(tmp_path, name):
    from qaembed.index.store import read_manifest

    folder = _manifest(tmp_path / "index", {name: {"bytes": 1, "hash": "0"}})
    with pytest.raises(DataError, match=r"manifest\.json, field 'files'"):
        read_manifest(folder)


def test_an_index_file_that_is_a_link_is_refused(tmp_path, outside):
    from qaembed.index.store import FileInfo, check_files, file_info, read_manifest

    target = precious(outside, "vectors.faiss")
    info = file_info(target)
    folder = _manifest(tmp_path / "index", {"vectors.faiss": FileInfo.model_dump(info)})
    plant(folder / "vectors.faiss", target)
    with pytest.raises(DataError, match="vectors.faiss: is a symbolic link"):
        check_files(folder, read_manifest(folder), verify_hashes=True)


def test_serve_maps_only_serves_files_inside_the_folder(tmp_path, outside):
    from qaembed.serve.app import _map_files

    maps = tmp_path / "maps"
    precious(maps, "base.png", "PNG")
    plant(maps / "leak.png", precious(outside, "secret.png"))
    plant(maps / "alias.png", maps / "base.png")  # a link within the folder stays
    found = _map_files(maps)
    assert sorted(found) == ["alias.png", "base.png"]
    assert all(path.parent == maps.resolve() for path in found.values())
