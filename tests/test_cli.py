import os
import re
import subprocess
import sys

from qaembed.cli import COMMAND_ORDER, app


def test_help_lists_every_command_in_the_order_of_the_work():
    """The main job first, then data, training, evaluation, serving, information; a new command must be placed."""
    import typer.main

    registered = set(typer.main.get_command(app).commands)
    assert registered == set(COMMAND_ORDER)
    out = subprocess.run([sys.executable, "-m", "qaembed", "--help"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "100"}).stdout
    listed = re.findall(r"^│ (\w+) ", out, flags=re.MULTILINE)
    assert listed == list(COMMAND_ORDER)


def test_flags_show_no_value_type_in_help():
    """A flag takes no value: its help row shows none (typer 0.29 would print <bool>); options with a value keep theirs."""
    import typer.main
    from typer.testing import CliRunner

    runner, todo, flagged = CliRunner(), [[]], []
    root = typer.main.get_command(app)
    while todo:
        path = todo.pop()
        command = root
        for name in path:
            command = command.commands[name]
        todo += [path + [name] for name in getattr(command, "commands", {})]
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        flagged += [" ".join(path) + ": " + line.strip() for line in result.output.splitlines() if "<bool>" in line]
    assert not flagged
    out = runner.invoke(app, ["data", "prepare", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--overwrite +Replace", out) and re.search(r"--out +<path>", out)


def test_no_help_text_holds_what_rich_would_take_for_a_markup_tag():
    """Help is rendered as rich markup: an unescaped "[ray]" (say, in qaembed[ray]) would vanish from --help."""
    import typer.main

    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")
    todo, found = [("qaembed", typer.main.get_command(app))], []
    while todo:
        path, command = todo.pop()
        todo += [(f"{path} {name}", sub) for name, sub in getattr(command, "commands", {}).items()]
        for text in [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]:
            found += [f"{path}: {match}" for match in tag.findall(text)]
    assert not found
    out = subprocess.run([sys.executable, "-m", "qaembed", "suite", "--help"], capture_output=True, text=True,
                         check=True, env={**os.environ, "COLUMNS": "300"}).stdout
    assert "pip install 'qaembed[ray]'" in out
