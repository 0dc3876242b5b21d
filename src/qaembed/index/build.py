"""Build an index from a prepared Q&A dataset, or add another dataset's answers to one.

``build_index`` reads the answers of the chosen splits (:func:`read_documents_of`), encodes each
distinct text once (:func:`encode_documents`: longest texts first, in batches, one progress bar
on stderr, unit-norm float32), builds the FAISS index (:func:`qaembed.index.store.build_faiss`)
and writes the folder atomically. ``add_to_index`` encodes only the new answers with the index's
own model (checked by weights hash) and writes the grown index the same way.

Example (see ``docs/index.md``)::

    from qaembed.index import build_index, load_index
    build_index("minilm", "data/prepared", "indexes/minilm", splits=["train", "dev", "test"])
    index = load_index("indexes/minilm")
    index.search(["how long does beer keep?"], k=5)[0].hits[0].url
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qaembed.data.dataset import SPLITS, iter_split, split_files, split_path
from qaembed.errors import ConfigError, DataError
from qaembed.index.documents import documents_from_records, documents_table, read_documents, write_documents
from qaembed.index.store import (
    AUTO_FLAT_MAX_DOCS,
    AUTO_HNSW_MAX_DOCS,
    DOCUMENTS_FILE,
    MANIFEST_FILE,
    VECTORS_FILE,
    DataSource,
    IndexSettings,
    Manifest,
    ModelInfo,
    add_vectors,
    atomic_folder,
    build_faiss,
    check_files,
    check_out_folder,
    choose_kind,
    file_info,
    model_weights_hash,
    read_faiss,
    read_manifest,
    weight_files_hash,
)
from qaembed.jsonfiles import write_json
from qaembed.outputs import writing_alone

# texts handed to model.encode at a time: large enough for its own length sorting to pay off,
# small enough that the progress bar moves
ENCODE_CHUNK = 4096


def parse_splits(value: str, option: str = "--split") -> list[str]:
    """``all`` or a comma-separated list of split names, in dataset order.

    >>> parse_splits("all"), parse_splits("test,train")
    (['train', 'dev', 'test'], ['train', 'test'])
    """
    if value.strip() == "all":
        return list(SPLITS)
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in SPLITS]
    if not names or unknown:
        raise ConfigError(f"{option} {value!r}: allowed: all, or one or more of {', '.join(SPLITS)} separated by commas")
    return [split for split in SPLITS if split in names]


def read_documents_of(data_dir: Path, splits: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """The answers of ``splits`` as document dicts, and the hash of each split file read.

    A missing folder or split file, an invalid record, or an answer id seen twice raise :class:`DataError`.
    """
    from qaembed.provenance import hash_files

    if not data_dir.is_dir():
        raise DataError("no such dataset folder (give a folder written by qaembed data prepare)", path=str(data_dir))
    if (data_dir / "chunking.json").is_file():
        return read_chunk_documents(data_dir, splits)
    from qaembed.data.pairs import is_pair_dataset

    if is_pair_dataset(data_dir):
        return read_pair_documents(data_dir, splits)
    documents: list[dict] = []
    hashes: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for split in splits:
        files = split_files(data_dir, split)
        path = files[0] if len(files) == 1 else Path(data_dir) / f"parquet/{split}-*.parquet"
        if not files:
            raise DataError(f"split {split!r} is missing from the dataset (choose others with --split)",
                            path=str(split_path(data_dir, split)))
        for document in documents_from_records(iter_split(data_dir, split), split):
            if document["id"] in first_seen:
                where = first_seen[document["id"]]
                raise DataError(f"answer id {document['id']!r} appears twice (first in {where})", path=str(path))
            first_seen[document["id"]] = str(path)
            documents.append(document)
        hashes[split] = hash_files([path])
    if not documents:
        raise DataError(f"no answers to index in splits {', '.join(splits)}", path=str(data_dir))
    return documents, hashes


def read_pair_documents(data_dir: Path, splits: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """The distinct questions of a pair dataset (``qaembed data prepare --format pairs-...``) as documents:
    searching it finds a question's duplicates. ``question_id`` / ``question_title`` are the question's
    own id and text; votes 0; link, author and license from its provenance (Stack Exchange)."""
    from qaembed.data.pairs import iter_pair_split, pair_dataset_path
    from qaembed.provenance import hash_files

    documents: list[dict] = []
    seen: set[str] = set()
    hashes: dict[str, str] = {}
    for split in splits:
        path = pair_dataset_path(data_dir, split)
        for pair in iter_pair_split(data_dir, split):
            for question in (pair.question1, pair.question2):
                if question.id in seen:
                    continue
                seen.add(question.id)
                origin = question.provenance
                author = origin.author if origin else None
                documents.append({
                    "id": question.id, "text": question.text, "votes": 0.0, "accepted": False,
                    "question_id": question.id, "question_title": question.text.split("\n", 1)[0][:300],
                    "url": origin.url if origin else None, "question_url": origin.url if origin else None,
                    "author": (author.name or (f"user {author.id}" if author.id else None)) if author else None,
                    "author_url": author.url if author else None, "license": origin.license if origin else None,
                    "site": origin.site if origin else None, "created": origin.created if origin else None,
                    "split": split,
                })
        hashes[split] = hash_files([path])
    if not documents:
        raise DataError(f"no questions to index in splits {', '.join(splits)}", path=str(data_dir))
    return documents, hashes


def read_chunk_documents(data_dir: Path, splits: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """The chunks of a ``qaembed data chunk`` folder as document dicts (``question_id`` / ``question_title``:
    the chunk's document). A chunk's split is its document's (from ``qa.jsonl``); with every split
    asked for, chunks of documents no question points to are indexed too (split ``none``)."""
    import json

    from qaembed.jsonfiles import read_json
    from qaembed.provenance import hash_files

    settings = read_json(data_dir / "chunking.json")
    if not isinstance(settings, dict) or settings.get("format") != "qaembed-chunks":
        raise DataError("is not a qaembed-chunks settings file", path=str(data_dir / "chunking.json"))
    split_of: dict[str, str] = {}
    for name in ("qa.jsonl", "chunks.jsonl"):
        if not (data_dir / name).is_file():
            raise DataError("is missing from the chunk folder (rerun qaembed data chunk)", path=str(data_dir / name))
    with (data_dir / "qa.jsonl").open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                row = json.loads(line)
                split_of.setdefault(row["document_id"], row.get("split", "none"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"not a qa row ({exc})", path=str(data_dir / "qa.jsonl"), line=line_no) from exc
    every = set(splits) == set(SPLITS)
    documents: list[dict] = []
    with (data_dir / "chunks.jsonl").open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                chunk = json.loads(line)
                chunk_id, document_id, text = chunk["id"], chunk["document_id"], chunk["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"not a chunk row ({exc})", path=str(data_dir / "chunks.jsonl"), line=line_no) from exc
            split = split_of.get(document_id, "none")
            if not (every or split in splits) or not str(text).strip():
                continue
            documents.append({
                "id": chunk_id, "text": text, "votes": 0.0, "accepted": False, "question_id": document_id,
                "question_title": f"{document_id} (characters {chunk.get('start')}–{chunk.get('end')})", "url": None,
                "question_url": None, "author": None, "author_url": None, "license": None, "site": None,
                "created": None, "split": split,
            })
    if not documents:
        raise DataError(f"no chunks to index in splits {', '.join(splits)}", path=str(data_dir))
    return documents, {"chunks": hash_files([data_dir / "chunks.jsonl"]), "qa": hash_files([data_dir / "qa.jsonl"])}


def encode_documents(model, texts: Sequence[str], *, batch_size: int, progress: bool = True) -> np.ndarray:
    """(len(texts), dim) unit-norm float32 embeddings, each distinct text encoded once, longest first.

    Uses ``model.encode_document`` (so a model's document prompt applies). A model that returns
    token embeddings (late interaction, MaxSim) is refused: only single-vector models are indexed.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    codes, uniques = pd.factorize(pd.Series(list(texts), dtype=object), sort=False)
    lengths = np.fromiter((len(text) for text in uniques), dtype=np.int64, count=len(uniques))
    order = np.argsort(-lengths, kind="stable")  # longest first, as sentence-transformers does
    out: np.ndarray | None = None
    bar = tqdm(total=len(uniques), desc="encode", unit="doc", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for start in range(0, len(order), ENCODE_CHUNK):
            rows = order[start : start + ENCODE_CHUNK]
            chunk = np.asarray(
                model.encode_document(
                    [uniques[i] for i in rows], batch_size=batch_size, convert_to_numpy=True,
                    normalize_embeddings=True, show_progress_bar=False,
                )
            )
            if chunk.ndim != 2:
                raise ConfigError(
                    f"the model returns embeddings of shape {chunk.shape[1:]} per text, not one vector: "
                    "late-interaction (MaxSim) models cannot be indexed yet"
                )
            if out is None:
                out = np.empty((len(uniques), chunk.shape[1]), dtype=np.float32)  # (n_unique, dim)
            out[rows] = chunk
            bar.update(len(rows))
    finally:
        bar.close()
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))  # in place: unit norm
    if len(uniques) == len(codes):  # no repeated text: rows are already in input order
        return out
    return out[codes]  # (n_texts, dim)


def model_info(reference: str, model) -> ModelInfo:
    """What the manifest records about the model ``reference`` loaded as ``model``."""
    from qaembed.model import BUILTIN_MODELS, resolve_model

    resolved = resolve_model(reference)
    if reference not in BUILTIN_MODELS and Path(resolved).is_dir():
        reference = str(Path(resolved).resolve())  # a local folder: absolute, so the index loads it from anywhere
    return ModelInfo(
        reference=reference,
        resolved=resolved,
        weights_hash=model_weights_hash(model),
        files_hash=weight_files_hash(resolved),
        max_seq_length=getattr(model, "max_seq_length", None),
        prompts=dict(getattr(model, "prompts", None) or {}),
        document_prompt="document" if "document" in (getattr(model, "prompts", None) or {}) else None,
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_index(
    model: str,
    data_dir: str | Path,
    out: str | Path,
    *,
    splits: Sequence[str] = SPLITS,
    kind: str = "auto",
    batch_size: int = 64,
    flat_max: int = AUTO_FLAT_MAX_DOCS,
    hnsw_max: int = AUTO_HNSW_MAX_DOCS,
    ef_search: int = 128,
    nprobe: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    device: str | None = None,
    encoder=None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Encode the answers of ``data_dir``'s ``splits`` with ``model`` and write an index folder at ``out``.

    ``encoder`` (an already loaded SentenceTransformer for ``model``) skips loading it. Every
    option and the output folder are checked before any encoding. Returns the manifest written.
    """
    from qaembed.model import check_device, load_encoder
    from qaembed.provenance import environment, library_versions

    data_dir, out = Path(data_dir), Path(out)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    for option, value in (("--flat-max", flat_max), ("--hnsw-max", hnsw_max)):
        if value < 0:
            raise ConfigError(f"{option} must be >= 0, got {value}")
    if ef_search < 1 or nprobe < 1:
        raise ConfigError(f"--ef-search and --nprobe must be >= 1, got {ef_search} and {nprobe}")
    choose_kind(kind, 0, flat_max, hnsw_max)  # validates the name
    if out.exists() and data_dir.exists() and out.resolve() == data_dir.resolve():
        raise ConfigError(f"--out must differ from --data ({data_dir})")
    check_out_folder(out, overwrite)  # before any folder is made
    with writing_alone(out, "qaembed index build", create=True):  # two builds would each replace the other's index
        check_out_folder(out, overwrite)  # again under the lock: a build that finished since left an index there
        check_device(device)
        documents, hashes = read_documents_of(data_dir, splits)

        started = time.perf_counter()
        encoder = encoder if encoder is not None else load_encoder(model, device=device)
        info = model_info(model, encoder)
        vectors = encode_documents(encoder, [d["text"] for d in documents], batch_size=batch_size, progress=progress)
        settings = IndexSettings(
            kind=choose_kind(kind, len(documents), flat_max, hnsw_max), requested=kind, flat_max=flat_max,
            hnsw_max=hnsw_max, ef_search=ef_search, nprobe=nprobe, seed=seed,
        )
        if settings.kind == "ivf" and len(documents) < 39:
            raise ConfigError(f"--kind ivf needs at least 39 documents to train its cells; the data has {len(documents)}")
        if log:
            log(f"indexing {len(documents):,} answers as {settings.kind} (requested {kind})")
        faiss_index = build_faiss(vectors, settings)
        now = _now()
        source = DataSource(
            path=str(data_dir.resolve()), splits=list(splits), hashes=hashes, documents=len(documents), first_row=0,
            time=now, operation="build",
        )
        with atomic_folder(out) as folder:
            manifest = _write_folder(
                folder, faiss_index, documents_table(documents), info=info, settings=settings, dimension=vectors.shape[1],
                data=[source], built_at=now, seconds=time.perf_counter() - started,
                version=library_versions()["qaembed"], environment=environment(),
            )
        return manifest


def _write_folder(folder: Path, faiss_index, table, *, info, settings, dimension, data, built_at, seconds, version, environment) -> Manifest:
    from qaembed.index.store import write_faiss

    write_faiss(faiss_index, folder / VECTORS_FILE)
    write_documents(folder / DOCUMENTS_FILE, table)
    manifest = Manifest(
        model=info, dimension=dimension, count=table.num_rows, index=settings,
        files={name: file_info(folder / name) for name in (VECTORS_FILE, DOCUMENTS_FILE)},
        data=data, built_at=built_at, updated_at=_now(), build_seconds=round(seconds, 3),
        qaembed_version=version, environment=environment,
    )
    if faiss_index.ntotal != manifest.count or faiss_index.d != dimension:
        raise RuntimeError(f"internal: FAISS holds {faiss_index.ntotal}×{faiss_index.d}, documents {manifest.count}×{dimension}")
    write_json(folder / MANIFEST_FILE, manifest.model_dump(mode="json"))
    return manifest


def add_to_index(
    index_dir: str | Path,
    data_dir: str | Path,
    *,
    splits: Sequence[str] = SPLITS,
    batch_size: int = 64,
    model: str | None = None,
    allow_model_mismatch: bool = False,
    device: str | None = None,
    encoder=None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Append the answers of ``data_dir``'s ``splits`` to the index at ``index_dir``; returns the new manifest.

    New answers are encoded with the manifest's model (or ``model``/``encoder``, which must have
    the same weights hash unless ``allow_model_mismatch``). An answer id already in the index
    raises :class:`DataError` before any encoding. The index keeps its kind and settings.
    """
    from qaembed.model import check_device, load_encoder
    from qaembed.provenance import library_versions

    index_dir, data_dir = Path(index_dir), Path(data_dir)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    check_device(device)
    read_manifest(index_dir)  # an index is there, before anything is written into its folder
    # two adds would each write the index grown by their answers only: the first one's would be lost
    with writing_alone(index_dir, "qaembed index add", option="--index"):
        manifest = read_manifest(index_dir)  # again under the lock: an add that finished since grew the index
        check_files(index_dir, manifest, verify_hashes=True)
        table = read_documents(index_dir / DOCUMENTS_FILE, memory_map=False)
        documents, hashes = read_documents_of(data_dir, splits)
        existing = set(table.column("id").to_pylist())
        clashes = [d["id"] for d in documents if d["id"] in existing]
        if clashes:
            more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
            raise DataError(
                f"{len(clashes)} answer id(s) of {data_dir} are already in the index: "
                f"{', '.join(repr(c) for c in clashes[:3])}{more}; add only new answers",
                path=str(index_dir),
            )
        faiss_index, _ = read_faiss(index_dir / VECTORS_FILE, memory_map=False)
        if faiss_index.ntotal != manifest.count:
            raise DataError(f"holds {faiss_index.ntotal} vectors, manifest.json says {manifest.count}", path=str(index_dir / VECTORS_FILE))

        started = time.perf_counter()
        if encoder is None:
            encoder = load_encoder(model or manifest.model.reference, device=device)
        from qaembed.index.search import check_model

        check_model(manifest, encoder, allow_mismatch=allow_model_mismatch, index_dir=index_dir)
        vectors = encode_documents(encoder, [d["text"] for d in documents], batch_size=batch_size, progress=progress)
        if vectors.shape[1] != manifest.dimension:
            raise ConfigError(f"the model gives {vectors.shape[1]}-dimensional embeddings; the index holds {manifest.dimension}")
        add_vectors(faiss_index, vectors)
        import pyarrow as pa

        grown = pa.concat_tables([table, documents_table(documents)])
        settings = manifest.index
        if log:
            log(f"added {len(documents):,} answers; the index now holds {grown.num_rows:,} ({settings.kind})")
            if settings.kind == "flat" and grown.num_rows > settings.flat_max and settings.requested == "auto":
                log(f"note: {grown.num_rows:,} documents is above --flat-max {settings.flat_max:,}; "
                    "qaembed index build --overwrite would choose an approximate index")
        source = DataSource(
            path=str(data_dir.resolve()), splits=list(splits), hashes=hashes, documents=len(documents),
            first_row=manifest.count, time=_now(), operation="add",
        )
        with atomic_folder(index_dir) as folder:
            written = _write_folder(
                folder, faiss_index, grown, info=manifest.model, settings=settings, dimension=manifest.dimension,
                data=[*manifest.data, source], built_at=manifest.built_at,
                seconds=manifest.build_seconds + time.perf_counter() - started,
                version=library_versions()["qaembed"], environment=manifest.environment,
            )
        return written
