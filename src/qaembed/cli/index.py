"""``qaembed index build|add`` and ``qaembed search``: a persistent index of answers, and search over it.

Examples::

    qaembed index build --model runs/infonce/model --data data/prepared --out indexes/infonce
    qaembed index build --model minilm --data data/prepared --out indexes/minilm --split test --kind hnsw
    qaembed index add --index indexes/minilm --data data/more
    qaembed search --index indexes/minilm "How long does an opened bottle of beer keep?" -k 5
    qaembed search --index indexes/minilm --queries questions.txt --json

See docs/index.md for the folder format, the FAISS index choice and memory-mapping.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from qaembed.errors import ConfigError, DataError
from qaembed.records import utf8_problem

index_app = typer.Typer(
    name="index", help="Build a persistent search index of a dataset's answers, or add answers to one.",
    no_args_is_help=True,
)


def _log(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _quiet_model_loading():
    """No "Loading weights" bar from transformers while a search loads its model (restored after)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


@index_app.command("build")
def build_command(
    data: Path = typer.Option(..., help="Prepared dataset folder (DIR/{train,dev,test}.jsonl); its answers are indexed."),
    out: Path = typer.Option(..., help="Index folder to write (manifest.json, vectors.faiss, documents.arrow)."),
    model: str = typer.Option("minilm", help="Model: built-in name, local folder or Hugging Face id."),
    split: str = typer.Option("all", help="Splits whose answers are indexed: all, or e.g. test or train,dev."),
    batch_size: int = typer.Option(64, help="Texts per encoding batch."),
    kind: str = typer.Option("auto", help="FAISS index: flat (exact), hnsw, ivf, or auto (by size: see --flat-max)."),
    flat_max: int = typer.Option(250_000, help="auto: exact flat index up to this many documents."),
    hnsw_max: int = typer.Option(5_000_000, help="auto: HNSW up to this many documents, IVF above."),
    ef_search: int = typer.Option(128, help="HNSW: candidates explored per query (at least k)."),
    nprobe: int = typer.Option(32, help="IVF: cells searched per query."),
    seed: int = typer.Option(0, help="Seed of IVF training."),
    device: Optional[str] = typer.Option(None, help="torch device for encoding (default: sentence-transformers' choice)."),
    overwrite: bool = typer.Option(False, help="Replace an existing index at --out."),
) -> None:
    """Encode a dataset's answers once and write a persistent index (see docs/index.md)."""
    from qaembed.index import build_index, parse_splits

    manifest = build_index(
        model, data, out, splits=parse_splits(split), kind=kind, batch_size=batch_size, flat_max=flat_max,
        hnsw_max=hnsw_max, ef_search=ef_search, nprobe=nprobe, seed=seed, overwrite=overwrite, device=device,
        log=_log,
    )
    typer.echo(
        f"wrote {out}: {manifest.count:,} answers, {manifest.index.kind} index, dimension {manifest.dimension}, "
        f"model {manifest.model.reference} (weights {manifest.model.weights_hash}), {manifest.build_seconds:.1f}s"
    )


@index_app.command("add")
def add_command(
    index: Path = typer.Option(..., help="Index folder written by qaembed index build."),
    data: Path = typer.Option(..., help="Prepared dataset folder whose answers are added (ids must be new)."),
    split: str = typer.Option("all", help="Splits whose answers are added: all, or e.g. test or train,dev."),
    batch_size: int = typer.Option(64, help="Texts per encoding batch."),
    model: Optional[str] = typer.Option(None, help="Model to encode with (default: the index's own)."),
    allow_model_mismatch: bool = typer.Option(
        False, "--allow-model-mismatch", help="Encode with --model even if its weights differ from the index's."
    ),
    device: Optional[str] = typer.Option(None, help="torch device for encoding."),
) -> None:
    """Append a dataset's answers to an index, encoding only them with the index's model."""
    from qaembed.index import add_to_index, parse_splits

    manifest = add_to_index(
        index, data, splits=parse_splits(split), batch_size=batch_size, model=model,
        allow_model_mismatch=allow_model_mismatch, device=device, log=_log,
    )
    typer.echo(f"updated {index}: {manifest.data[-1].documents:,} answers added, {manifest.count:,} in all")


