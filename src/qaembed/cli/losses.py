"""``qaembed losses``: list every loss (or batching strategy) with its options, defaults and ranges."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    app.command("losses")(losses_command)


def losses_command(
    strategies: bool = typer.Option(False, "--strategies", help="List the batching strategies instead."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="The reference in Markdown (docs/losses.md)."),
) -> None:
    """List losses (or --strategies) with options, defaults, ranges and accepted strategies."""
    from qaembed.losses.catalog import loss_catalog, losses_markdown, strategy_catalog

    if markdown:
        typer.echo(losses_markdown(), nl=False)
        return
    entries = strategy_catalog() if strategies else loss_catalog()
    if as_json:
        typer.echo(json.dumps(entries, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="batching strategies" if strategies else "losses", show_lines=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("options (default; range)")
    table.add_column("accepted by" if strategies else "strategies")
    table.add_column("what it is")
    for entry in entries:
        options = "\n".join(_option_line(option) for option in entry["options"])
        related = entry["losses"] if strategies else entry["strategies"]
        # text, not markup: a type such as list[str] in a docstring would lose its "[str]"
        table.add_row(entry["name"], Text(options), "\n".join(related), Text(entry["summary"]))
    Console().print(table)


def _option_line(option: dict) -> str:
    default = "(required)" if option["required"] else repr(option["default"])
    return f"{option['name']} = {default}" + (f"; {option['range']}" if option["range"] else "")
