"""The ``qaembed`` command line: a thin layer over library functions.

Each area registers its commands from its own module (``qaembed.cli.<area>``); heavy
libraries (torch, sentence-transformers) are imported inside the commands so that
``qaembed --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import typer
from typer.core import TyperGroup

from qaembed.errors import QaembedError
from qaembed.subprocesses import DIE_WITH_PARENT, die_with_parent

# ``qaembed --help`` lists commands in the order of the work, the main job first (typer would list commands
# before groups, each in registration order: version first, suite last)
COMMAND_ORDER = ("suite", "data", "mine", "train", "eval", "map", "index", "search", "serve", "losses", "version")


class _WorkflowOrder(TyperGroup):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _hide_flag_types(self)  # the whole tree exists by now: typer builds the sub-groups first

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: (COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER),
                                               name))


def _hide_flag_types(command) -> None:
    """Flags take no value, so their help shows none (typer 0.29 prints ``<bool>`` beside ``--overwrite`` and
    ``--help``, which reads as if they wanted one)."""
    help_option = command.get_help_option(typer.Context(command))  # made once, then kept by the command
    for param in [*command.params, help_option]:
        if getattr(param, "is_flag", False) and param.metavar is None:  # typer's own (vendored) click Option
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _hide_flag_types(sub)


app = typer.Typer(
    name="qaembed",
    cls=_WorkflowOrder,
    help="Fine-tune embedding models for Q&A retrieval with graded-relevance losses, and compare losses fairly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Fine-tune embedding models for Q&A retrieval with graded-relevance losses, and compare losses fairly."""


@app.command()
def version() -> None:
    """Print the qaembed version and the versions of its main libraries."""
    from qaembed.provenance import library_versions

    for name, value in library_versions().items():
        typer.echo(f"{name} {value}")


# One block per area; each module defines register(app). Keep this list sorted.

from qaembed.cli import data as _data_cli  # noqa: E402

_data_cli.register(app)

from qaembed.cli import chunk as _chunk_cli  # noqa: E402 - adds `qaembed data chunk`

_chunk_cli.register(app)

from qaembed.cli import eval as _eval_cli  # noqa: E402

_eval_cli.register(app)

from qaembed.cli import index as _index_cli  # noqa: E402

_index_cli.register(app)

from qaembed.cli import losses as _losses_cli  # noqa: E402

_losses_cli.register(app)

from qaembed.cli import map as _map_cli  # noqa: E402

_map_cli.register(app)

from qaembed.cli import mine as _mine_cli  # noqa: E402

_mine_cli.register(app)

from qaembed.cli import serve as _serve_cli  # noqa: E402

_serve_cli.register(app)

from qaembed.cli import suite as _suite_cli  # noqa: E402

_suite_cli.register(app)

from qaembed.cli import train as _train_cli  # noqa: E402

_train_cli.register(app)


TRACEBACK_ENV = "QAEMBED_TRACEBACK"  # set to 1: failures of the machine (below) end in their traceback


def main() -> None:
    """Console-script entry point: user errors print one clear message and exit 2; a failure of the machine
    (a full disk, a file that cannot be written, memory) prints one line and exits 1."""
    if os.environ.get(DIE_WITH_PARENT):  # a training process launched by qaembed.train.launch
        die_with_parent()
    try:
        app()
    except QaembedError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except (OSError, MemoryError, RuntimeError) as exc:
        what = _machine_failure(exc)
        if what is None or os.environ.get(TRACEBACK_ENV) == "1":
            raise
        if getattr(exc, "errno", None) == errno.ENOSPC:
            with contextlib.suppress(OSError):  # stdout may be the full device: no second error at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        with contextlib.suppress(OSError):
            typer.secho(f"error: {what} (set {TRACEBACK_ENV}=1 to see where)", fg=typer.colors.RED, err=True)
        sys.exit(1)


_OUT_OF_MEMORY = ("lower the batch size (training.batch_size, or training.mini_batch_size for GradCache), "
                  "max_seq_length, or the evaluation's --batch-size")


def _machine_failure(exc: BaseException) -> str | None:
    """The one-line message for a failure of the environment rather than of the input, or None for an error that
    is not one (a bug: its traceback is kept). A closed output pipe (``qaembed ... | head``) never gets here:
    click ends the command quietly."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    if isinstance(exc, MemoryError):
        return f"out of memory: {_OUT_OF_MEMORY}"
    torch = sys.modules.get("torch")  # loaded by then if a model ran
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"the GPU ran out of memory: {_OUT_OF_MEMORY}"
    return None
