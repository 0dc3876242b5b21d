"""``qaembed mine``: attach hard negatives mined with a separate model to a prepared dataset.

Examples::

    qaembed mine --data data/prepared --out data/mined
    qaembed mine --data data/prepared --out data/mined --num-negatives 5 --range-min 2 --max-score 0.9
    qaembed mine --data data/prepared --out data/mined --absolute-margin 0.05 --sampling random --seed 1

See docs/mining.md for the method, each option and the FAISS index choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qaembed.errors import ConfigError
from qaembed.mining.config import MiningConfig
from qaembed.options import SEED_MAX


def _print_summary(payload: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    stats, effective = payload["statistics"], payload["provenance"]["effective"]
    console = Console()
    table = Table(title="Similarity (mining model)", title_justify="left")
    table.add_column("")
    for column in ("positive", "negative", "positive - negative"):
        table.add_column(column, justify="right")
    summaries = [stats["similarity"][k] for k in ("positive", "negative", "positive_minus_negative")]
    table.add_row("count", *(f"{s['count']:,}" for s in summaries))
    for key in ("mean", "std", "min", "p05", "p25", "median", "p75", "p95", "max"):
        table.add_row(key, *(f"{s[key]:.4f}" if key in s else "-" for s in summaries))
    console.print(table)

    removed = Table(title="Candidates removed, by the first filter that removed them", title_justify="left")
    removed.add_column("filter")
    removed.add_column("candidates", justify="right")
    removed.add_column("share of retrieved", justify="right")
    retrieved = max(stats["candidates_retrieved"], 1)
    for name, count in stats["removed"].items():
        removed.add_row(name, f"{count:,}", f"{count / retrieved:.2%}")
    console.print(removed)
    console.print(
        f"{stats['questions']:,} questions, {stats['corpus_answers']:,} unique answers; "
        f"{stats['negatives']:,} negatives mined; {stats['questions_with_fewer_than_k']:,} questions got fewer "
        f"than requested ({stats['questions_without_negatives']:,} none). index={effective['index']}, "
        f"device={effective['device']}, retrieved top {effective['k_retrieved']}, range_max={effective['range_max']}"
    )
    timing = payload["timing"]
    console.print(
        f"encode {timing['encode_s']:.1f}s, search {timing['search_s']:.1f}s, filter {timing['filter_s']:.1f}s "
        f"(embeddings from cache: {effective['embeddings_from_cache']}); wrote {out}", markup=False
    )


def _default(name: str):
    return MiningConfig.model_fields[name].default


def mine_command(
    data: Path = typer.Option(..., help="Prepared dataset folder (DIR/{train,dev,test}.jsonl)."),
    out: Path = typer.Option(..., help="Output folder: the dataset copied, train.jsonl with negatives, mining.json."),
    model: str = typer.Option(_default("model"), help="Mining model: built-in name, local folder or Hugging Face id."),
    num_negatives: int = typer.Option(_default("num_negatives"), help="Negatives per question (K)."),
    range_min: int = typer.Option(_default("range_min"), help="Skip this many of the most similar surviving candidates."),
    range_max: Optional[int] = typer.Option(
        None, help="Candidate window end (default: range_min + 10K + max answers with filters, + K without)."
    ),
    absolute_margin: Optional[float] = typer.Option(
        None, help="Drop candidates with similarity > positive - M (replaces the default relative margin)."
    ),
    relative_margin: Optional[float] = typer.Option(
        None, help=f"Drop candidates with similarity > positive - |positive|*R (default {_default('relative_margin')})."
    ),
    no_margin: bool = typer.Option(False, "--no-margin", help="No false-negative margin at all."),
    max_score: Optional[float] = typer.Option(None, help="Drop candidates with similarity above S."),
    near_duplicate_cosine: float = typer.Option(
        _default("near_duplicate_cosine"),
        help="Drop candidates this cosine-similar to one of the question's own answers (1.0: exact only).",
    ),
    sampling: str = typer.Option(_default("sampling"),
                                 help="top: the most similar survivors; random: seeded sample of the window."),
    index: str = typer.Option(_default("index"),
                              help="exact, ivf, hnsw or auto (exact up to 250k answers on CPU, else ivf)."),
    question_text: str = typer.Option(_default("question_text"),
                                      help="Question text used as query: title, body or title_body."),
    batch_size: int = typer.Option(_default("batch_size"), help="Texts per encoding batch."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    seed: int = typer.Option(_default("seed"), min=0, max=SEED_MAX, help="Seed of random sampling and IVF training."),
    cache: bool = typer.Option(_default("cache"), "--cache/--no-cache", help="Reuse embeddings cached on disk."),
    overwrite: bool = typer.Option(False, help="Replace files in a non-empty --out folder."),
) -> None:
    """Mine hard negatives for the train split with a separate model (see docs/mining.md)."""
    from qaembed.mining import mine_dataset
    from qaembed.model import check_device

    if no_margin and (absolute_margin is not None or relative_margin is not None):
        raise ConfigError("--no-margin cannot be combined with --absolute-margin or --relative-margin")
    options = dict(
        model=model, num_negatives=num_negatives, range_min=range_min, range_max=range_max,
        max_score=max_score, near_duplicate_cosine=near_duplicate_cosine, sampling=sampling, index=index,
        question_text=question_text, batch_size=batch_size, device=device, seed=seed, cache=cache,
        absolute_margin=absolute_margin,  # MiningConfig: an absolute margin replaces the default relative one
    )
    if no_margin:
        options["relative_margin"] = None
    elif relative_margin is not None:
        options["relative_margin"] = relative_margin
    config = MiningConfig.from_options(**options)  # every range and combination checked there
    check_device(config.device)  # before reading the data and loading the model
    payload = mine_dataset(data, out, config, overwrite=overwrite, progress=True)
    _print_summary(payload, out)


def register(app: typer.Typer) -> None:
    app.command("mine")(mine_command)
