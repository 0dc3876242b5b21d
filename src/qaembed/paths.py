"""Where qaembed looks for data and keeps its cache.

The data search path, in order:

1. every folder in ``QAEMBED_DATA_DIR`` (``os.pathsep``-separated);
2. ``../shared/data`` relative to the current directory, when it exists (this repository's
   development and CI layout);
3. the cache, ``QAEMBED_CACHE_DIR`` or ``~/.cache/qaembed``, where ``qaembed data download``
   puts what it fetches.

Stack Exchange site dumps are looked up as ``<root>/stackexchange/<site>/`` in each folder.

The default data (``qaembed data prepare`` with no sources, ``qaembed suite`` without
``--data``) is every Stack Exchange site in the first search-path folder that has any;
when there is none, it is the sample embedded in the package
(``qaembed/default_data/stackexchange-sample.jsonl.gz``: every question of five small
sites, built by ``scripts/build_default_data.py``), so a fresh install runs with no data
folder. :func:`default_data_sources` says which was chosen in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_STACKEXCHANGE_SUBDIR = "stackexchange"
EMBEDDED_SAMPLE = Path(__file__).resolve().parent / "default_data" / "stackexchange-sample.jsonl.gz"
OWN_DATA_HINT = "use --data DIR or `qaembed data download SITE` for your own data"  # the suite's option


def cache_dir() -> Path:
    """The cache folder (created on demand by callers that write to it)."""
    env = os.environ.get("QAEMBED_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qaembed"


def development_data_dir() -> Path:
    """``../shared/data`` beside the current folder: this repository's development and CI layout."""
    return Path.cwd().parent / "shared" / "data"


def data_search_path() -> list[Path]:
    """Folders searched for data, in order (see the module docstring)."""
    roots: list[Path] = []
    env = os.environ.get("QAEMBED_DATA_DIR")
    if env:
        roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    shared = development_data_dir()
    if shared.is_dir():
        roots.append(shared)
    roots.append(cache_dir() / "data")
    return roots


def search_path_origin(root: Path) -> str:
    """Why ``root`` is on the data search path, in words for the resolution message."""
    env = [Path(p).expanduser() for p in os.environ.get("QAEMBED_DATA_DIR", "").split(os.pathsep) if p]
    if root in env:
        return "from QAEMBED_DATA_DIR"
    if root == development_data_dir():
        return "the development layout ../shared/data beside the current folder; QAEMBED_DATA_DIR overrides it"
    if root == cache_dir() / "data":
        return "the cache of qaembed data download"
    return "on the data search path"


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


@dataclass(frozen=True)
class DefaultData:
    """The data used when none is given: its sources and a line saying what it is."""

    sources: list[str]  # SOURCE arguments for :func:`qaembed.data.prepare.prepare_dataset`
    description: str  # what the data is, e.g. "embedded sample of 5 Stack Exchange sites (2,078 questions; CC BY-SA)"
    embedded: bool  # True: the sample shipped in the package

    @property
    def notice(self) -> str:
        """One line for the terminal: which data is used and how to use your own (``qaembed suite``'s words)."""
        return self.line(OWN_DATA_HINT)

    def line(self, hint: str) -> str:
        """``data: <description> — <hint>``, for a command whose way to give other data differs."""
        return f"data: {self.description} — {hint}"


def default_data_sources() -> DefaultData:
    """The default data: Stack Exchange sites on the data search path, else the embedded sample."""
    try:
        sites = default_stackexchange_sites()
    except FileNotFoundError as exc:
        if not EMBEDDED_SAMPLE.is_file():  # a broken install: say so rather than run on nothing
            raise FileNotFoundError(f"{exc} The embedded sample {EMBEDDED_SAMPLE} is missing too "
                                    "(reinstall qaembed).") from exc
        questions, site_names = embedded_sample_counts()
        return DefaultData(
            sources=[str(EMBEDDED_SAMPLE)],
            description=f"embedded sample of {len(site_names)} Stack Exchange sites ({questions:,} questions; CC BY-SA)",
            embedded=True,
        )
    origin = search_path_origin(sites[0].parent.parent)
    return DefaultData(
        sources=[str(p) for p in sites],
        description=f"{len(sites)} Stack Exchange site(s) in {sites[0].parent} ({origin}): {', '.join(p.name for p in sites)}",
        embedded=False,
    )


@lru_cache(maxsize=1)
def embedded_sample_counts() -> tuple[int, tuple[str, ...]]:
    """``(questions, sites)`` of the embedded sample (read once; about 0.2 s)."""
    import gzip

    sites: dict[str, None] = {}
    questions = 0
    with gzip.open(EMBEDDED_SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                questions += 1
                sites[json.loads(line)["id"].rsplit(":", 1)[0]] = None
    return questions, tuple(sites)
