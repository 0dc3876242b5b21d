r"""Parquet tables and ``.npz`` arrays that runs write (per-question and per-pair results, map samples), read
back with errors that name the file: a truncated or garbage file is a :class:`~qaembed.errors.DataError`
(``FILE: unreadable (corrupt or truncated: ...); rerun that run``), never a pyarrow or numpy traceback.
``.npz`` files are read with ``allow_pickle=False``: no code from a file is run.

>>> import tempfile, pathlib, numpy as np, pandas as pd
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pd.DataFrame({"ndcg": [0.5, 1.0]}).to_parquet(folder / "per_question.parquet")
>>> read_parquet(folder / "per_question.parquet")["ndcg"].tolist()
[0.5, 1.0]
>>> np.savez(folder / "sample.npz", ids=np.array(["a", "b"]), embeddings=np.eye(2))
>>> sorted(load_npz(folder / "sample.npz", ("ids", "embeddings")))
['embeddings', 'ids']
>>> _ = (folder / "per_question.parquet").write_bytes(b"PAR1 not a table")
>>> read_parquet(folder / "per_question.parquet")
Traceback (most recent call last):
...
qaembed.errors.DataError: ...per_question.parquet: unreadable (corrupt or truncated: ...); rerun that run
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qaembed.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

REMEDY = "rerun that run"


def unreadable(path: str | Path, exc: BaseException) -> DataError:
    """The error for a file that exists but cannot be read (its reason shortened to one line)."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".replace(f" '{path}'", "").split())[:300]  # path named once
    return DataError(f"unreadable (corrupt or truncated: {reason}); {REMEDY}", path=str(path))


def read_parquet(path: str | Path) -> pd.DataFrame:
    """The table in a Parquet file; a damaged file is a :class:`DataError` naming it."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise unreadable(path, exc) from exc


def write_parquet(frame: pd.DataFrame, path: str | Path, *, index: bool = True) -> Path:
    """Write ``frame`` as a Parquet file atomically, replacing (never following) a link at ``path``."""
    from qaembed.outputs import replacing

    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=index)
    return Path(path)


def load_npz(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file, read in full (``allow_pickle=False``).

    A damaged file (not a zip, truncated, holding pickled objects) is a :class:`DataError` naming it; a
    missing array one naming the file and the key as field.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise unreadable(path, exc) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):  # a plain .npy
        raise unreadable(path, ValueError(f"a single {type(data).__name__}, not an .npz archive"))
    with data:
        missing = [key for key in keys if key not in data.files]
        if missing:
            raise DataError(f"missing (the file holds {', '.join(data.files) or 'no arrays'}); {REMEDY}",
                            path=str(path), field=missing[0])
        try:
            return {key: data[key] for key in keys}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # a damaged member
            raise unreadable(path, exc) from exc
