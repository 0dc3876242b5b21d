"""Provenance for every result file: git commit, library versions, hardware, data hash."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

_LIBRARIES = ("qaembed", "torch", "sentence-transformers", "transformers", "accelerate", "numpy", "faiss-cpu")


def library_versions() -> dict[str, str]:
    """Installed versions of qaembed and the libraries results depend on ("missing" if absent)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def git_state(repo: str | Path | None = None) -> dict[str, str | bool | None]:
    """The commit of the source tree and whether it has uncommitted changes (None outside git).

    ``--no-optional-locks``: reading the state takes no lock in the checkout (``git status`` would take
    ``.git/index.lock`` to refresh the index, and clash with the developer's own git commands there).
    """
    cwd = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "--no-optional-locks", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def hardware() -> dict[str, object]:
    """CPU, core count and accelerators visible to torch (if installed)."""
    import os

    info: dict[str, object] = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()}
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        info["cuda"] = False
    return info


def hash_files(paths: list[str | Path], chunk: int = 1 << 20) -> str:
    """SHA-256 over the given files' names and bytes, in the given order (first 16 hex digits)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()[:16]


def environment() -> dict[str, object]:
    """Everything a result file should carry about where it was produced."""
    return {"git": git_state(), "versions": library_versions(), "hardware": hardware()}
