"""``qaembed mine`` end to end on a small prepared dataset with the real all-MiniLM-L6-v2.

The model is the session's copy (``load_encoder`` is replaced by one that returns it),
so the command runs everything else for real: reading, mining, the embedding cache,
copying the folder, mining.json.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.dataset import read_split, write_jsonl_records
from qaembed.errors import ConfigError, DataError
from qaembed.provenance import hash_files
from qaembed.records import QARecord


@pytest.fixture()
def cli(monkeypatch, tmp_path, _minilm_session):
    import qaembed.mining.dataset as mining_dataset

    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(mining_dataset, "load_encoder", lambda name, device=None: _minilm_session)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["mine", *map(str, args)])


def test_mine_writes_a_mined_copy_with_provenance(cli, qa_dataset, tmp_path):
    out = tmp_path / "mined"
    result = cli("--data", qa_dataset, "--out", out, "--num-negatives", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Similarity" in result.output and "relative_margin" in result.output

    for name in ("dev.jsonl", "test.jsonl", "manifest.json"):
        assert (out / name).read_bytes() == (qa_dataset / name).read_bytes()
    source, mined = read_split(qa_dataset, "train"), read_split(out, "train")
    assert [r.model_copy(update={"negatives": []}) for r in mined] == source
    assert sum(len(r.negatives) for r in mined) >= len(mined)
    by_id = {r.id: r for r in source}
    for record in mined:
        assert len(record.negatives) <= 2
        assert not {a.text for a in record.answers} & {n.text for n in record.negatives}
        for negative in record.negatives:
            owner = by_id[negative.question_id]
            assert owner.id != record.id and negative.text in {a.text for a in owner.answers}

    info = json.loads((out / "mining.json").read_text())
    provenance = info["provenance"]
    assert provenance["model"] == "minilm" and provenance["settings"]["num_negatives"] == 2
    assert provenance["data"]["input_hashes"]["train"] == hash_files([qa_dataset / "train.jsonl"])
    assert provenance["data"]["output_train_hash"] == hash_files([out / "train.jsonl"])
    assert {"git", "versions", "hardware"} <= set(provenance["environment"])
    assert provenance["effective"]["embeddings_from_cache"] == {"documents": False, "queries": False}
    stats = info["statistics"]
    assert stats["negatives"] == sum(len(r.negatives) for r in mined)
    assert stats["similarity"]["positive"]["count"] == len(mined)

    again = cli("--data", qa_dataset, "--out", out, "--num-negatives", 2, "--device", "cpu", "--overwrite")
    assert again.exit_code == 0, again.output
    info = json.loads((out / "mining.json").read_text())
    assert info["provenance"]["effective"]["embeddings_from_cache"] == {"documents": True, "queries": True}
    assert read_split(out, "train") == mined


def test_refuses_to_overwrite_or_to_write_into_the_input(cli, qa_dataset, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    result = cli("--data", qa_dataset, "--out", tmp_path / "busy")
    assert isinstance(result.exception, ConfigError) and "--overwrite" in str(result.exception)
    result = cli("--data", qa_dataset, "--out", qa_dataset)
    assert isinstance(result.exception, ConfigError) and "must differ" in str(result.exception)


def test_overwrite_replaces_the_earlier_mined_dataset_whole(cli, qa_dataset, qa_records, tmp_path):
    """A mined copy of a JSONL dataset, overwritten by one of a Parquet dataset: no split of the first may stay
    (readers take dev.jsonl before parquet/dev-*: the test split would be the old one)."""
    import shutil

    from qaembed.data.parquet import write_parquet_shards

    out = tmp_path / "mined"
    args = ("--num-negatives", 2, "--device", "cpu")
    assert cli("--data", qa_dataset, "--out", out, *args).exit_code == 0
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for split, records in (("train", qa_records), ("dev", qa_records[4:6]), ("test", qa_records[6:8])):
        write_parquet_shards(sharded, split, records)
    result = cli("--data", sharded, "--out", out, *args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["mining.json", "parquet", "train.jsonl"]
    assert [r.id for r in read_split(out, "test")] == [r.id for r in qa_records[6:8]]
    (out / "my-notes.txt").write_text("keep")  # neither a mined dataset's file nor the input's: refused, kept
    result = cli("--data", qa_dataset, "--out", out, *args, "--overwrite")
    assert isinstance(result.exception, ConfigError) and "my-notes.txt" in str(result.exception)
    assert (out / "my-notes.txt").read_text() == "keep" and (out / "parquet").is_dir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    result = cli("--data", qa_dataset, "--out", other, *args, "--overwrite")
    assert isinstance(result.exception, ConfigError) and "not a mined dataset" in str(result.exception)
    inside = tmp_path / "copy"
    shutil.copytree(qa_dataset, inside)
    result = cli("--data", inside, "--out", inside / "mined", *args)
    assert isinstance(result.exception, ConfigError) and "inside --data" in str(result.exception)
    assert not (inside / "mined").exists()


def test_bad_options_fail_before_any_work(cli, qa_dataset, tmp_path):
    result = cli("--data", qa_dataset, "--out", tmp_path / "o", "--range-min", 9, "--range-max", 4)
    assert isinstance(result.exception, ConfigError) and "range_min (9)" in str(result.exception)
    result = cli("--data", qa_dataset, "--out", tmp_path / "o", "--absolute-margin", 0.1, "--relative-margin", 0.1)
    assert isinstance(result.exception, ConfigError)
    assert not (tmp_path / "o").exists()


def test_k_larger_than_pool_and_missing_answers(cli, qa_dataset, qa_records, tmp_path):
    result = cli("--data", qa_dataset, "--out", tmp_path / "o", "--num-negatives", 100, "--range-max", 200)
    assert isinstance(result.exception, ConfigError) and "candidate pool" in str(result.exception)

    broken = tmp_path / "broken"
    write_jsonl_records(broken / "train.jsonl", qa_records[:3] + [QARecord(id="x:1", title="No answers yet")])
    result = cli("--data", broken, "--out", tmp_path / "o2")
    assert isinstance(result.exception, DataError)
    assert result.exception.line == 4 and result.exception.field == "answers"
    assert str(broken / "train.jsonl") in str(result.exception)
    result = cli("--data", tmp_path / "nowhere", "--out", tmp_path / "o3")
    assert isinstance(result.exception, DataError) and "train.jsonl is missing" in str(result.exception)


def test_a_mined_copy_is_current_until_its_settings_inputs_or_output_change(cli, qa_dataset, qa_records, tmp_path):
    from qaembed.mining import MiningConfig
    from qaembed.mining.dataset import MINING_FILE, is_current

    out = tmp_path / "mined"
    config = MiningConfig(num_negatives=2, device="cpu")
    assert not is_current(qa_dataset, out, config)  # nothing mined yet
    assert cli("--data", qa_dataset, "--out", out, "--num-negatives", 2, "--device", "cpu").exit_code == 0
    assert is_current(qa_dataset, out, config)
    assert not is_current(qa_dataset, out, config.model_copy(update={"num_negatives": 3}))  # other settings
    train = out / "train.jsonl"
    mined = train.read_text()
    train.write_text(mined.replace('"negatives"', '"negatives" ', 1))  # the mined split edited afterwards
    assert not is_current(qa_dataset, out, config)
    train.write_text(mined)
    assert is_current(qa_dataset, out, config)
    write_jsonl_records(qa_dataset / "dev.jsonl", qa_records[:3])  # an input split changed
    assert not is_current(qa_dataset, out, config)
    (out / MINING_FILE).write_text("{}")  # an older or damaged record
    assert not is_current(qa_dataset, out, config)


def _truncate(path):
    with open(path, "r+b") as file:
        file.truncate(500)


def _pickled_objects(path):
    import numpy as np

    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _nan(path):
    import numpy as np

    np.save(path, np.full(np.load(path).shape, np.nan, dtype=np.float32))


def _wrong_shape(path):
    import numpy as np

    np.save(path, np.load(path)[:5])


@pytest.mark.parametrize(("damage", "reason"), [
    (_truncate, "unreadable (corrupt or truncated: mmap length is greater than file size)"),
    (_pickled_objects, "unreadable (corrupt or truncated"),
    (_nan, "holds NaN or infinite values"),
    (_wrong_shape, "holds float32 (5, 384), expected float32 (60, 384)"),
])
def test_an_unusable_cache_entry_is_a_miss_encoded_again_rewritten_and_reported(damage, reason, cli, qa_dataset,
                                                                                tmp_path, caplog):
    import numpy as np

    out = tmp_path / "mined"
    args = ("--data", qa_dataset, "--out", out, "--num-negatives", 2, "--device", "cpu", "--overwrite")
    assert cli(*args).exit_code == 0
    mined = read_split(out, "train")
    entries = sorted((tmp_path / "cache" / "mining" / "embeddings").glob("*.npy"))
    documents = next(path for path in entries if np.load(path).shape[0] == 60)  # 60 answers, 30 questions
    expected = np.load(documents)
    damage(documents)

    caplog.clear()
    result = cli(*args)
    assert result.exit_code == 0, result.output
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{documents}: unusable cache entry (document embeddings)")
    assert reason in warnings[0] and warnings[0].endswith("; encoding them again and rewriting it")
    effective = json.loads((out / "mining.json").read_text())["provenance"]["effective"]
    assert effective["embeddings_from_cache"] == {"documents": False, "queries": True}
    assert effective["embeddings_cache_rejected"]["queries"] is None
    assert effective["embeddings_cache_rejected"]["documents"].startswith(f"{documents}: {reason}")
    assert read_split(out, "train") == mined  # the same negatives as from the sound cache
    np.testing.assert_allclose(np.load(documents), expected, atol=1e-6)  # the entry was rewritten

    assert cli(*args).exit_code == 0
    effective = json.loads((out / "mining.json").read_text())["provenance"]["effective"]
    assert effective["embeddings_from_cache"] == {"documents": True, "queries": True}
    assert effective["embeddings_cache_rejected"] == {"documents": None, "queries": None}
