"""``benchmarks/gpu_check.py --smoke``: the GPU check runs end to end on a CPU with tiny sizes, so a lent GPU's
few minutes are never spent on a broken script (a preset that became a typed config once broke its last section)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_on_a_cpu(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--model", str(tiny_model_dir),
         "--out", str(out), "--work", str(tmp_path / "work"), "--only-losses", "infonce", "listwise"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    assert {"losses", "gradcache", "eval", "suite"} <= set(results)
    assert results["suite"]["returncode"] == 0, (tmp_path / "work" / "suite.log").read_text()[-3000:]
    assert results["suite"]["full_preset_runs"] > 0 and results["suite"]["full_preset_estimate_s"] > 0
    assert (out / "gpu_check.md").read_text().count("## ") >= 4
