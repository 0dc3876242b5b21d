"""Saving matplotlib figures the one way the project does: PNG at 110 dpi, written atomically."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (temp file + rename, so a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
