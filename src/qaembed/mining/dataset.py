"""``qaembed mine`` on a prepared dataset folder: read train, mine, write a mined copy.

The output folder is the input folder copied (dev, test, manifest, stats unchanged) with
``train.jsonl`` rewritten so each question carries its mined ``negatives``, plus
``mining.json``: provenance (model and its fingerprint, every setting, hashes of the input
splits and of the written train split, :func:`qaembed.provenance.environment`) and
statistics (similarity distributions of positives and negatives, how many candidates each
filter removed, timings).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from qaembed.data.dataset import CORPUS_FILE, SPLITS, read_split, split_files, split_path, write_jsonl_records
from qaembed.data.parquet import PARQUET_DIR
from qaembed.data.prepare import MANIFEST_FILE, TEMP_PREFIX
from qaembed.data.stats import STATS_FILE
from qaembed.errors import ConfigError, DataError
from qaembed.jsonfiles import read_json, write_json
from qaembed.mining.config import MiningConfig
from qaembed.mining.embed import model_fingerprint
from qaembed.mining.mine import mine_negatives
from qaembed.model import load_encoder, resolve_model
from qaembed.outputs import check_output_dir, folder_content, writing_alone
from qaembed.paths import cache_dir
from qaembed.provenance import environment, hash_files

MINING_FILE = "mining.json"


def _input_hashes(data_dir: Path) -> dict[str, str]:
    return {s: hash_files(split_files(data_dir, s)) for s in SPLITS if split_files(data_dir, s)}


def is_current(data_dir: str | Path, mined_dir: str | Path, config: MiningConfig) -> bool:
    """Whether ``mined_dir`` holds what :func:`mine_dataset` would write for ``data_dir`` with ``config`` now.

    Current when its ``mining.json`` records the same settings and the same input split hashes,
    and its train split still has the hash recorded when it was written (not edited since).
    """
    data_dir, mined_dir = Path(data_dir), Path(mined_dir)
    mining_file, train = mined_dir / MINING_FILE, split_path(mined_dir, "train")
    if not (mining_file.is_file() and train.is_file()):
        return False
    try:
        provenance = read_json(mining_file)["provenance"]
        return (provenance["settings"] == json.loads(config.model_dump_json())
                and provenance["data"]["input_hashes"] == _input_hashes(data_dir)
                and provenance["data"]["output_train_hash"] == hash_files([train]))
    except (KeyError, TypeError, DataError):
        return False  # an older or damaged record: mine again


# What a mined (or prepared) dataset folder holds besides what is copied from --data: replaced as a whole.
_DATASET_NAMES = frozenset({*(f"{split}.jsonl" for split in SPLITS), *(f"{split}.pairs.jsonl" for split in SPLITS),
                            CORPUS_FILE, STATS_FILE, MANIFEST_FILE, MINING_FILE, PARQUET_DIR})


def _copied(data_dir: Path) -> list[Path]:
    """The entries of ``data_dir`` a mined copy takes (not its train split, earlier mining, staging folders or a
    lock file: :func:`qaembed.outputs.folder_content`)."""
    return [item for item in folder_content(data_dir)
            if item.name not in ("train.jsonl", MINING_FILE) and not item.name.startswith(TEMP_PREFIX)]


def _check_folders(data_dir: Path, out_dir: Path, overwrite: bool) -> list[Path]:
    """Refuse what cannot be written; the entries of an earlier mined dataset in ``out_dir`` to remove first."""
    if not split_files(data_dir, "train"):
        raise DataError("not a prepared dataset folder: train.jsonl is missing (nor parquet/train-*.parquet)",
                        path=str(data_dir))
    if out_dir.resolve() == data_dir.resolve():
        raise ConfigError(f"--out must differ from --data ({data_dir}); mining writes a new dataset folder")
    if data_dir.resolve() in out_dir.resolve().parents:
        raise ConfigError(f"--out {out_dir} is inside --data {data_dir}: the copy would hold itself; choose a folder "
                          "outside it")
    check_output_dir(out_dir)
    content = folder_content(out_dir)  # a lock file is not content
    if not content:
        return []
    if not overwrite:
        raise ConfigError(f"output folder {out_dir} exists and is not empty; pass --overwrite to replace its files")
    if not (out_dir / MINING_FILE).is_file():
        raise ConfigError(f"--out {out_dir}: is a non-empty folder that is not a mined dataset (no {MINING_FILE}); "
                          "--overwrite only replaces one. Choose another path")
    replaced = _DATASET_NAMES | {item.name for item in _copied(data_dir)}
    others = [item.name for item in content if item.name not in replaced]
    if others:  # an earlier copy of another --data: its files would be left beside the new ones, or deleted
        raise ConfigError(f"--out {out_dir}: holds files that neither a mined dataset nor {data_dir} has "
                          f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); move them, or choose "
                          "another path")
    return [item for item in content if item.name in replaced]


def mine_dataset(
    data_dir: str | Path,
    out_dir: str | Path,
    config: MiningConfig,
    *,
    encoder=None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Mine negatives for ``data_dir``'s train split into ``out_dir``; returns the mining.json payload.

    ``encoder`` (a loaded SentenceTransformer) skips loading ``config.model``; the
    embedding cache is then off, because the cache key could not vouch for its weights.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    _check_folders(data_dir, out_dir, overwrite)  # before any folder is made
    with writing_alone(out_dir, "qaembed mine", create=True):  # a second mine into it would mix two copies
        earlier = _check_folders(data_dir, out_dir, overwrite)  # again under the lock: a mine finished since
        return _mine_into(data_dir, out_dir, config, earlier, encoder=encoder, progress=progress)


def _mine_into(data_dir: Path, out_dir: Path, config: MiningConfig, earlier: list[Path], *, encoder,
               progress: bool) -> dict:
    train_files = split_files(data_dir, "train")
    records = read_split(data_dir, "train")

    model_id = None
    loaded_here = encoder is None
    if loaded_here:
        encoder = load_encoder(config.model, device=config.device)
        model_id = model_fingerprint(config.model)
    cache_folder = cache_dir() / "mining" if model_id is not None and config.cache else None
    result = mine_negatives(
        records, encoder, config, cache_folder=cache_folder, model_id=model_id,
        source_path=", ".join(str(path) for path in train_files), progress=progress,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    for item in earlier:  # the earlier mined dataset goes whole: none of its splits may stay beside the new ones
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    for item in _copied(data_dir):
        target = out_dir / item.name
        if item.is_dir():  # the mined train.jsonl replaces train shards: they are not copied
            skip_train = item.name == PARQUET_DIR
            shutil.copytree(item, target, dirs_exist_ok=True,
                            ignore=lambda _, names: [n for n in names if skip_train and n.startswith("train-")])
        else:
            shutil.copy2(item, target)
    write_jsonl_records(split_path(out_dir, "train"), result.records)

    payload = {
        "provenance": {
            "command": "qaembed mine",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": config.model,
            "model_resolved": resolve_model(config.model) if loaded_here else None,
            "model_fingerprint": model_id,
            "settings": config.model_dump(),
            "effective": result.search,
            "data": {
                "source": str(data_dir),
                "input_hashes": _input_hashes(data_dir),
                "output_train_hash": hash_files([split_path(out_dir, "train")]),
            },
            "environment": environment(),
        },
        "statistics": result.statistics,
        "timing": result.timing,
    }
    write_json(out_dir / MINING_FILE, payload)
    return payload