def read_queries(path: Path) -> list[str]:
    """Queries from a file: JSONL with a ``query`` field (``.jsonl``, or a first line starting with ``{``)
    or plain text, one query per line. Blank lines are skipped; an empty ``query`` or a file without
    queries raises :class:`DataError` naming the file (and line)."""
    if not path.is_file():
        raise DataError("no such queries file", path=str(path))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)) from exc
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataError("holds no queries (one per line, or JSONL with a \"query\" field)", path=str(path))
    if path.suffix != ".jsonl" and not numbered[0][1].lstrip().startswith("{"):
        return [line.strip() for _, line in numbered]
    queries = []
    for number, line in numbered:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=number) from exc
        query = item.get("query") if isinstance(item, dict) else None
        if not isinstance(query, str) or not query.strip():
            problem = "is missing" if not isinstance(item, dict) or "query" not in item else "is empty or not text"
            raise DataError(f"the query {problem}", path=str(path), line=number, field="query")
        problem = utf8_problem(query)  # a JSON "\ud800" escape
        if problem:
            raise DataError(problem, path=str(path), line=number, field="query")
        queries.append(query.strip())
    return queries


def _print_results(results, clamped_note: str | None) -> None:
    for number, result in enumerate(results):
        if number:
            typer.echo("")
        typer.secho(f"query: {result.query}", bold=True)
        for hit in result.hits:
            accepted = " accepted" if hit.accepted else ""
            typer.echo(f"{hit.rank:>3}. {hit.score:.4f}  votes {hit.votes:g}{accepted}  {hit.question_title}")
            if hit.url:
                typer.echo(f"     {hit.url}")
            attribution = ", ".join(part for part in (f"by {hit.author}" if hit.author else None, hit.license) if part)
            if attribution:
                typer.echo(f"     {attribution}")
            snippet = " ".join(hit.text.split())
            typer.echo(f"     {snippet[:200]}{'...' if len(snippet) > 200 else ''}")
    if clamped_note:
        _log(clamped_note)


def search_command(
    query: Optional[str] = typer.Argument(None, help="The question to search for (or use --queries)."),
    index: Path = typer.Option(..., help="Index folder written by qaembed index build."),
    k: int = typer.Option(10, "-k", "--top-k", help="Answers per query (above the index size: all of them)."),
    queries: Optional[Path] = typer.Option(
        None, help="File of queries: one per line, or JSONL with a \"query\" field."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    model: Optional[str] = typer.Option(None, help="Query model (default: the one the index was built with)."),
    allow_model_mismatch: bool = typer.Option(
        False, "--allow-model-mismatch", help="Search with --model even if its weights differ from the index's."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the index files' hashes when loading."),
    device: Optional[str] = typer.Option(None, help="torch device for encoding queries."),
) -> None:
    """Search an index: ranked answers with score, votes, question title, link and attribution."""
    from qaembed.index import check_queries, load_index
    from qaembed.model import check_device

    if (query is None) == (queries is None):
        raise ConfigError("give one question as an argument, or --queries FILE (not both)")
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    check_device(device)
    if query is not None:
        problem = utf8_problem(query)  # Python reads a byte of argv that is not UTF-8 as a lone surrogate
        if problem:
            raise DataError(f"query: {problem}; the argument holds a byte that is not UTF-8")
        if not query.strip():
            raise DataError("the question is empty")
    texts = [query] if query is not None else read_queries(queries)
    check_queries(texts)
    with _quiet_model_loading():
        loaded = load_index(index, model, device=device, allow_model_mismatch=allow_model_mismatch, verify=verify)
    effective_k = loaded.check_k(k)
    note = f"note: -k {k} is more than the index holds; showing all {effective_k}" if effective_k < k else None
    results = loaded.search(texts, effective_k)
    if as_json:
        payload = {"index": str(index), "model": loaded.manifest.model.reference, "k": effective_k,
                   "results": [result.to_dict() for result in results]}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        if note:
            _log(note)
    else:
        _print_results(results, note)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search_command)
