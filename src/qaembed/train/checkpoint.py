"""Atomic checkpoints that let a killed run resume to the same weights and metrics.

Layout inside a run folder::

    checkpoints/step-000120/   model.pt, optimizer.pt, scheduler.pt, [scaler.pt],
                               rng-<process>.pt (python, numpy, torch, cuda states),
                               state.json (step, epoch, batch position, best metric, ...)

A checkpoint is written into ``checkpoints/.tmp-step-000120`` and renamed into place with
``os.replace`` once complete, so a kill during writing leaves the previous checkpoint
intact; older complete checkpoints are then removed (only the newest is kept).
:func:`latest_checkpoint` ignores unfinished ``.tmp-`` folders.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qaembed.data.dataset import read_json

CHECKPOINTS = "checkpoints"
_PREFIX = "step-"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{_PREFIX}{step:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").is_file()]
    return max(complete, key=lambda p: int(p.name[len(_PREFIX) :]), default=None)


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    state: dict[str, Any],
    accelerator: Any,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically; every process must call this."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(".tmp-" + final.name)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_states(), tmp / f"rng-{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        torch.save(accelerator.unwrap_model(model).state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in final.parent.iterdir():
            if old.is_dir() and old.name.startswith(_PREFIX) and old != final:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    accelerator: Any,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler, scaler and this process's RNG states; returns state.json."""
    device = accelerator.device
    accelerator.unwrap_model(model).load_state_dict(torch.load(path / "model.pt", map_location=device))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    if scaler is not None:
        scaler.load_state_dict(torch.load(path / "scaler.pt"))
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    if not rng_file.is_file():
        from qaembed.errors import QaembedError

        raise QaembedError(
            f"{path} holds no RNG state for process {accelerator.process_index}: resume with the same number of processes"
        )
    set_rng_states(torch.load(rng_file, weights_only=False))
    return read_json(path / "state.json")
