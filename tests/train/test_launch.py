"""The whole loop under ``torchrun`` with 2 CPU processes (gloo) and cross-process negatives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_with_gathered_negatives(tiny_config, tmp_path):
    from sentence_transformers import SentenceTransformer

    tiny_config["training"].update(max_steps=3, eval_every=2, save_every=2, batch_size=4,
                                   gather_across_devices=True, mini_batch_size=8)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               "-m", "qaembed", "train", "--config", str(config_path), "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # own process group, so a hang kills torchrun's workers too (not only the launcher)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"torchrun did not finish in 600 s:\n{stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 3
    assert sorted(p.name for p in (run / "checkpoints" / "step-000002").glob("rng-*.json")) == ["rng-0.json", "rng-1.json"]
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "loss" in r] == [1, 2, 3]
    assert SentenceTransformer(str(run / "model"), device="cpu").encode(["q?"]).shape == (1, 32)
