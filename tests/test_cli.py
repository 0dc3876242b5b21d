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
