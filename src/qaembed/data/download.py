"""``qaembed data download SITE``: fetch a Stack Exchange site dump into the cache.

The site is first looked up on the data search path (:func:`qaembed.paths.find_stackexchange_site`);
when found nothing is downloaded. Otherwise ``SITE.7z`` is fetched from the public
archive (``https://archive.org/download/stackexchange/SITE.7z``, or a mirror with the
same layout) into ``<cache>/data/stackexchange/SITE/`` and its ``Posts.xml`` and
``Users.xml`` are extracted with ``py7zr`` (``pip install py7zr``) or a ``7z`` binary.

Safety and integrity:

* ``SITE`` must match :data:`SITE_PATTERN` (lower-case Stack Exchange host names such as
  ``beer.stackexchange.com``, ``meta.askubuntu.com``, ``es.stackoverflow.com``); anything
  else (``../../x``, ``/tmp/x``) is refused before any file is touched.
* Only ``https://`` URLs, also after redirects; ``http://`` only for a mirror given
  explicitly (``mirror=`` / ``--mirror``, e.g. the local mirror of the tests).
* The archive is checked against the item's published file list
  (``stackexchange_files.xml`` beside the archives on archive.org: size, SHA-1, MD5) and
  against ``Content-Length``; a mismatch is an error. When the mirror publishes no such
  list the archive is accepted unverified. Either way ``download.json`` next to
  ``Posts.xml`` records the URL, size and SHA-256 of what was downloaded and whether it
  was verified.
* Everything happens in a ``.download-SITE-*`` folder beside the target that is renamed
  into place only when complete; any failure or interrupt removes it (and the cache
  folders created for it), so no partial site folder or file is left behind. A folder
  left by a killed process (``kill -9``) is removed by the next download of that site.

Any failure is a :class:`~qaembed.errors.QaembedError` that says where to put the
files by hand. (stackoverflow.com is split into several archives and is not handled.)
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from qaembed import paths
from qaembed.errors import ConfigError, QaembedError

ARCHIVE_URL = "https://archive.org/download/stackexchange"
FILE_LIST = "stackexchange_files.xml"  # archive.org's per-item list of files with size, md5, sha1
RECORD_FILE = "download.json"
EXTRACTED_FILES = ("Posts.xml", "Users.xml")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_STANDALONE = r"(?:stackoverflow\.com|askubuntu\.com|serverfault\.com|superuser\.com|mathoverflow\.net|stackapps\.com)"
SITE_PATTERN = re.compile(rf"(?:{_LABEL}\.){{1,3}}stackexchange\.com|(?:{_LABEL}\.){{0,2}}{_STANDALONE}")
_MAX_FILE_LIST_BYTES = 16 << 20


def site_cache_dir(site: str) -> Path:
    """Where a downloaded site's files go: ``<cache>/data/stackexchange/SITE``."""
    return paths.cache_dir() / "data" / paths.DEFAULT_STACKEXCHANGE_SUBDIR / check_site(site)


def check_site(site: str) -> str:
    """``site`` when it is a Stack Exchange host name (see :data:`SITE_PATTERN`); else ConfigError."""
    if not SITE_PATTERN.fullmatch(site):
        raise ConfigError(
            f"SITE {site!r}: not a Stack Exchange site name; expected a lower-case host name such as "
            "beer.stackexchange.com, meta.beer.stackexchange.com, askubuntu.com or es.stackoverflow.com"
        )
    if site == "stackoverflow.com":
        raise ConfigError("SITE 'stackoverflow.com': its dump is split into several archives, which are not handled; "
                          "download and extract stackoverflow.com-Posts.7z yourself")
    return site


def check_mirror(mirror: str, *, explicit: bool) -> str:
    """The mirror's base URL without a trailing slash: https, or http when given explicitly; else ConfigError."""
    parsed = urllib.parse.urlsplit(mirror)
    allowed = ("https", "http") if explicit else ("https",)
    if parsed.scheme not in allowed or not parsed.hostname:
        raise ConfigError(
            f"--mirror {mirror!r}: must be an https:// URL" + (" (or http:// for a mirror you trust)" if explicit else "")
        )
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ConfigError(f"--mirror {mirror!r}: give a plain base URL (no query, fragment or credentials)")
    return mirror.rstrip("/")


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


