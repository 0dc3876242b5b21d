"""``qaembed map``: seeded UMAP 2-D maps of base vs fine-tuned embeddings on a bounded sample.

Examples::

    qaembed map --data data/qqp --model runs/qqp-infonce/model --out maps/qqp        # base (minilm) + fine-tuned
    qaembed map --data data/stackexchange --split test --color-by tag --max-points 500 --out maps/se
    qaembed serve --index idx --maps maps/qqp                                         # the web page shows them

Pair data: whole test pairs are sampled (questions coloured by duplicate cluster, pairs drawn as
green/red segments for duplicates/non-duplicates); Q&A data: questions coloured by site or tag.
Writes ``<label>.png`` per model and ``maps.json`` (sample size, seed, settings, pair distances).
Needs umap-learn (``pip install 'qaembed[maps]'``). See ``docs/pairs.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qaembed.options import SEED_MAX


def map_command(
    data: Path = typer.Option(..., "--data", help="Prepared dataset folder (Q&A or pair data)."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNGs and maps.json (what serve --maps reads)."),
    models: Optional[list[str]] = typer.Option(
        None, "--model", help="A fine-tuned model (folder or name) to map next to the base model; repeatable."),
    base: str = typer.Option("minilm", "--base", help="The base model, mapped as 'base'."),
    no_base: bool = typer.Option(False, "--no-base", help="Map only the --model models."),
    split: str = typer.Option("test", "--split", help="Split to sample: train, dev or test."),
    max_points: int = typer.Option(1000, "--max-points", min=1, help="At most this many questions on a map."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the sample and of UMAP (same seed, same map)."),
    color_by: str = typer.Option(
        "auto", "--color-by", help="Pair data: cluster. Q&A: auto (site if several, else tag), site or tag."),
    max_seq_length: int = typer.Option(256, "--max-seq-length", min=8, help="Truncate texts to this many tokens."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the map in a non-empty --out (its maps.json and the PNGs it lists go "
        "first; nothing else there is touched)."),
) -> None:
    """Draw UMAP maps of the base model's and fine-tuned models' embeddings of a bounded sample."""
    import json

    from qaembed.data.dataset import SPLITS, read_split, split_path
    from qaembed.data.pairs import is_pair_dataset, pair_dataset_path, read_pair_split
    from qaembed.embedding_maps import (
        INSTALL_HINT,
        MapsUnavailable,
        embed,
        pair_sample,
        qa_sample,
        umap_available,
        write_maps,
    )
    from qaembed.errors import ConfigError, DataError
    from qaembed.model import ModelNotFoundError, load_encoder
    from qaembed.outputs import check_output_dir, writing_alone

    check_output_dir(out)
    _check_out_content(out, overwrite)
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: allowed: {', '.join(SPLITS)}")
    if not data.is_dir():
        raise ConfigError(f"--data {data}: no such folder (prepare one with `qaembed data prepare`)")
    names = ([] if no_base else [base]) + list(models or [])
    if not names:
        raise ConfigError("--no-base without --model: nothing to map")
    if not umap_available():  # before any model is loaded
        raise MapsUnavailable(f"qaembed map needs umap-learn, which is not installed: {INSTALL_HINT}")
    # a second map into --out would draw its PNGs beside this one's under another maps.json
    with writing_alone(out, "qaembed map", create=True):
        _check_out_content(out, overwrite)  # again under the lock: a map finished since is there now
        if is_pair_dataset(data):
            if color_by not in ("auto", "cluster"):
                raise ConfigError(f"--color-by {color_by!r}: pair data maps colour by duplicate cluster (auto or cluster)")
            if not pair_dataset_path(data, split).is_file():
                raise DataError(f"pair dataset has no {split} split", path=str(pair_dataset_path(data, split)))
            sample = pair_sample(read_pair_split(data, split), max_points, seed)
        else:
            if color_by == "cluster":
                raise ConfigError("--color-by cluster: only for pair data (duplicate clusters)")
            if not split_path(data, split).is_file():
                raise DataError(f"not a prepared dataset: no {split_path(data, split).name}", path=str(data))
            sample = qa_sample(read_split(data, split), max_points, seed, color_by)
        if len(sample.ids) < 10:
            raise DataError(f"the {split} split gives only {len(sample.ids)} questions within --max-points {max_points}; "
                            "a map needs at least 10", path=str(data))
        embeddings, titles = {}, {}
        for index, name in enumerate(names):
            label = "base" if index == 0 and not no_base else (Path(name).name or name)
            while label in embeddings:
                label += "_2"
            try:
                model = load_encoder(name, device=None)
            except ModelNotFoundError as exc:
                raise ConfigError(f"--model {name}: {exc}") from exc
            model.max_seq_length = max_seq_length
            embeddings[label] = embed(model, sample.texts)
            titles[label] = f"{label}: {name}"
        if overwrite:  # serve --maps shows every PNG there: an earlier map's would stand beside this one's
            _remove_earlier_map(out)
        paths = write_maps(embeddings, sample, out, seed=seed, titles=titles,
                           extra={"data": str(data), "split": split, "sources": dict(zip(embeddings, names))})
        sidecar = json.loads((out / "maps.json").read_text(encoding="utf-8"))
        typer.echo(f"{len(sample.ids)} questions (of {sample.available}), seed {seed}: "
                   + ", ".join(str(p) for p in paths) + f", {out / 'maps.json'}")
        for label, stats in sidecar["models"].items():
            if "duplicate_mean_cosine" in stats:
                typer.echo(f"  {label}: duplicate pairs cosine {stats['duplicate_mean_cosine']:.3f}, "
                           f"non-duplicates {stats.get('non_duplicate_mean_cosine', float('nan')):.3f}")


def _check_out_content(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds anything (an earlier map, say) unless ``overwrite``."""
    from qaembed.errors import ConfigError
    from qaembed.outputs import folder_content

    content = [path.name for path in folder_content(out)]
    if content and not overwrite:
        what = "a map" if "maps.json" in content else f"{len(content)} entries"
        shown = ", ".join(content[:5]) + (", ..." if len(content) > 5 else "")
        raise ConfigError(f"--out {out}: folder is not empty (holds {what}: {shown}); pass --overwrite to replace "
                          "the map there, or choose a new folder")


def _remove_earlier_map(out: Path) -> None:
    """Delete the map in ``out`` that its ``maps.json`` describes: the PNGs it lists (plain names there), then it."""
    import json

    sidecar = out / "maps.json"
    try:
        models = json.loads(sidecar.read_text(encoding="utf-8")).get("models", {})
    except (OSError, ValueError, AttributeError):  # no or unreadable sidecar: no PNG is known to be the map's
        models = {}
    for entry in models.values() if isinstance(models, dict) else ():
        name = entry.get("png") if isinstance(entry, dict) else None
        if isinstance(name, str) and name.endswith(".png") and Path(name).name == name and name not in (".", ".."):
            (out / name).unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
