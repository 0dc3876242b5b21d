"""The index folder on disk: manifest, FAISS vectors, documents; atomic writes; checked reads.

Layout of an index folder::

    INDEX/manifest.json    what was built, how, from what (:class:`Manifest`)
    INDEX/vectors.faiss    the normalized embeddings in a FAISS index (faiss.write_index)
    INDEX/documents.arrow  texts and metadata, row i = FAISS id i (see qaembed.index.documents)

Nothing is pickled: FAISS writes its own binary format, the documents are Arrow IPC and the
manifest is JSON.

Which FAISS index (``kind``; :func:`choose_kind` resolves ``auto``):

* ``flat``: ``IndexFlatIP``, exact inner product (= cosine on unit vectors). Search costs
  ``n_docs · dim`` multiply-adds per query: at 250,000 answers × 384 dims 38 ms on one core of
  a shared 2-core CPU, so exact search is the default up to :data:`AUTO_FLAT_MAX_DOCS` documents.
  Loaded with ``IO_FLAG_MMAP_IFC``: the vectors stay in the file's pages (memory-mapped).
* ``hnsw``: ``IndexHNSWFlat`` (``M`` = 32 links, ``efConstruction`` = 200,
  ``efSearch`` = max(``ef_search``, k) per query). Sub-millisecond queries with recall near 1 at
  millions of vectors, at the cost of a slower build and ~``2·M·4`` bytes of links per vector;
  the default between :data:`AUTO_FLAT_MAX_DOCS` and :data:`AUTO_HNSW_MAX_DOCS`.
* ``ivf``: ``IndexIVFFlat`` with ``nlist = 4·sqrt(n)`` cells (at most ``n/39``), trained on at
  most ``256·nlist`` sampled vectors (seeded), searched with ``nprobe`` cells. Builds far
  faster than HNSW, so it is the default above :data:`AUTO_HNSW_MAX_DOCS`. Cells are trained
  on the documents of the first build; ``index add`` assigns new vectors to those cells.

The thresholds are options of ``qaembed index build`` (``--flat-max``, ``--hnsw-max``) and
recorded in the manifest together with the kind chosen.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qaembed.errors import ConfigError, DataError, first_problem
from qaembed.jsonfiles import read_json
from qaembed.outputs import check_output_dir, folder_content, replacing_folder
from qaembed.subprocesses import process_alive

MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.faiss"
DOCUMENTS_FILE = "documents.arrow"
INDEX_FILES = frozenset({MANIFEST_FILE, VECTORS_FILE, DOCUMENTS_FILE})  # all that an index folder holds
FORMAT_NAME = "qaembed-index"
FORMAT_VERSION = 1

IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")
AUTO_FLAT_MAX_DOCS = 250_000
AUTO_HNSW_MAX_DOCS = 5_000_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200


class IndexSettings(BaseModel):
    """How the vectors are indexed: the kind chosen, how ``auto`` chose, and the search settings."""

    model_config = ConfigDict(extra="forbid")

    kind: IndexKind
    requested: Literal["auto", "flat", "hnsw", "ivf"]
    flat_max: int = Field(AUTO_FLAT_MAX_DOCS, ge=0)
    hnsw_max: int = Field(AUTO_HNSW_MAX_DOCS, ge=0)
    hnsw_m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = Field(128, ge=1)
    nlist: int | None = None
    nprobe: int = Field(32, ge=1)
    seed: int = 0


class ModelInfo(BaseModel):
    """The model the vectors were encoded with."""

    model_config = ConfigDict(extra="forbid")

    reference: str  # what load_encoder loads: a built-in name, an absolute local path or a hub id
    resolved: str
    weights_hash: str  # hash of the loaded parameters (see model_weights_hash)
    files_hash: str | None  # hash of the weight files of a local folder (None for a hub id)
    max_seq_length: int | None
    prompts: dict[str, str] = Field(default_factory=dict)
    document_prompt: str | None = None


class FileInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bytes: int = Field(ge=0)
    hash: str


class DataSource(BaseModel):
    """One batch of documents: the first build, then one per ``index add``."""

    model_config = ConfigDict(extra="forbid")

    path: str
    splits: list[str]
    hashes: dict[str, str]  # split -> qaembed.provenance.hash_files of its file
    documents: int
    first_row: int
    time: str
    operation: Literal["build", "add"]


class Manifest(BaseModel):
    """``manifest.json``: everything needed to load, check and reproduce an index."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["qaembed-index"] = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    model: ModelInfo
    dimension: int = Field(ge=1)
    normalized: bool = True
    metric: Literal["inner_product"] = "inner_product"
    count: int = Field(ge=0)
    index: IndexSettings
    files: dict[str, FileInfo]  # the index's own files (VECTORS_FILE, DOCUMENTS_FILE) by name
    data: list[DataSource]
    built_at: str
    updated_at: str
    build_seconds: float
    qaembed_version: str
    environment: dict = Field(default_factory=dict)

    @field_validator("files")
    @classmethod
    def _index_files(cls, files: dict[str, FileInfo]) -> dict[str, FileInfo]:
        """Only the index's own file names: a listed name is joined to the folder and read (sizes, hashes), so
        ``../../etc/passwd`` or an absolute path would reach a file outside it."""
        for name in files:
            if name not in INDEX_FILES - {MANIFEST_FILE}:
                raise ValueError(f"lists {name!r}; an index folder holds only {VECTORS_FILE} and {DOCUMENTS_FILE}")
        return files


