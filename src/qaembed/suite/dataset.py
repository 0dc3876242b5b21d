"""The data a suite runs on: a prepared dataset, made once in ``OUT/data`` and reused.

``SuiteConfig.data`` is either a prepared dataset folder (``train.jsonl``, ``dev.jsonl``,
``test.jsonl``) used as is, or comma-separated sources for
:func:`qaembed.data.prepare.prepare_dataset` (with the suite's
:class:`~qaembed.data.prepare.PrepareConfig`, e.g. a date split); ``None`` means the
default data (:func:`qaembed.paths.default_data_sources`: the Stack Exchange sites on the
data search path, else the sample embedded in the package), and
:attr:`PreparedData.notice` then says in one line which data that is and how to use
your own. A prepared *pair* dataset (``qaembed data prepare --format pairs-*``, ``docs/pairs.md``)
is used as it is too (``kind == "pairs"``: counts are pairs); pair data is never prepared by the
suite from sources. Prepared data is reused on a re-run when the request (sources and preparation
options) is the same and the split files still match the hashes in their
``manifest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaembed.data.dataset import SPLITS, content_files, split_files
from qaembed.data.parquet import count_parquet_records
from qaembed.errors import ConfigError, DataError
from qaembed.jsonfiles import read_json, write_json
from qaembed.outputs import refuse_link
from qaembed.provenance import hash_files

if TYPE_CHECKING:
    from qaembed.data.prepare import PrepareConfig

REQUEST_FILE = "suite_request.json"  # written beside manifest.json once preparation succeeded


@dataclass
class PreparedData:
    dataset_dir: Path
    hash: str  # over the three split files (and corpus.jsonl)
    description: str  # for the report ("3 source(s): ...", "embedded sample of 5 Stack Exchange sites ...")
    counts: dict[str, int]  # records (pairs, for pair data) per split in the files
    notice: str | None = None  # default data only: one line saying which data and how to use your own
    kind: str = "qa"  # "qa" or "pairs" (duplicate-question pair data)


def is_prepared_dataset(path: Path) -> bool:
    return path.is_dir() and all(split_files(path, s) for s in SPLITS)


def _manifest_matches_files(dataset_dir: Path) -> bool:
    manifest_path = dataset_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    files = read_json(manifest_path).get("files", {})
    return all(
        split_files(dataset_dir, s) and files.get(s, {}).get("sha256_16") == hash_files(split_files(dataset_dir, s))
        for s in SPLITS
    )


def _count_records(files: list[Path]) -> int:
    """Records of one split: non-empty JSONL lines, or the rows in the Parquet shards' footers."""
    if files and files[0].suffix == ".jsonl":
        with files[0].open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    return count_parquet_records(files)


def _describe(dataset_dir: Path) -> str:
    manifest_path = dataset_dir / "manifest.json"
    if not manifest_path.is_file():
        return f"prepared dataset {dataset_dir}"
    sources = read_json(manifest_path).get("sources", [])
    names = [str(s.get("name", s.get("path"))) for s in sources]
    return f"{len(names)} source(s): {', '.join(names)}" if names else f"prepared dataset {dataset_dir}"


