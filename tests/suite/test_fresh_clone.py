"""A fresh clone with no data folder beside it runs ``qaembed suite`` to a complete report (slow).

What every new user does: clone the repository into an empty folder (no ``../shared``),
with an empty ``HOME`` (no cache) and no network, and run the suite. The data must then
come from the sample embedded in the package, and the report must say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the quick preset cut to a smoke test: 2 steps, few questions, test answers as the corpus
TINY_SUITE = """\
preset: quick
budget_unit: steps
budget: 2
train_questions: 24
dev_questions: 8
test_questions: 40
corpus: test
entries:
  - {name: infonce, loss: infonce, strategy: hard_negative}
"""


@pytest.mark.slow
def test_fresh_clone_runs_the_suite_on_the_embedded_sample(tmp_path):
    clone = tmp_path / "qaembed"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)  # the committed HEAD
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("QAEMBED_", "HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_"))}
    env.update(HOME=str(home), PYTHONPATH=str(clone / "src"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    assert not (tmp_path / "shared").exists()

    def python(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, **kwargs)

    probe = python("-c", "import qaembed; print(qaembed.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(clone / "src")  # the clone's code, not the development tree's
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_SUITE)

    out = tmp_path / "runs"
    suite = python("-m", "qaembed", "suite", "--config", str(config), "--losses", "infonce", "--out", str(out),
                   timeout=1800)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    assert "Traceback" not in suite.stderr
    report = (out / "report.md").read_text()
    assert (out / "results.csv").is_file() and (out / "report.html").is_file()
    assert "embedded sample of 5 Stack Exchange sites (2,078 questions; CC BY-SA)" in report
    assert "infonce" in (out / "results.csv").read_text()
    data = json.loads((out / "suite.json").read_text())["data"]
    assert data["description"].startswith("embedded sample of 5 Stack Exchange sites")
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert [Path(s["path"]) for s in manifest["sources"]] == [
        clone / "src" / "qaembed" / "default_data" / "stackexchange-sample.jsonl.gz"]
    assert list(home.rglob("stackexchange")) == []  # nothing was downloaded into the cache
