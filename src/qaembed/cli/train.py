"""``qaembed train``: train an embedding model from a config file into a run folder.

Examples::

    qaembed train --config configs/infonce.yaml --out runs/infonce
    qaembed train --data data/qqp --out runs/qqp-infonce          # pair data: strategy pairs, loss infonce (MNRL)
    qaembed train --config configs/pairs/multitask.yaml --data data/qqp --out runs/qqp-multitask
    qaembed train --config configs/listwise.yaml --set training.lr=1e-5 --set data.dataset=data/se --out runs/lw
    qaembed train --config configs/infonce.yaml --out runs/infonce --resume     # after a crash or kill
    qaembed train --config configs/infonce.yaml --out /tmp/smoke --debug        # tiny subset, seconds
    accelerate launch -m qaembed train --config ... --out ...                    # several GPUs / processes

The library function behind it is :func:`qaembed.train.train`; ``docs/training.md``
explains every config key and the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_command(
    config: Optional[Path] = typer.Option(
        None, "--config", help="Training config (YAML or JSON); see configs/. Without it: the defaults "
        "(docs/training.md), with strategy 'pairs' when --data is pair data."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Prepared dataset folder, Q&A or pair data (sets data.dataset)."),
    out: Path = typer.Option(..., "--out", help="Run folder: config, metrics.jsonl, checkpoints, model/."),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a config key, KEY=VALUE with a YAML value (e.g. training.lr=1e-4); repeatable."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    debug: bool = typer.Option(False, "--debug", help="Tiny run: 64 train / 32 dev questions, 3 steps, 64 tokens."),
) -> None:
    """Train a model with the loss, strategy and settings of a config file."""
    import json

    from qaembed.errors import ConfigError
    from qaembed.model import ModelNotFoundError
    from qaembed.outputs import check_output_dir
    from qaembed.train import debug_config, load_config, train

    check_output_dir(out)
    if config is None and data is None and not any((o or "").startswith("data.dataset=") for o in overrides or []):
        raise ConfigError("give --config FILE or --data DIR (a prepared dataset folder)")
    if data is not None and not data.is_dir():
        raise ConfigError(f"--data {data}: no such folder (prepare one with `qaembed data prepare`)")
    train_config = load_config(config, overrides or [], dataset=data)
    if debug:
        train_config = debug_config(train_config)
    try:
        result = train(train_config, out, resume=resume)
    except ModelNotFoundError as exc:
        raise ConfigError(f"model.base: {exc}") from exc
    typer.echo(json.dumps(result.to_dict(), indent=2))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
