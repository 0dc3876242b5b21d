"""Where qaembed looks for data and keeps its cache.

The data search path, in order:

1. every folder in ``QAEMBED_DATA_DIR`` (``os.pathsep``-separated);
2. ``../shared/data`` relative to the current directory, when it exists (this repository's
   development and CI layout);
3. the cache, ``QAEMBED_CACHE_DIR`` or ``~/.cache/qaembed``, where ``qaembed data download``
   puts what it fetches.

Stack Exchange site dumps are looked up as ``<root>/stackexchange/<site>/`` in each folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STACKEXCHANGE_SUBDIR = "stackexchange"


def cache_dir() -> Path:
    """The cache folder (created on demand by callers that write to it)."""
    env = os.environ.get("QAEMBED_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qaembed"


def data_search_path() -> list[Path]:
    """Folders searched for data, in order (see the module docstring)."""
    roots: list[Path] = []
    env = os.environ.get("QAEMBED_DATA_DIR")
    if env:
        roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    shared = Path.cwd().parent / "shared" / "data"
    if shared.is_dir():
        roots.append(shared)
    roots.append(cache_dir() / "data")
    return roots


def find_stackexchange_site(site: str) -> Path | None:
    """The folder holding ``Posts.xml`` for ``site`` on the search path, or None."""
    for root in data_search_path():
        candidate = root / DEFAULT_STACKEXCHANGE_SUBDIR / site
        if (candidate / "Posts.xml").is_file():
            return candidate
    return None


def default_stackexchange_sites() -> list[Path]:
    """All Stack Exchange site folders in the first search-path root that has any.

    This is the default data for ``qaembed data prepare`` and ``qaembed suite`` with no
    sources given. Raises FileNotFoundError naming every folder tried.
    """
    tried = []
    for root in data_search_path():
        folder = root / DEFAULT_STACKEXCHANGE_SUBDIR
        tried.append(str(folder))
        if folder.is_dir():
            sites = sorted(p for p in folder.iterdir() if (p / "Posts.xml").is_file())
            if sites:
                return sites
    raise FileNotFoundError(
        "no Stack Exchange data found; looked for <site>/Posts.xml under: "
        + ", ".join(tried)
        + ". Set QAEMBED_DATA_DIR to a folder containing stackexchange/<site>/Posts.xml, "
        "or run `qaembed data download SITE`."
    )
