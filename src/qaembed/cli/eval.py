"""``qaembed eval``: evaluate a model on a prepared Q&A dataset split or a BEIR dataset.

Examples::

    qaembed eval --model minilm --data data/prepared --split test
    qaembed eval --model runs/infonce/model --data data/prepared --distractors train --out results/infonce
    qaembed eval --model minilm --data beir:../shared/data/beir/scifact --json
    qaembed eval --model minilm --data data/qqp-pairs --split test --out results/qqp-base   # pair data (manifest)
    qaembed eval --model runs/maxsim/model --data data/prepared --scorer maxsim --out results/maxsim
    qaembed eval --model runs/maxsim/model --data data/prepared --distractors train --scorer maxsim --maxsim-search ann
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from qaembed.errors import ConfigError, first_problem
from qaembed.options import SEED_MAX
from qaembed.outputs import check_output_dir, refuse_link, writing_alone

BEIR_PREFIX = "beir:"
TOKEN_STORE_DIR = "maxsim_tokens"  # --scorer maxsim --out DIR: the corpus' token embeddings (reused by a re-run)
SCORERS = ("cosine", "maxsim")

_SECTION_TITLES = {
    "retrieval": "Full-corpus retrieval (all answers)",
    "within": "Within-question ranking (own answers)",
    "in_batch": "In-batch (other questions' top answers)",
    "classification": "Pair classification (cosine, thresholds from --threshold-split)",
}


_PAIR_SECTION_TITLES = {"retrieval": "Duplicate retrieval (corpus: all questions of the split, query excluded)"}


def _print_tables(result, title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{escape(title)}[/bold]")  # paths are text: "[/x]" in one is not markup
    for section, metrics in result.sections().items():
        titles = _SECTION_TITLES | (_PAIR_SECTION_TITLES if result.info.get("protocol") == "pairs" else {})
        table = Table(title=titles.get(section, section), title_justify="left", min_width=44)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in metrics.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
    console.print("counts: " + ", ".join(f"{name}={value}" for name, value in result.counts.items()))
    for note in result.info.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    maxsim = result.info.get("maxsim")
    if maxsim:
        console.print(f"maxsim: {maxsim['search']} search over {maxsim['documents']} documents "
                      f"({maxsim['stored_tokens']} tokens of dim {maxsim['token_dim']} in {maxsim['store']}"
                      f"{', reused' if maxsim['store_reused'] else ''})")
    console.print(f"encode {result.info['encode_seconds']:.1f}s, total {result.info['total_seconds']:.1f}s")


# EvalConfig field -> the option that sets it (for validation messages)
_CONFIG_OPTIONS = {"encode_batch_size": "--batch-size", "maxsim_block_mb": "--maxsim-memory-mb",
                   "maxsim_ann_tokens": "--ann-tokens", "maxsim_ann_nprobe": "--ann-nprobe",
                   "maxsim_ann_nlist": "--ann-nlist", "maxsim_ann_recall_queries": "--ann-recall-queries"}


def _is_pair_data(data: str) -> bool:
    from qaembed.data.pairs import is_pair_dataset

    return not data.startswith(BEIR_PREFIX) and Path(data).is_dir() and is_pair_dataset(data)


def check_split(data: str, split: str, option: str) -> None:
    """Raise :class:`ConfigError` naming ``option`` and the allowed splits unless ``data`` has ``split``."""
    from qaembed.data.dataset import SPLITS

    if not data.startswith(BEIR_PREFIX):
        if split not in SPLITS:
            raise ConfigError(f"{option} {split!r}: not a split of a prepared dataset; allowed: {', '.join(SPLITS)}")
        return
    qrels = Path(data[len(BEIR_PREFIX) :]) / "qrels"
    available = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
    if available and split not in available:
        raise ConfigError(f"{option} {split!r}: {qrels} has no {split}.tsv; allowed: {', '.join(available)}")


def _check_out(out: Path, overwrite: bool, scorer: str) -> None:
    """Refuse an ``--out`` that cannot be written, or that holds a result, unless ``overwrite``; with ``maxsim``,
    a link where the token store is written (the writes would go where it points)."""
    from qaembed.evaluate.result import PER_QUESTION_FILE, SUMMARY_FILE

    check_output_dir(out)
    if scorer == "maxsim":
        refuse_link(out / TOKEN_STORE_DIR)
    existing = [out / name for name in (SUMMARY_FILE, PER_QUESTION_FILE) if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"--out {out} already holds a result ({existing[0].name}); pass --overwrite to replace it")


def eval_command(
    model: str = typer.Option("minilm", help="Model: built-in name, local folder or Hugging Face id."),
    data: str = typer.Option(..., help="Prepared dataset folder (DIR/{train,dev,test}.jsonl) or beir:PATH."),
    split: str = typer.Option("test", help="Split to evaluate."),
    out: Optional[Path] = typer.Option(None, help="Folder for summary.json and per_question.parquet."),
    as_json: bool = typer.Option(False, "--json", help="Print summary and counts as JSON instead of tables."),
    distractors: Optional[str] = typer.Option(
        None, help="Add these splits' answers to the retrieval corpus as distractors (e.g. train, or train,dev). "
                   "A dataset's corpus.jsonl (documents no question owns) is always in the corpus."
    ),
    batch_size: Optional[int] = typer.Option(
        None, help="Texts per encoding batch (default: 16 on CPU, 256 on a GPU; benchmarks/results/encode_batch.md)."),
    max_seq_length: Optional[int] = typer.Option(None, help="Truncate texts to this many tokens (default: the model's)."),
    query_mode: str = typer.Option("title_body", help="Question text used as query: title, body or title_body."),
    in_batch_size: int = typer.Option(32, help="Questions per in-batch comparison group."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the in-batch grouping."),
    device: Optional[str] = typer.Option(None, help="torch device (default: sentence-transformers' choice)."),
    overwrite: bool = typer.Option(False, help="Replace an earlier result in --out."),
    threshold_split: str = typer.Option(
        "dev", help="Pair data: split whose pairs choose the classification thresholds (the evaluated split itself "
                    "gives sentence-transformers' BinaryClassificationEvaluator numbers, optimistic)."),
    scorer: str = typer.Option("cosine", help="cosine (pooled embedding) or maxsim (late interaction over token "
                                              "embeddings; see docs/late-interaction.md)."),
    query_length: Optional[int] = typer.Option(
        None, help="maxsim: query tokens kept, counting [CLS] (default: the model's saved query_length, else all)."),
    maxsim_search: str = typer.Option("exact", help="maxsim: exact (whole corpus) or ann (FAISS token candidates, "
                                                    "exact re-rank, recall@100 measured)."),
    maxsim_chunk_docs: int = typer.Option(1024, help="maxsim: documents per exact-search chunk."),
    maxsim_memory_mb: int = typer.Option(256, help="maxsim: bound on one similarity block (MB of float32)."),
    maxsim_exact_max_docs: int = typer.Option(200_000, help="maxsim: larger corpora need --maxsim-search ann."),
    ann_tokens: int = typer.Option(32, help="maxsim ann: nearest document tokens per query token."),
    ann_nprobe: int = typer.Option(16, help="maxsim ann: IVF lists searched per query token."),
    ann_nlist: Optional[int] = typer.Option(None, help="maxsim ann: IVF lists (default ~4 sqrt(tokens))."),
    ann_recall_queries: int = typer.Option(100, help="maxsim ann: queries whose candidates are checked against exact "
                                                     "MaxSim for recall@100 (0: skip)."),
) -> None:
    """Evaluate a model: retrieval, within-question and in-batch metrics (see docs/evaluation.md)."""
    from pydantic import ValidationError

    from qaembed.data.dataset import read_corpus, read_split
    from qaembed.evaluate.beir import evaluate_beir, read_beir
    from qaembed.evaluate.config import EvalConfig
    from qaembed.evaluate.qa import evaluate_model
    from qaembed.model import check_device, load_encoder
    from qaembed.provenance import environment

    # every option is checked before the (long) encoding, so no result is computed and then lost
    if out is not None:
        _check_out(out, overwrite, scorer)
    check_device(device)
    check_split(data, split, "--split")
    distractor_splits = [part.strip() for part in distractors.split(",")] if distractors is not None else []
    if distractors is not None and not data.startswith(BEIR_PREFIX):
        for part in distractor_splits:
            check_split(data, part, "--distractors")
    if scorer not in SCORERS:
        raise ConfigError(f"--scorer {scorer!r}: allowed: {', '.join(SCORERS)}")
    if maxsim_search not in ("exact", "ann"):
        raise ConfigError(f"--maxsim-search {maxsim_search!r}: allowed: exact, ann")
    if scorer == "cosine" and query_length is not None:
        raise ConfigError("--query-length applies to --scorer maxsim only")
    if scorer == "maxsim" and _is_pair_data(data):
        raise ConfigError("--scorer maxsim: pair data (duplicate questions) is evaluated with cosine only; "
                          "use --scorer cosine")
    from qaembed.late_interaction import ColbertTokens

    colbert = ColbertTokens()
    if scorer == "maxsim":  # the model's saved ColBERT tokenization (markers, query expansion, query_length)
        from qaembed.late_interaction import saved_colbert_tokens
        from qaembed.model import resolve_model

        colbert = saved_colbert_tokens(resolve_model(model))
        query_length = query_length if query_length is not None else colbert.query_length
    try:
        config = EvalConfig(
            query_mode=query_mode, encode_batch_size=batch_size, in_batch_size=in_batch_size, seed=seed,
            scorer=scorer, query_length=query_length, query_prefix=colbert.query_prefix,
            document_prefix=colbert.document_prefix, query_expansion=colbert.query_expansion,
            maxsim_search=maxsim_search, maxsim_chunk_docs=maxsim_chunk_docs,
            maxsim_block_mb=maxsim_memory_mb, maxsim_exact_max_docs=maxsim_exact_max_docs, maxsim_ann_tokens=ann_tokens,
            maxsim_ann_nprobe=ann_nprobe, maxsim_ann_nlist=ann_nlist, maxsim_ann_recall_queries=ann_recall_queries,
        )
    except ValidationError as exc:
        problem = first_problem(exc)
        name = problem.field.split(".")[0]
        option = _CONFIG_OPTIONS.get(name, "--" + name.replace("_", "-"))
        raise ConfigError(f"option {option}: {problem.message}") from exc
    if max_seq_length is not None and max_seq_length < 8:  # as training and the suite: below, the special tokens
        # leave no room for text (2: every text is [CLS][SEP], one embedding for all) or the model fails
        raise ConfigError(f"option --max-seq-length must be >= 8 (as in training), got {max_seq_length}")

    # a second eval into --out would write its result over this one's (and into the same maxsim token store)
    with writing_alone(out, "qaembed eval", create=True) if out is not None else nullcontext():
        if out is not None:
            _check_out(out, overwrite, scorer)  # again under the lock: an eval that finished since left a result there
        pair_data = _is_pair_data(data)
        if pair_data:
            from qaembed.data.pairs import read_pair_split

            if distractors is not None:
                raise ConfigError("--distractors applies to Q&A datasets, not to pair data")
            check_split(data, threshold_split, "--threshold-split")
            pairs = read_pair_split(data, split)
            threshold_pairs = None if threshold_split == split else read_pair_split(data, threshold_split)
            records = distractor_records = None
        elif data.startswith(BEIR_PREFIX):
            if distractors is not None:
                raise ConfigError("--distractors applies to Q&A datasets, not to beir: data")
            beir_data = read_beir(data[len(BEIR_PREFIX) :], split)
            records = distractor_records = None
        else:
            if split in distractor_splits:
                raise ConfigError(f"--distractors {distractors}: {split} is the evaluated split itself")
            records = read_split(data, split)
            distractor_records = [record for part in distractor_splits for record in read_split(data, part)]
            extra_documents = read_corpus(data)  # DIR/corpus.jsonl: documents no question owns (chunked passages)

        if scorer == "maxsim":
            from qaembed.model import load_token_encoder

            encoder = load_token_encoder(model, device=device)
        else:
            encoder = load_encoder(model, device=device)
        if max_seq_length is not None:
            encoder.max_seq_length = max_seq_length
        per_pair = None
        store = out / TOKEN_STORE_DIR if (out is not None and scorer == "maxsim") else None
        if pair_data:
            from qaembed.evaluate.pairs import evaluate_pairs

            result, per_pair = evaluate_pairs(encoder, pairs, threshold_pairs=threshold_pairs, config=config)
            result.info.update(threshold_split=threshold_split)
        elif records is None:
            result = evaluate_beir(encoder, beir_data, config=config, token_store=store)
        else:
            result = evaluate_model(encoder, records, config=config, distractors=distractor_records, token_store=store,
                                    extra_documents=extra_documents)
        result.info.update(
            model=model,
            data=data,
            split=split,
            distractors=distractors,
            max_seq_length=encoder.max_seq_length,
            environment=environment(),
        )
        if out is not None:
            result.save(out)
            if per_pair is not None:
                from qaembed.arrayfiles import write_parquet
                from qaembed.evaluate.pairs import PER_PAIR_FILE

                write_parquet(per_pair, out / PER_PAIR_FILE)
        if as_json:
            payload = {"summary": result.summary, "counts": result.counts}
            if "maxsim" in result.info:
                payload["maxsim"] = result.info["maxsim"]
            typer.echo(json.dumps(payload, indent=2))
        else:
            _print_tables(result, f"{model} on {data} ({split})")
            if out is not None:
                typer.echo(f"saved {out / 'summary.json'} and {out / 'per_question.parquet'}"
                           + (f" and {out / 'per_pair.parquet'}" if per_pair is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)

