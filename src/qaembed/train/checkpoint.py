"""Atomic checkpoints that let a killed run resume to the same weights and metrics.

Layout inside a run folder::

    checkpoints/step-000120/   model.safetensors            weights (safetensors)
                               optimizer.pt, scheduler.pt,  tensors and plain values, read back
                               [scaler.pt]                  with torch.load(weights_only=True)
                               rng-<process>.json           python, numpy, torch, cuda RNG states
                               state.json                   step, epoch, batch position, best metric, ...

No checkpoint file can execute code when it is read: weights are safetensors, RNG states and
the loop state are JSON, and the optimizer, scheduler and scaler states go through torch's
``weights_only`` unpickler, which rebuilds only tensors and plain containers (no extra
classes are allowed). Checkpoints of older qaembed versions (``model.pt``, ``rng-N.pt``:
full pickles) are refused, never opened. A file that cannot be read (truncated, corrupt,
tampered with) is a :class:`~qaembed.errors.DataError` naming it.

A checkpoint is written into ``checkpoints/.tmp-step-000120`` and renamed into place with
``os.replace`` once complete, so a kill during writing leaves the previous checkpoint
intact; older complete checkpoints are then removed (only the newest is kept).
:func:`latest_checkpoint` ignores unfinished ``.tmp-`` folders.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from qaembed.errors import DataError, QaembedError, first_problem
from qaembed.jsonfiles import read_json
from qaembed.train.state import RunState

CHECKPOINTS = "checkpoints"
_PREFIX = "step-"
MODEL_FILE = "model.safetensors"
LEGACY_PICKLES = ("model.pt", "rng-0.pt")  # written by qaembed before safe checkpoints; never loaded


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{_PREFIX}{step:06d}"


def _is_step_folder(path: Path) -> bool:
    """Whether ``path`` is a checkpoint folder this code writes (``step-N``); a link is not one: a checkpoint is
    never read, nor deleted, through a link."""
    return (path.is_dir() and not path.is_symlink() and path.name.startswith(_PREFIX)
            and path.name[len(_PREFIX):].isdigit())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [
        p for p in root.iterdir()
        if _is_step_folder(p) and (p / "state.json").is_file()
    ]
    return max(complete, key=lambda p: int(p.name[len(_PREFIX) :]), default=None)


def _bytes_to_text(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8).clone()


def rng_states() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) RNG states as JSON-compatible values."""
    version, internal, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {"name": name, "key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "torch": _bytes_to_text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        states["cuda"] = [_bytes_to_text(state) for state in torch.cuda.get_rng_state_all()]
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the states of :func:`rng_states`; malformed values raise KeyError, TypeError or ValueError."""
    python = states["python"]
    random.setstate((int(python["version"]), tuple(int(x) for x in python["state"]), python["gauss_next"]))
    numpy = states["numpy"]
    np.random.set_state((str(numpy["name"]), np.asarray(numpy["key"], dtype=np.uint32), int(numpy["pos"]),
                         int(numpy["has_gauss"]), float(numpy["cached_gaussian"])))
    torch.set_rng_state(_text_to_bytes(states["torch"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_text_to_bytes(state) for state in states["cuda"]])


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    state: RunState,
    accelerator: Any,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically; every process must call this."""
    from safetensors.torch import save_model

    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(".tmp-" + final.name)
    if accelerator.is_main_process:
        if tmp.is_symlink():  # removed, never written through
            tmp.unlink()
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    (tmp / f"rng-{accelerator.process_index}.json").write_text(json.dumps(rng_states()) + "\n", encoding="utf-8")
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), str(tmp / MODEL_FILE))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        (tmp / "state.json").write_text(state.model_copy(update={"step": step}).model_dump_json(indent=2) + "\n",
                                        encoding="utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.is_symlink():
            final.unlink()
        elif final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in final.parent.iterdir():  # only the checkpoints this code writes (step-N): nothing else is deleted
            if _is_step_folder(old) and old != final:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def _restore(file: Path, restore: Callable[[], None]) -> None:
    """Run ``restore`` (which reads ``file``); any failure becomes a DataError naming the file."""
    if not file.is_file():
        raise DataError(f"checkpoint file is missing; delete {file.parent} to resume from scratch", path=str(file))
    try:
        restore()
    except QaembedError:
        raise
    except pickle.UnpicklingError as exc:  # weights_only refused a class: tampered with, never executed
        raise DataError(
            "refused: it holds objects other than tensors and plain values, and loading them could execute "
            f"code ({' '.join(str(exc).split())[:300]}); delete {file.parent} if you did not write it",
            path=str(file),
        ) from exc
    except Exception as exc:  # truncated zip/safetensors, bad JSON, states that do not fit this model
        raise DataError(
            f"cannot restore the checkpoint from this file ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
            f"it is truncated or corrupt, or was written for another config. Delete {file.parent} to resume "
            "from the previous checkpoint (or from scratch)",
            path=str(file),
        ) from exc


def _safe_load(file: Path, map_location: Any = None) -> Any:
    return torch.load(file, map_location=map_location, weights_only=True)


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    accelerator: Any,
) -> RunState:
    """Restore model, optimizer, scheduler, scaler and this process's RNG states; returns state.json.

    Raises :class:`DataError` naming the file when one is missing, truncated or holds more
    than tensors and plain values, and :class:`QaembedError` for an old pickle checkpoint.
    """
    from safetensors.torch import load_model

    path = Path(path)
    if not (path / MODEL_FILE).is_file() and any((path / name).is_file() for name in LEGACY_PICKLES):
        raise QaembedError(
            f"{path} is a checkpoint of an older qaembed (model.pt, rng-N.pt: pickle files, which can execute code "
            "when loaded); it is not loaded. Resume it with the qaembed version that wrote it, or delete "
            f"{path.parent} to train again from step 0 with --resume"
        )
    raw = read_json(path / "state.json")
    try:
        state = RunState.model_validate(raw)
    except ValidationError as exc:
        problem = first_problem(exc, raw)
        raise DataError(problem.message, path=str(path / "state.json"), field=problem.field or None) from exc
    device = accelerator.device
    rng_file = path / f"rng-{accelerator.process_index}.json"
    if not rng_file.is_file():
        raise QaembedError(
            f"{path} holds no RNG state for process {accelerator.process_index} ({rng_file.name}): "
            "resume with the same number of processes"
        )
    _restore(path / MODEL_FILE, lambda: load_model(accelerator.unwrap_model(model), str(path / MODEL_FILE),
                                                   device=str(device)))
    _restore(path / "optimizer.pt",
             lambda: optimizer.load_state_dict(_safe_load(path / "optimizer.pt", map_location=device)))
    _restore(path / "scheduler.pt", lambda: scheduler.load_state_dict(_safe_load(path / "scheduler.pt")))
    if scaler is not None:
        _restore(path / "scaler.pt", lambda: scaler.load_state_dict(_safe_load(path / "scaler.pt")))
    _restore(rng_file, lambda: set_rng_states(json.loads(rng_file.read_text(encoding="utf-8"))))
    return state
