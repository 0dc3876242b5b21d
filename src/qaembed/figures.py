"""Saving matplotlib figures the one way the project does: PNG at 110 dpi, written atomically (and never through a
link at the PNG's name: :func:`qaembed.outputs.replacing`)."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (temp file + rename, so a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    from qaembed.outputs import replacing

    try:
        with replacing(path, tmp_name=path.stem + ".tmp.png") as tmp:  # savefig picks PNG by the suffix
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
