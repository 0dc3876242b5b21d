"""Turn a SOURCE argument into the adapter that reads it.

==========================================  ===========================================
SOURCE                                      adapter
==========================================  ===========================================
folder with ``Posts.xml`` (or the file)      :class:`~qaembed.data.stackexchange.StackExchangeDump`
folder with ``Questions.csv``+``Answers.csv``  :class:`~qaembed.data.kaggle.KaggleCsvPair`
``*.json``                                  :class:`~qaembed.data.ranked_json.RankedQaJson`
``*.jsonl[.gz]`` or a prepared folder       :class:`~qaembed.data.jsonl.CanonicalJsonl`
``hf:NAME[:SPLIT]``                         :class:`~qaembed.data.hf.HuggingFaceDataset`
a site name, e.g. ``beer.stackexchange.com``  the site's folder on the data search path
==========================================  ===========================================

Anything else is a :class:`~qaembed.errors.DataError` saying what was looked for.
"""

from __future__ import annotations

from pathlib import Path

from qaembed import paths
from qaembed.data.adapter import SourceAdapter
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.dataset import SPLITS, split_files
from qaembed.errors import DataError


def open_source(
    spec: str | Path, *, skip_bad: bool = False, encoding: str | None = None, hf_columns: dict[str, str] | None = None,
    spill_dir: str | Path | None = None, progress: bool = True, workers: int = 1,
) -> SourceAdapter:
    """The adapter for one SOURCE argument (see the module docstring), with its own bad-record policy;
    ``workers``: processes for the per-row work of a large Stack Exchange ``Posts.xml``."""
    policy = BadRecordPolicy(skip=skip_bad)
    text = str(spec)
    if text.startswith("hf:"):
        from qaembed.data.hf import HuggingFaceDataset

        name, _, split = text[3:].partition(":")
        if not name:
            raise DataError("expected hf:NAME[:SPLIT]", path=text)
        return HuggingFaceDataset(name, split=split or "train", columns=hf_columns, policy=policy)

    path = Path(spec)
    if not path.exists():
        site_folder = paths.find_stackexchange_site(text) if "/" not in text else None
        if site_folder is None:
            raise DataError("no such file or folder (and no Stack Exchange site of that name on the data search path: "
                            + ", ".join(str(p) for p in paths.data_search_path()) + ")", path=text)
        path = site_folder
    if path.is_file() and path.name == "Posts.xml":
        path = path.parent
    if path.is_dir():
        if (path / "Posts.xml").is_file():
            from qaembed.data.stackexchange import StackExchangeDump

            return StackExchangeDump(path, policy=policy, spill_dir=spill_dir, progress=progress, workers=workers)
        if (path / "Questions.csv").is_file() and (path / "Answers.csv").is_file():
            from qaembed.data.kaggle import KaggleCsvPair

            return KaggleCsvPair(path, encoding=encoding, policy=policy, spill_dir=spill_dir, progress=progress)
        if any(split_files(path, split) for split in SPLITS):
            from qaembed.data.jsonl import CanonicalJsonl

            return CanonicalJsonl(path, policy=policy)
        raise DataError("folder is not a known source: expected Posts.xml (Stack Exchange dump), "
                        "Questions.csv + Answers.csv (Kaggle), or train/dev/test.jsonl (prepared dataset)",
                        path=str(path))
    if path.suffix == ".json":
        from qaembed.data.ranked_json import RankedQaJson

        return RankedQaJson(path, policy=policy)
    if path.suffix == ".jsonl" or path.name.endswith(".jsonl.gz"):
        from qaembed.data.jsonl import CanonicalJsonl

        return CanonicalJsonl(path, policy=policy)
    raise DataError("file is not a known source: expected *.json (ranked_qa), *.jsonl or *.jsonl.gz (canonical) "
                    "or Posts.xml", path=str(path))
