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
from qaembed.data.parquet import SHARD_RECORDS

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
             "prepared folders, hf:NAME[:SPLIT]. Default: the Stack Exchange sites on the data search path, "
             "else the sample embedded in qaembed.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder (new or empty unless --overwrite).")] = ...,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the dataset files in a non-empty --out (nothing else there is touched).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the train/dev/test assignment.")] = 13,
    split: Annotated[str, typer.Option(
        help="Train,dev,test fractions (random by question), or by-date (needs --test-after).")] = "0.8,0.1,0.1",
    test_after: Annotated[Optional[str], typer.Option(
        help="--split by-date: questions created on/after this UTC day (YYYY-MM-DD) are the test split.",
        show_default=False)] = None,
    dev_after: Annotated[Optional[str], typer.Option(
        help="--split by-date: of the rest, questions created on/after this day are dev (default: seeded 1/9 "
             "of them).", show_default=False)] = None,
    min_answers: Annotated[int, typer.Option(help="Leave out questions with fewer answers (counted).")] = 1,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and count bad records instead of failing.")] = False,
    encoding: Annotated[Optional[str], typer.Option(help="Encoding of CSV sources (default utf-8).")] = None,
    hf_columns: Annotated[Optional[str], typer.Option(
        help="Column mapping for hf: sources, FIELD=COLUMN,... (fields: id title body tags score answers "
             "answer_id answer_text answer_score answer_accepted).")] = None,
    data_format: Annotated[str, typer.Option(
        "--format", help="qa (question-answer sources, the default) or a pair format: pairs-qqp, pairs-csv, "
                         "pairs-jsonl, pairs-hf, se-duplicates (see docs/pairs.md).")] = "qa",
    pair_columns: Annotated[Optional[str], typer.Option(
        help="Pair formats: column mapping FIELD=COLUMN,... (fields: id qid1 qid2 text1 text2 body1 body2 "
             "label).")] = None,
    pair_split_by: Annotated[str, typer.Option(
        help="Pair formats: split unit, all-pairs (components of all labelled pairs: nothing dropped; the "
             "default) or duplicates (duplicate clusters; label-0 pairs across splits are dropped and counted).")] = "all-pairs",
    output: Annotated[str, typer.Option(
        help="jsonl (DIR/SPLIT.jsonl) or parquet (DIR/parquet/SPLIT-00000.parquet, ...: sharded, for large "
             "dumps; every qaembed stage, datasets and Ray Data read it).")] = "jsonl",
    shard_records: Annotated[int, typer.Option(help="--output parquet: records per shard.")] = SHARD_RECORDS,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Processes that clean and validate Posts.xml rows (files of 16 MB and more; the output "
                    "is the same for any number). Default: the CPUs available, at most 8.",
        show_default=False)] = None,
) -> None:
    """Read SOURCES, split by question, write DIR/{train,dev,test}.jsonl, stats.json, manifest.json.

    With a pair --format: split by duplicate cluster, write DIR/{train,dev,test}.pairs.jsonl.
    """
    from pydantic import ValidationError

    from qaembed.errors import ConfigError

    if data_format == "qa" and (pair_columns is not None or pair_split_by != "all-pairs"):
        raise ConfigError("--pair-columns and --pair-split-by apply to pair data: give a pair --format "
                          "(pairs-qqp, pairs-csv, pairs-jsonl, pairs-hf, se-duplicates)")
    if data_format != "qa":
        _prepare_pairs(sources, out, data_format, overwrite=overwrite, seed=seed, split=split, skip_bad=skip_bad,
                       encoding=encoding, pair_columns=pair_columns, split_by=pair_split_by)
        return

    from qaembed import paths
    from qaembed.data.hf import parse_column_mapping
    from qaembed.data.prepare import (
        DROPPED_NEGATIVES_NOTE,
        MINED_NEGATIVES_NOTE,
        STALE_REMOVED,
        PrepareConfig,
        check_output_dir,
        parse_split,
        prepare_dataset,
    )
    from qaembed.errors import ConfigError, DataError, first_problem, option_error

    by_date = split.strip() == "by-date"
    options = {"split_mode": "by-date"} if by_date else {"split": parse_split(split)}
    for option, value, key in (("--test-after", test_after, "test_after"), ("--dev-after", dev_after, "dev_after")):
        if value is not None:
            options[key] = _parse_day(value, option)
    try:
        config = PrepareConfig(seed=seed, min_answers=min_answers, skip_bad=skip_bad, encoding=encoding,
                               hf_columns=parse_column_mapping(hf_columns), output=output,
                               shard_records=shard_records, **options)
    except ValidationError as exc:
        if first_problem(exc).field:
            raise option_error(exc) from exc
        raise ConfigError(f"--split {split}: {first_problem(exc).message}") from exc
    for stale in check_output_dir(out, overwrite=overwrite):  # before any work (prepare_dataset checks again)
        typer.echo(STALE_REMOVED.format(stale), err=True)
    if not sources:
        try:
            default = paths.default_data_sources()
        except FileNotFoundError as exc:
            raise DataError(str(exc)) from exc
        typer.echo(default.line("give SOURCES or run `qaembed data download SITE` for your own data"), err=True)
        sources = default.sources
    stats = prepare_dataset(sources, out, config, overwrite=overwrite, workers=workers)
    _print_stats(stats)
    mined = sum(source["notes"].get(MINED_NEGATIVES_NOTE, 0) for source in stats["sources"].values())
    dropped = sum(source["notes"].get(DROPPED_NEGATIVES_NOTE, 0) for source in stats["sources"].values())
    if dropped:
        typer.echo(f"warning: {mined} records carry mined negatives (a mined dataset prepared again); {dropped} of "
                   "their negatives belong to questions that are not train questions in this split and were dropped "
                   "(training on them would show the model dev or test answers); run `qaembed mine` on this dataset "
                   "to mine its train records afresh", err=True)
    empty = [split for split, row in stats["splits"].items() if not row["questions"]]
    if empty:  # legal, but training's dev evaluation and `qaembed eval` on them would fail later
        total = sum(row["questions"] for row in stats["splits"].values())
        typer.echo(f"warning: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty ({total} "
                   f"questions in all, split {split}): training evaluates on dev, the suite tests on test; give "
                   "more data or other --split fractions", err=True)
    if config.split_mode == "by-date":
        rest = (f"dev = created on/after {config.dev_after}, train = older" if config.dev_after else
                f"the rest split train/dev by the seeded hash ({config.split[1] / (config.split[0] + config.split[1]):.0%}"
                " dev)")
        typer.echo(f"split by date: test = questions created on/after {config.test_after} (UTC); {rest}")
    typer.echo(f"wrote {out}")


