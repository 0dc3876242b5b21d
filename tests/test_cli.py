import subprocess
import sys


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "qaembed", "--help"], capture_output=True, text=True, check=True).stdout
    assert "version" in out