def resolve_suite_data(
    data: str | list[str] | None, out_dir: Path, prepare: PrepareConfig | None = None, progress: bool = True,
) -> PreparedData:
    """The prepared dataset for a suite: given, reused from ``out_dir/data``, or prepared now.

    ``data``: one prepared dataset folder, or the sources to prepare (a list, or a comma-separated
    string); None: the default sites.

    ``prepare`` (default :class:`~qaembed.data.prepare.PrepareConfig()`) is how sources are
    prepared; it is part of the reuse key. A prepared folder given as ``data`` is used as
    it is, so non-default ``prepare`` options with one are a :class:`ConfigError`.
    """
    from qaembed.data.prepare import PrepareConfig, prepare_dataset

    prepare = prepare or PrepareConfig()
    notice = description = None
    sources = [part.strip() for part in data.split(",") if part.strip()] if isinstance(data, str) else data
    if data is not None and not sources:
        raise DataError("--data: no sources given", field="data")
    folder = sources[0] if sources is not None and len(sources) == 1 else None  # one prepared folder?
    if folder is not None and Path(folder).is_dir():
        from qaembed.data.pairs import is_pair_dataset

        if is_pair_dataset(folder):
            return _pair_data(Path(folder), prepare)
    if folder is not None and is_prepared_dataset(Path(folder)):
        if prepare != PrepareConfig():
            changed = ", ".join(f"{k}={v}" for k, v in prepare.model_dump(mode="json", exclude_defaults=True).items())
            raise ConfigError(f"--data {folder} is a prepared dataset (used as it is), so the preparation options "
                              f"({changed}) cannot apply; give the sources instead (or prepare the folder again "
                              f"with `qaembed data prepare {folder} --out DIR ...`)")
        dataset_dir = Path(folder)
    else:
        if not sources:
            from qaembed import paths

            try:
                default = paths.default_data_sources()
            except FileNotFoundError as exc:
                raise DataError(str(exc)) from exc
            sources, notice = default.sources, default.notice
            description = default.description
        dataset_dir = refuse_link(out_dir / "data")  # prepared (and replaced) here: never where a link points
        request: dict[str, Any] = {"sources": sources, "prepare": prepare.model_dump(mode="json")}
        request_path = dataset_dir / REQUEST_FILE
        reusable = (
            request_path.is_file()
            and read_json(request_path) == request
            and _manifest_matches_files(dataset_dir)
        )
        if not reusable:
            if request_path.exists():
                request_path.unlink()
            # the suite's own folder: replacing what an earlier suite prepared there is intended
            prepare_dataset(sources, dataset_dir, prepare, progress=progress, overwrite=True)
            write_json(request_path, request)
    files = {s: split_files(dataset_dir, s) for s in SPLITS}
    return PreparedData(
        dataset_dir=dataset_dir,
        hash=hash_files(content_files(dataset_dir)),  # the splits, and corpus.jsonl when there is one
        description=description or _describe(dataset_dir),
        counts={s: _count_records(files[s]) for s in SPLITS},
        notice=notice,
    )


def _pair_data(dataset_dir: Path, prepare: PrepareConfig) -> PreparedData:
    """A prepared pair dataset, used as it is (the split files must be there and match the manifest)."""
    from qaembed.data.pairs import pair_dataset_path
    from qaembed.data.prepare import PrepareConfig

    if prepare != PrepareConfig():
        raise ConfigError(f"--data {dataset_dir} is pair data, used as it is: a date split (test_after/dev_after) "
                          "applies to Q&A data only")
    files = [pair_dataset_path(dataset_dir, s) for s in SPLITS]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DataError(f"pair dataset lacks {', '.join(missing)} (prepare it again with `qaembed data prepare "
                        "--format pairs-...`)", path=str(dataset_dir))
    manifest = read_json(dataset_dir / "manifest.json")
    stale = [s for s, f in zip(SPLITS, files)
             if manifest.get("files", {}).get(s, {}).get("sha256_16") not in (None, hash_files([f]))]
    if stale:
        raise DataError(f"split file(s) {', '.join(stale)} changed since the manifest was written (prepare the "
                        "data again)", path=str(dataset_dir / "manifest.json"))
    return PreparedData(
        dataset_dir=dataset_dir, hash=hash_files(files),
        description=f"duplicate-question pairs: {_describe(dataset_dir)} ({manifest.get('format', 'pairs')}, split by "
                    f"cluster: {manifest.get('split', {}).get('split_by', '?')})",
        counts={s: _count_records([f]) for s, f in zip(SPLITS, files)}, kind="pairs",
    )


MINED_SUBDIR = "data_mined"


def mine_suite_data(data: PreparedData, out_dir: Path, model: str) -> PreparedData:
    """Mine negatives for ``data``'s train split with ``model`` into ``out_dir/data_mined`` (reused when current).

    Dev and test are copied unchanged, so every run still sees the same split; runs whose
    strategy ignores mined negatives train on the same questions and answers as before.
    """
    from qaembed.mining import MiningConfig, mine_dataset
    from qaembed.mining.dataset import is_current

    mined_dir = refuse_link(out_dir / MINED_SUBDIR)  # replaced when stale: never where a link points
    config = MiningConfig(model=model)
    if not is_current(data.dataset_dir, mined_dir, config):
        mine_dataset(data.dataset_dir, mined_dir, config, overwrite=True)
    return PreparedData(
        dataset_dir=mined_dir,
        hash=hash_files(content_files(mined_dir)),
        description=f"{data.description}, train negatives mined by {model}",
        counts=data.counts,
        notice=data.notice,
    )
