"""``qaembed data``: prepare a canonical Q&A dataset from sources, show its stats, download dumps.

A thin layer over :func:`qaembed.data.prepare.prepare_dataset`,
:func:`qaembed.data.stats.dataset_stats` and
:func:`qaembed.data.download.download_stackexchange_site`; see ``docs/data.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from qaembed.data.download import ARCHIVE_URL

data_app = typer.Typer(name="data", help="Prepare Q&A datasets from sources, show their statistics, download dumps.",
                       no_args_is_help=True)


def _print_stats(stats: dict) -> None:
    from rich.console import Console

    from qaembed.data.stats import stats_notes, stats_table

    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(stats_table(stats))
    for line in stats_notes(stats):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@data_app.command("prepare")
def prepare(
    sources: Annotated[Optional[list[str]], typer.Argument(
        help="Stack Exchange site folders, Kaggle CSV folders, ranked_qa *.json, canonical *.jsonl or "
             "prepared folders, hf:NAME[:SPLIT]. Default: the Stack Exchange sites on the data search path.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")] = ...,
    seed: Annotated[int, typer.Option(help="Seed of the train/dev/test assignment.")] = 13,
    split: Annotated[str, typer.Option(help="Train,dev,test fractions.")] = "0.8,0.1,0.1",
    min_answers: Annotated[int, typer.Option(help="Leave out questions with fewer answers (counted).")] = 1,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and count bad records instead of failing.")] = False,
    encoding: Annotated[Optional[str], typer.Option(help="Encoding of CSV sources (default utf-8).")] = None,
    hf_columns: Annotated[Optional[str], typer.Option(
        help="Column mapping for hf: sources, FIELD=COLUMN,... (fields: id title body tags score answers "
             "answer_id answer_text answer_score answer_accepted).")] = None,
) -> None:
    """Read SOURCES, split by question (seeded), write DIR/{train,dev,test}.jsonl, stats.json, manifest.json."""
    from pydantic import ValidationError

    from qaembed.data.hf import parse_column_mapping
    from qaembed.data.prepare import PrepareConfig, parse_split, prepare_dataset
    from qaembed.errors import ConfigError

    try:
        config = PrepareConfig(seed=seed, split=parse_split(split), min_answers=min_answers, skip_bad=skip_bad,
                               encoding=encoding, hf_columns=parse_column_mapping(hf_columns))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{'-'.join(str(p) for p in first['loc'][:1]).replace('_', '-')}: {first['msg']}") from exc
    stats = prepare_dataset(sources or None, out, config)
    _print_stats(stats)
    typer.echo(f"wrote {out}")


@data_app.command("stats")
def stats(dataset: Annotated[Path, typer.Argument(help="A prepared dataset folder.")]) -> None:
    """Statistics of a prepared dataset (split rows recomputed from the JSONL files)."""
    from qaembed.data.stats import dataset_stats

    _print_stats(dataset_stats(dataset))


@data_app.command("download")
def download(
    site: Annotated[str, typer.Argument(help="Site, e.g. beer.stackexchange.com.")],
    mirror: Annotated[str, typer.Option(help="Base URL of the archive (SITE.7z under it).")] = ARCHIVE_URL,
) -> None:
    """Find SITE on the data search path, or download SITE.7z into the cache and extract it."""
    from qaembed.data.download import download_stackexchange_site

    typer.echo(str(download_stackexchange_site(site, mirror=mirror)))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
