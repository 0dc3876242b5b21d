"""Prepared splits as Parquet shards: equal records to JSONL, read by every stage, by datasets, and
bad shards and folders refused with the file named."""

import json
from pathlib import Path

import pytest

from qaembed.data.dataset import SPLITS, iter_split, split_files
from qaembed.data.jsonl import CanonicalJsonl
from qaembed.data.parquet import PARQUET_DIR, iter_parquet_records, write_parquet_shards
from qaembed.data.prepare import PrepareConfig, prepare_dataset
from qaembed.data.stats import dataset_stats
from qaembed.errors import ConfigError, DataError
from qaembed.records import Answer, Author, MinedNegative, Provenance, QARecord

FIXTURE_SITE = Path(__file__).parent / "fixtures" / "stackexchange" / "example.stackexchange.com"


def _records(n: int) -> list[QARecord]:
    return [QARecord(id=f"t:{i}", title=f"question {i} about topic {i % 5}?", body=f"details {i}",
                     answers=[Answer(id=f"t:{i}-{k}", text=f"answer {k} to {i} on topic {i % 5}", score=3 - k)
                              for k in range(1 + i % 3)]) for i in range(n)]


def _both(tmp_path, shard_records=1):
    jsonl, parquet = tmp_path / "jsonl", tmp_path / "parquet_ds"
    prepare_dataset([FIXTURE_SITE], jsonl, PrepareConfig(split=(0.34, 0.33, 0.33)), progress=False)
    prepare_dataset([FIXTURE_SITE], parquet, PrepareConfig(split=(0.34, 0.33, 0.33), output="parquet",
                                                           shard_records=shard_records), progress=False)
    return jsonl, parquet


def test_parquet_splits_hold_the_same_records_as_jsonl(tmp_path):
    jsonl, parquet = _both(tmp_path)
    assert not any((parquet / f"{s}.jsonl").exists() for s in SPLITS)
    total = 0
    for split in SPLITS:
        assert list(iter_split(parquet, split)) == list(iter_split(jsonl, split))
        total += len(list(iter_split(parquet, split)))
    assert total == 2  # the fixture's third question has no answer
    manifest = json.loads((parquet / "manifest.json").read_text())
    train = manifest["files"]["train"]
    assert train["files"] == [f"{PARQUET_DIR}/{p.name}" for p in split_files(parquet, "train")]
    assert len(train["files"]) == max(1, train["records"])  # one record per shard here
    assert dataset_stats(parquet)["splits"] == dataset_stats(jsonl)["splits"]
    assert json.loads((parquet / "stats.json").read_text()) == json.loads((jsonl / "stats.json").read_text())


def test_every_field_round_trips_including_mined_negatives(tmp_path):
    author = Author(id="7", name="Ada", url=None)
    record = QARecord(
        id="s:1", title="t", body="b\n\ncode", tags=["x", "y"], score=-2.5,
        answers=[Answer(id="s:2", text="a", score=3, accepted=True,
                        provenance=Provenance(source="src", author=author, created="2020-01-01T00:00:00",
                                              license="CC BY-SA 4.0")),
                 Answer(id="s:3", text="é ∑ 🙂", score=0)],
        provenance=None,
        negatives=[MinedNegative(id="s:9", text="n", question_id="s:8", similarity=0.5, rank=0)],
    )
    count, files = write_parquet_shards(tmp_path, "train", [record, record.model_dump_json()], shard_records=1)
    assert count == 2 and [f.name for f in files] == ["train-00000.parquet", "train-00001.parquet"]
    assert [r for f in files for r in iter_parquet_records(f)] == [record, record]


def test_stages_read_the_shards(tmp_path):
    jsonl, parquet = _both(tmp_path, shard_records=2)
    # prepare from a prepared Parquet folder (as a source) gives the same records again
    assert sorted(r.id for r in CanonicalJsonl(parquet).records()) == sorted(r.id for r in CanonicalJsonl(jsonl).records())
    from qaembed.suite.dataset import resolve_suite_data

    data = resolve_suite_data(str(parquet), tmp_path / "suite")
    assert data.dataset_dir == parquet and data.counts == resolve_suite_data(str(jsonl), tmp_path / "suite2").counts