def _prepare_pairs(sources, out: Path, data_format: str, *, overwrite: bool, seed: int, split: str, skip_bad: bool,
                   encoding: str | None, pair_columns: str | None, split_by: str) -> None:
    from rich.console import Console

    from qaembed.data.pairs import (
        PAIR_FORMATS,
        SPLIT_BY,
        pair_stats_notes,
        pair_stats_table,
        parse_pair_columns,
        prepare_pairs,
    )
    from qaembed.data.prepare import check_output_dir, parse_split
    from qaembed.errors import ConfigError

    if data_format not in PAIR_FORMATS:
        raise ConfigError(f"--format {data_format!r}: allowed: qa, {', '.join(PAIR_FORMATS)}")
    if split_by not in SPLIT_BY:
        raise ConfigError(f"--pair-split-by {split_by!r}: allowed: {', '.join(SPLIT_BY)}")
    if split.strip() == "by-date":
        raise ConfigError("--split by-date applies to Q&A data; pair data is split by duplicate cluster "
                          "(give TRAIN,DEV,TEST fractions)")
    fractions = parse_split(split)
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"--split: train,dev,test fractions must be >= 0 and sum to 1, got {split}")
    columns = parse_pair_columns(pair_columns)
    check_output_dir(out, overwrite=overwrite)
    stats = prepare_pairs(sources or [], out, data_format, seed=seed, split=fractions, split_by=split_by,
                          skip_bad=skip_bad, columns=columns, encoding=encoding, overwrite=overwrite)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(pair_stats_table(stats))
    for line in pair_stats_notes(stats):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    typer.echo(f"wrote {out}")


def _parse_day(text: str, option: str):
    from datetime import date

    from qaembed.errors import ConfigError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a day YYYY-MM-DD, got {text!r}") from None


@data_app.command("stats")
def stats(dataset: Annotated[Path, typer.Argument(help="A prepared dataset folder (Q&A or pairs).")]) -> None:
    """Statistics of a prepared dataset (split rows recomputed from the JSONL files)."""
    from qaembed.data.pairs import is_pair_dataset

    if is_pair_dataset(dataset):
        from rich.console import Console

        from qaembed.data.pairs import pair_dataset_stats, pair_stats_notes, pair_stats_table

        stats = pair_dataset_stats(dataset)
        console = Console() if Console().is_terminal else Console(width=160)
        console.print(pair_stats_table(stats))
        for line in pair_stats_notes(stats):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
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