class _SameSchemeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to the allowed schemes (no https -> http downgrade, no file:// or ftp://)."""

    def __init__(self, schemes: tuple[str, ...]):
        self.schemes = schemes

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme
        if scheme not in self.schemes:
            raise urllib.error.URLError(f"refused a redirect to a {scheme}:// URL ({newurl})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(url: str) -> urllib.request.OpenerDirector:
    scheme = urllib.parse.urlsplit(url).scheme
    return urllib.request.build_opener(_SameSchemeRedirects(("https",) if scheme == "https" else ("https", "http")))


def _published_checksums(mirror: str, name: str, timeout_s: float) -> tuple[dict[str, str], str | None]:
    """({"size", "sha1", "md5"} as published for ``name``, the list's URL), or ({}, None) without a list."""
    from lxml import etree

    url = f"{mirror}/{FILE_LIST}"
    try:
        with _opener(url).open(url, timeout=timeout_s) as response:
            payload = response.read(_MAX_FILE_LIST_BYTES + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError):  # no list here (404) or unreachable
        return {}, None
    if len(payload) > _MAX_FILE_LIST_BYTES:
        return {}, None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(payload, parser)
    except etree.XMLSyntaxError as exc:
        raise QaembedError(f"{url} is not a valid file list ({exc})") from exc
    for entry in root.iter("file"):
        if entry.get("name") == name:
            published = {key: (entry.findtext(key) or "").strip().lower() for key in ("size", "sha1", "md5")}
            return {k: v for k, v in published.items() if v}, url
    return {}, url


def _fetch(url: str, destination: Path, timeout_s: float) -> dict[str, str | int]:
    """Stream ``url`` into ``destination``; returns size and digests; an incomplete body raises."""
    digests = {"sha256": hashlib.sha256(), "sha1": hashlib.sha1(), "md5": hashlib.md5()}
    size = 0
    with _opener(url).open(url, timeout=timeout_s) as response, destination.open("wb") as out:
        expected = response.headers.get("Content-Length")
        while chunk := response.read(1 << 20):
            out.write(chunk)
            size += len(chunk)
            for digest in digests.values():
                digest.update(chunk)
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise OSError(f"incomplete download: {size:,} of {int(expected):,} bytes")
    return {"size": size, **{name: digest.hexdigest() for name, digest in digests.items()}}


def _extract(archive: Path, target: Path, extractor: str) -> None:
    if extractor == "py7zr":
        import py7zr

        with py7zr.SevenZipFile(archive, mode="r") as sz:
            members = [name for name in sz.getnames() if name in EXTRACTED_FILES]
            sz.extract(path=target, targets=members)
    else:
        subprocess.run([extractor, "x", "-y", f"-o{target}", str(archive), *EXTRACTED_FILES],
                       check=True, capture_output=True)


def _created_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest first."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def download_stackexchange_site(site: str, *, mirror: str | None = None, timeout_s: float = 60.0) -> Path:
    """The folder holding ``SITE``'s ``Posts.xml``: found on the search path, or downloaded and extracted.

    ``mirror`` is the base URL holding ``SITE.7z`` (default :data:`ARCHIVE_URL`); a mirror
    other than the default counts as given explicitly and may use ``http://``.
    """
    check_site(site)
    explicit = mirror is not None and mirror.rstrip("/") != ARCHIVE_URL
    base = check_mirror(mirror or ARCHIVE_URL, explicit=explicit)
    found = paths.find_stackexchange_site(site)
    if found is not None:
        return found
    target = site_cache_dir(site)
    extractor = find_extractor()
    if target.exists():
        if any(target.iterdir()):
            raise QaembedError(f"{target} exists without Posts.xml; remove it and run the download again")
        target.rmdir()
    created = _created_parents(target.parent)
    for stale in target.parent.glob(f".download-{site}-*"):  # left by a killed download
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".download-{site}-", dir=target.parent))
    url = f"{base}/{site}.7z"
    try:
        archive = work / f"{site}.7z"
        try:
            fetched = _fetch(url, archive, timeout_s)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QaembedError(f"could not download {url} ({reason}); {_manual_hint(site, target)}") from exc
        published, list_url = _published_checksums(base, archive.name, timeout_s)
        for key, value in published.items():
            if str(fetched[key]) != value:
                raise QaembedError(
                    f"{url}: {key} {fetched[key]} differs from the published {value} ({list_url}); the download is "
                    f"corrupt or was tampered with and was removed; {_manual_hint(site, target)}"
                )
        extracted = work / "extracted"
        try:
            _extract(archive, extracted, extractor)
        except (subprocess.CalledProcessError, OSError, Exception) as exc:  # py7zr raises its own Bad7zFile
            raise QaembedError(f"could not extract {url} ({exc}); {_manual_hint(site, target)}") from exc
        posts = extracted / "Posts.xml"
        if not posts.is_file() or posts.is_symlink():
            raise QaembedError(f"{url} holds no Posts.xml; {_manual_hint(site, target)}")
        record = {
            "url": url,
            "size": fetched["size"],
            "sha256": fetched["sha256"],
            "verified": sorted(published) if published else None,  # None: the mirror publishes no checksums
            "file_list": list_url,
            "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": sorted(p.name for p in extracted.iterdir()),
        }
        (extracted / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(extracted, target)
    except BaseException:  # failure or interrupt: leave nothing behind
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
        raise
    shutil.rmtree(work, ignore_errors=True)
    return target