def choose_kind(requested: str, n_docs: int, flat_max: int, hnsw_max: int) -> IndexKind:
    """Resolve ``auto`` by size (see the module docstring); other kinds are returned unchanged.

    >>> choose_kind("auto", 1000, 250_000, 5_000_000), choose_kind("auto", 300_000, 250_000, 5_000_000)
    ('flat', 'hnsw')
    >>> choose_kind("auto", 6_000_000, 250_000, 5_000_000), choose_kind("ivf", 10, 250_000, 5_000_000)
    ('ivf', 'ivf')
    """
    if requested not in INDEX_KINDS:
        raise ConfigError(f"--kind {requested!r}: unknown; allowed: {', '.join(INDEX_KINDS)}")
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if n_docs <= flat_max:
        return "flat"
    return "hnsw" if n_docs <= hnsw_max else "ivf"


def ivf_nlist(n_docs: int) -> int:
    """IVF cells for ``n_docs`` vectors: 4·sqrt(n), at most n/39 so every cell has training points."""
    return max(1, min(int(4 * math.sqrt(n_docs)), n_docs // 39))


def build_faiss(vectors: np.ndarray, settings: IndexSettings):
    """A FAISS index of kind ``settings.kind`` holding ``vectors`` (rows in FAISS id order)."""
    import faiss

    n, dim = vectors.shape
    if settings.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
        index.hnsw.efSearch = settings.ef_search
    else:
        nlist = settings.nlist or ivf_nlist(n)
        settings.nlist = nlist
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(settings.seed)
        sample = np.sort(rng.choice(n, size=min(n, 256 * nlist), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        index.nprobe = min(settings.nprobe, nlist)
    add_vectors(index, vectors)
    return index


def add_vectors(index, vectors: np.ndarray, chunk: int = 65536) -> None:
    for start in range(0, len(vectors), chunk):
        index.add(np.ascontiguousarray(vectors[start : start + chunk], dtype=np.float32))


def write_faiss(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_faiss(path: Path, *, memory_map: bool):
    """(FAISS index, whether it is memory-mapped): mapped in place (``IO_FLAG_MMAP_IFC``) when asked and
    this FAISS supports it for the file's index type, else read into memory.

    A file FAISS cannot read raises :class:`DataError` naming it.
    """
    import faiss

    if not path.is_file():
        raise DataError("the index's vectors file is missing", path=str(path))
    mmap_flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)  # FAISS >= 1.9
    attempts = [mmap_flag | getattr(faiss, "IO_FLAG_READ_ONLY", 0), 0] if memory_map and mmap_flag else [0]
    for flags in attempts:
        try:
            return faiss.read_index(str(path), flags), flags != 0
        except RuntimeError as exc:
            if flags != 0:
                continue  # not mappable here: read it into memory (a bad file fails there too)
            reason = str(exc).strip().splitlines()[-1][:300]
            raise DataError(f"FAISS cannot read the vectors file ({reason}); rebuild the index", path=str(path)) from exc
    raise AssertionError("unreachable")


def file_info(path: Path) -> FileInfo:
    from qaembed.provenance import hash_files

    return FileInfo(bytes=path.stat().st_size, hash=hash_files([path]))


def check_files(folder: Path, manifest: Manifest, *, verify_hashes: bool) -> None:
    """Every file the manifest lists exists with its recorded size (and hash, when asked)."""
    from qaembed.provenance import hash_files

    for name, info in manifest.files.items():
        path = folder / name
        if path.is_symlink():  # qaembed writes the files themselves: a link would serve a file from elsewhere
            raise DataError("is a symbolic link; an index folder holds its own files (rebuild the index)",
                            path=str(path))
        if not path.is_file():
            raise DataError("file listed in manifest.json is missing", path=str(path))
        size = path.stat().st_size
        if size != info.bytes:
            what = "truncated" if size < info.bytes else "longer than recorded"
            raise DataError(f"{what}: {size} bytes, manifest.json records {info.bytes}; rebuild the index", path=str(path))
        if verify_hashes and hash_files([path]) != info.hash:
            raise DataError(f"corrupt: its hash differs from manifest.json's ({info.hash}); rebuild the index", path=str(path))


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, validated; anything else raises :class:`DataError` naming the file and field."""
    if not folder.exists():
        raise DataError("no such index folder", path=str(folder))
    if not folder.is_dir():
        raise DataError("is a file, not an index folder", path=str(folder))
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise DataError("not an index folder: manifest.json is missing (build one with qaembed index build)", path=str(path))
    payload = read_json(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise DataError(f"not a qaembed index manifest (no \"format\": \"{FORMAT_NAME}\")", path=str(path))
    if payload.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"index format version {payload.get('format_version')!r}; this qaembed reads version {FORMAT_VERSION}",
            path=str(path),
        )
    try:
        return Manifest.model_validate(payload)
    except ValidationError as exc:
        problem = first_problem(exc)
        raise DataError(problem.message, path=str(path), field=problem.field or None) from exc


def model_weights_hash(model) -> str:
    """SHA-256 (16 hex digits) over a model's parameters and buffers: names, dtypes, shapes and bytes.

    It identifies the weights themselves, wherever they were loaded from, so a loaded model can be
    compared with the one an index was built with.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def weight_files_hash(folder: str | Path) -> str | None:
    """:func:`qaembed.provenance.hash_files` over a local model folder's weight files (None if not a folder)."""
    from qaembed.provenance import hash_files

    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix in {".safetensors", ".bin", ".pt", ".pth"}),
        key=lambda p: str(p.relative_to(folder)),
    )
    return hash_files(files) if files else None


def check_out_folder(out: Path, overwrite: bool, option: str = "--out") -> None:
    """``out`` may be written: new, an empty folder, or (with ``overwrite``) an existing index.

    A non-empty folder that is not an index is never replaced, even with ``overwrite``: replacing
    deletes it, and a mistyped path must not delete someone's files.
    """
    check_output_dir(out, option)
    content = folder_content(out)  # a lock file is not content (qaembed.outputs)
    if not content:
        return
    if not _is_index_folder(out):
        raise ConfigError(
            f"{option} {out}: is a non-empty folder that is not a qaembed index (no {MANIFEST_FILE} of format "
            f"{FORMAT_NAME}); --overwrite only replaces an index. Choose another path"
        )
    if not overwrite:
        raise ConfigError(f"{option} {out}: already holds an index; pass --overwrite to replace it")
    others = [path.name for path in content if path.name not in INDEX_FILES]
    if others:  # replacing the folder would delete them
        raise ConfigError(
            f"{option} {out}: holds files that are not part of the index ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}); replacing the index would delete them. Move them, or choose "
            "another path")


def _is_index_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest.json that says it is a qaembed index (a prepared dataset's does not)."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return False
    try:
        payload = read_json(path)
    except DataError:
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT_NAME


def _recover_stale_folders(out: Path) -> None:
    """What a build killed mid-way left beside ``out``: its half-written ``.NAME.tmp-PID-*`` folder is removed;
    an ``.NAME.old-PID-*`` folder (killed between the two renames) is the earlier index, put back as ``out`` when
    ``out`` is gone, else removed. Only folders of processes that are gone and holding index files alone."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[0-9a-f]{{8}}")
    for folder in sorted(out.parent.iterdir()):
        match = pattern.fullmatch(folder.name)
        if (match is None or not folder.is_dir() or folder.is_symlink() or process_alive(int(match[2]))
                or not all(path.name in INDEX_FILES for path in folder_content(folder))):
            continue
        if match[1] == "old" and not out.exists() and _is_index_folder(folder):
            os.replace(folder, out)
        else:
            shutil.rmtree(folder)


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out``, on error it is removed.

    The new folder is complete before it takes ``out``'s name, so a reader never sees a half-written
    index (:func:`qaembed.outputs.replacing_folder`: two renames, old away and new in, the old folder
    removed last; a process that memory-maps the old files keeps reading them until it closes them; an
    ``out`` that is a link is replaced, the folder it named stays). What a killed build left beside
    ``out`` is cleaned first.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover_stale_folders(out)
    with replacing_folder(out) as tmp:
        yield tmp