def test_hugging_face_datasets_reads_the_shards(tmp_path):
    import datasets

    records = _records(30)
    write_parquet_shards(tmp_path, "train", records, shard_records=7)
    loaded = datasets.load_dataset("parquet", data_files={"train": str(tmp_path / PARQUET_DIR / "train-*.parquet")},
                                   cache_dir=str(tmp_path / "hf"))["train"]
    assert loaded["id"] == [r.id for r in records]
    assert loaded[2]["answers"][1]["text"] == records[2].answers[1].text


@pytest.mark.slow
def test_ray_data_reads_the_shards_in_parallel(tmp_path):
    """``ray.data.read_parquet`` on the shards' folder (Ray spreads the files over its read tasks): the rows are
    the records of every shard, nested answers included."""
    ray = pytest.importorskip("ray")
    records = _records(30)
    files = write_parquet_shards(tmp_path, "train", records, shard_records=7)[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dataset = ray.data.read_parquet(str(tmp_path / PARQUET_DIR))
        rows = dataset.take_all()
        assert len(files) == 5 and dataset.count() == 30
    finally:
        ray.shutdown()
    assert sorted(row["id"] for row in rows) == sorted(r.id for r in records)
    by_id = {row["id"]: row for row in rows}
    assert by_id[records[2].id]["answers"][1]["text"] == records[2].answers[1].text


def test_training_reads_parquet_shards(tiny_model_dir, tmp_path):
    from qaembed.train import train
    from qaembed.train.config import parse_config

    records = _records(40)
    for split, part in zip(SPLITS, (records[:24], records[24:32], records[32:])):
        write_parquet_shards(tmp_path / "data", split, part, shard_records=10)
    config = parse_config({
        "model": {"base": str(tiny_model_dir), "max_seq_length": 32}, "data": {"dataset": str(tmp_path / "data")},
        "strategy": {"name": "hard_negative"}, "loss": {"name": "infonce"},
        "training": {"batch_size": 8, "max_steps": 2, "lr": 1e-3, "log_every": 1, "seed": 3},
    })
    result = train(config, tmp_path / "run")
    assert result.status == "completed" and result.steps == 2
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert any("train-00002.parquet" in f for f in provenance["data_files"])


def test_overwrite_switches_layout_and_leaves_no_stale_split(tmp_path):
    out = tmp_path / "ds"
    prepare_dataset([FIXTURE_SITE], out, PrepareConfig(split=(0.34, 0.33, 0.33)), progress=False)
    prepare_dataset([FIXTURE_SITE], out, PrepareConfig(split=(0.34, 0.33, 0.33), output="parquet"), progress=False,
                    overwrite=True)
    assert not (out / "train.jsonl").exists() and split_files(out, "train")[0].suffix == ".parquet"
    prepare_dataset([FIXTURE_SITE], out, PrepareConfig(split=(0.34, 0.33, 0.33)), progress=False, overwrite=True)
    assert not (out / PARQUET_DIR).exists() and split_files(out, "train") == [out / "train.jsonl"]


def test_a_foreign_file_in_the_shard_folder_is_refused(tmp_path):
    out = tmp_path / "ds"
    (out / PARQUET_DIR).mkdir(parents=True)
    (out / PARQUET_DIR / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a folder of qaembed shards only"):
        prepare_dataset([FIXTURE_SITE], out, PrepareConfig(output="parquet"), progress=False, overwrite=True)
    assert (out / PARQUET_DIR / "notes.txt").read_text() == "mine"


def test_damaged_or_foreign_shards_are_errors_naming_the_file(tmp_path):
    _, files = write_parquet_shards(tmp_path, "train", [QARecord(id="a", title="t")])
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train-00000\.parquet: cannot read Parquet"):
        list(iter_split(tmp_path, "train"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a"]}), files[0])
    with pytest.raises(DataError, match="columns differ from the record schema"):
        list(iter_split(tmp_path, "train"))
    with pytest.raises(DataError, match="no dev split here"):
        list(iter_split(tmp_path, "dev"))
