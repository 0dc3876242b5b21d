"""The data a suite runs on: a prepared dataset, made once in ``OUT/data`` and reused.

``SuiteConfig.data`` is either a prepared dataset folder (``train.jsonl``, ``dev.jsonl``,
``test.jsonl``) used as is, or comma-separated sources for
:func:`qaembed.data.prepare.prepare_dataset`; ``None`` means the default Stack Exchange
sites on the data search path. Prepared data is reused on a re-run when the request
(sources and preparation options) is the same and the split files still match the hashes
in their ``manifest.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qaembed.data.dataset import SPLITS, read_json, split_path, write_json
from qaembed.errors import DataError
from qaembed.provenance import hash_files

REQUEST_FILE = "suite_request.json"  # written beside manifest.json once preparation succeeded


@dataclass
class PreparedData:
    dataset_dir: Path
    hash: str  # over the three split files
    description: str  # for the report ("3 Stack Exchange sites: ...")
    counts: dict[str, int]  # records per split in the files


def is_prepared_dataset(path: Path) -> bool:
    return path.is_dir() and all(split_path(path, s).is_file() for s in SPLITS)


def _manifest_matches_files(dataset_dir: Path) -> bool:
    manifest_path = dataset_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    files = read_json(manifest_path).get("files", {})
    return all(
        split_path(dataset_dir, s).is_file() and files.get(s, {}).get("sha256_16") == hash_files([split_path(dataset_dir, s)])
        for s in SPLITS
    )


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _describe(dataset_dir: Path) -> str:
    manifest_path = dataset_dir / "manifest.json"
    if not manifest_path.is_file():
        return f"prepared dataset {dataset_dir}"
    sources = read_json(manifest_path).get("sources", [])
    names = [str(s.get("name", s.get("path"))) for s in sources]
    return f"{len(names)} source(s): {', '.join(names)}" if names else f"prepared dataset {dataset_dir}"


def resolve_suite_data(data: str | None, out_dir: Path, progress: bool = True) -> PreparedData:
    """The prepared dataset for a suite: given, reused from ``out_dir/data``, or prepared now."""
    if data is not None and is_prepared_dataset(Path(data)):
        dataset_dir = Path(data)
    else:
        from qaembed.data.prepare import PrepareConfig, prepare_dataset

        sources = [s.strip() for s in data.split(",") if s.strip()] if data else []
        if data is not None and not sources:
            raise DataError("--data: no sources given", field="data")
        if not sources:
            from qaembed import paths

            try:
                sources = [str(p) for p in paths.default_stackexchange_sites()]
            except FileNotFoundError as exc:
                raise DataError(str(exc)) from exc
        dataset_dir = out_dir / "data"
        request: dict[str, Any] = {"sources": sources, "prepare": PrepareConfig().model_dump(mode="json")}
        request_path = dataset_dir / REQUEST_FILE
        reusable = (
            request_path.is_file()
            and read_json(request_path) == request
            and _manifest_matches_files(dataset_dir)
        )
        if not reusable:
            if request_path.exists():
                request_path.unlink()
            prepare_dataset(sources, dataset_dir, PrepareConfig(), progress=progress)
            write_json(request_path, request)
    files = [split_path(dataset_dir, s) for s in SPLITS]
    return PreparedData(
        dataset_dir=dataset_dir,
        hash=hash_files(files),
        description=_describe(dataset_dir),
        counts={s: _count_lines(f) for s, f in zip(SPLITS, files)},
    )


MINED_SUBDIR = "data_mined"


def mine_suite_data(data: PreparedData, out_dir: Path, model: str) -> PreparedData:
    """Mine negatives for ``data``'s train split with ``model`` into ``out_dir/data_mined`` (reused when current).

    Dev and test are copied unchanged, so every run still sees the same split; runs whose
    strategy ignores mined negatives train on the same questions and answers as before.
    """
    from qaembed.mining import MiningConfig, mine_dataset
    from qaembed.mining.dataset import MINING_FILE

    mined_dir = out_dir / MINED_SUBDIR
    config = MiningConfig(model=model)
    mining_file = mined_dir / MINING_FILE
    current = False
    if mining_file.is_file() and split_path(mined_dir, "train").is_file():
        provenance = read_json(mining_file)["provenance"]
        inputs = {s: hash_files([split_path(data.dataset_dir, s)]) for s in SPLITS}
        current = (
            provenance["data"]["input_hashes"] == inputs
            and provenance["settings"] == json.loads(config.model_dump_json())
            and provenance["data"]["output_train_hash"] == hash_files([split_path(mined_dir, "train")])
        )
    if not current:
        mine_dataset(data.dataset_dir, mined_dir, config, overwrite=True)
    files = [split_path(mined_dir, s) for s in SPLITS]
    return PreparedData(
        dataset_dir=mined_dir,
        hash=hash_files(files),
        description=f"{data.description}, train negatives mined by {model}",
        counts=data.counts,
    )
