"""``qaembed data download SITE``: fetch a Stack Exchange site dump into the cache.

The site is first looked up on the data search path (:func:`qaembed.paths.find_stackexchange_site`);
when found nothing is downloaded. Otherwise ``SITE.7z`` is fetched from the public
archive (``https://archive.org/download/stackexchange/SITE.7z``, or a mirror with the
same layout) into ``<cache>/data/stackexchange/SITE/`` and its ``Posts.xml`` and
``Users.xml`` are extracted with ``py7zr`` (``pip install py7zr``) or a ``7z`` binary.
Any failure is a :class:`~qaembed.errors.QaembedError` that says where to put the
files by hand. (stackoverflow.com is split into several archives and is not handled.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from qaembed import paths
from qaembed.errors import QaembedError

ARCHIVE_URL = "https://archive.org/download/stackexchange"
EXTRACTED_FILES = ("Posts.xml", "Users.xml")


def site_cache_dir(site: str) -> Path:
    """Where a downloaded site's files go: ``<cache>/data/stackexchange/SITE``."""
    return paths.cache_dir() / "data" / paths.DEFAULT_STACKEXCHANGE_SUBDIR / site


def find_extractor() -> str:
    """``"py7zr"`` or the path of a 7z binary; raises with install instructions when there is neither."""
    try:
        import py7zr  # noqa: F401

        return "py7zr"
    except ImportError:
        pass
    for binary in ("7z", "7za", "7zz"):
        found = shutil.which(binary)
        if found:
            return found
    raise QaembedError(
        "cannot extract .7z archives: install py7zr (`pip install py7zr`) or a 7z binary "
        "(e.g. `apt-get install p7zip-full`, `brew install p7zip`)"
    )


def _manual_hint(site: str, target: Path) -> str:
    return (f"download {site}.7z yourself, extract Posts.xml (and Users.xml) into {target}, "
            f"or set QAEMBED_DATA_DIR to a folder containing stackexchange/{site}/Posts.xml")


def _extract(archive: Path, target: Path, extractor: str) -> None:
    if extractor == "py7zr":
        import py7zr

        with py7zr.SevenZipFile(archive, mode="r") as sz:
            members = [name for name in sz.getnames() if name in EXTRACTED_FILES]
            sz.extract(path=target, targets=members)
    else:
        subprocess.run([extractor, "x", "-y", f"-o{target}", str(archive), *EXTRACTED_FILES],
                       check=True, capture_output=True)


def download_stackexchange_site(site: str, *, mirror: str = ARCHIVE_URL, timeout_s: float = 60.0) -> Path:
    """The folder holding ``SITE``'s ``Posts.xml``: found on the search path, or downloaded and extracted."""
    found = paths.find_stackexchange_site(site)
    if found is not None:
        return found
    target = site_cache_dir(site)
    extractor = find_extractor()
    url = f"{mirror.rstrip('/')}/{site}.7z"
    target.mkdir(parents=True, exist_ok=True)
    archive = target / f"{site}.7z"
    partial = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(partial, archive)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise QaembedError(f"could not download {url} ({reason}); {_manual_hint(site, target)}") from exc
    try:
        _extract(archive, target, extractor)
    except (subprocess.CalledProcessError, OSError, Exception) as exc:  # py7zr raises its own Bad7zFile
        raise QaembedError(f"could not extract {archive} ({exc}); {_manual_hint(site, target)}") from exc
    if not (target / "Posts.xml").is_file():
        raise QaembedError(f"{archive} holds no Posts.xml; {_manual_hint(site, target)}")
    archive.unlink()
    return target
