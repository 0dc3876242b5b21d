"""``qaembed data download`` end to end: a real .7z archive served over HTTP by a local mirror.

The mirror is given explicitly (``--mirror http://127.0.0.1:PORT``), the only way plain
http is accepted. Bad site names, URL schemes, checksum mismatches, truncated bodies and
interrupts must end in a clear error (exit 2 through the console entry point) and leave no
site folder, partial file or cache folder behind.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import sys
import threading
from pathlib import Path

import pytest

from qaembed.data.stackexchange import StackExchangeDump
from qaembed.data.stats import compute_stats


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        if self.path.startswith("/short."):  # announces more bytes than it sends, like a dropped connection
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"7z" * 10)
            return
        super().do_GET()


SOURCE = "coffee.stackexchange.com"  # a real dump, served under a name no search-path folder has
SITE = "mirrored-coffee.stackexchange.com"


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of ``qaembed ARGS`` through the console entry point."""
    from qaembed.cli import main

    monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """An empty data search path and a cache folder that does not exist yet."""
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no ../shared/data on the search path
    return tmp_path / "cache"


@pytest.fixture()
def mirror(shared_data: Path, tmp_path: Path):
    """(url, folder): http://127.0.0.1:PORT serving folder, with SITE.7z (Posts.xml + another file)."""
    py7zr = pytest.importorskip("py7zr")
    served = tmp_path / "served"
    served.mkdir()
    with py7zr.SevenZipFile(served / f"{SITE}.7z", mode="w") as archive:
        archive.write(shared_data / "stackexchange" / SOURCE / "Posts.xml", "Posts.xml")
        archive.writestr(b"<comments/>", "Comments.xml")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def _publish_file_list(served: Path, name: str, *, sha1: str | None = None) -> None:
    """``stackexchange_files.xml`` as archive.org publishes it (size, md5, sha1 per file)."""
    data = (served / name).read_bytes()
    sha1 = sha1 or hashlib.sha1(data).hexdigest()
    (served / "stackexchange_files.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<files>\n'
        f'  <file name="other.stackexchange.com.7z" source="original"><size>1</size></file>\n'
        f'  <file name="{name}" source="original"><mtime>1</mtime><size>{len(data)}</size>'
        f"<md5>{hashlib.md5(data).hexdigest()}</md5><crc32>0</crc32><sha1>{sha1}</sha1></file>\n</files>\n"
    )


def test_download_fetches_extracts_records_and_the_site_then_prepares(mirror, shared_data, cache, monkeypatch, capsys):
    url, served = mirror
    code = run_main(monkeypatch, capsys, "data", "download", SITE, "--mirror", url)[0]
    assert code == 0
    target = cache / "data" / "stackexchange" / SITE
    assert sorted(p.name for p in target.iterdir()) == ["Posts.xml", "download.json"]  # archive removed
    assert (target / "Posts.xml").read_bytes() == (shared_data / "stackexchange" / SOURCE / "Posts.xml").read_bytes()
    record = json.loads((target / "download.json").read_text())
    archive = (served / f"{SITE}.7z").read_bytes()
    assert record["url"] == f"{url}/{SITE}.7z" and record["size"] == len(archive)
    assert record["sha256"] == hashlib.sha256(archive).hexdigest()
    assert record["verified"] is None and record["files"] == ["Posts.xml"]  # this mirror publishes no checksums
    stats = compute_stats(StackExchangeDump(target, progress=False).records())
    assert (stats["questions"], stats["answers"]) == (225, 327)  # the reference counts
    # a second call finds the cached site on the search path and downloads nothing
    assert run_main(monkeypatch, capsys, "data", "download", SITE, "--mirror", "http://127.0.0.1:9")[0] == 0
    assert not list(target.parent.glob(".download-*"))


def test_published_checksums_are_verified(mirror, cache, monkeypatch, capsys):
    url, served = mirror
    _publish_file_list(served, f"{SITE}.7z")
    assert run_main(monkeypatch, capsys, "data", "download", SITE, "--mirror", url)[0] == 0
    record = json.loads((cache / "data" / "stackexchange" / SITE / "download.json").read_text())
    assert record["verified"] == ["md5", "sha1", "size"] and record["file_list"] == f"{url}/stackexchange_files.xml"


def test_tampered_archive_is_refused_and_nothing_is_left(mirror, cache, monkeypatch, capsys):
    url, served = mirror
    _publish_file_list(served, f"{SITE}.7z", sha1="0" * 40)
    code, err = run_main(monkeypatch, capsys, "data", "download", SITE, "--mirror", url)
    assert code == 2
    assert f"error: {url}/{SITE}.7z: sha1" in err and "differs from the published 0000" in err
    assert "tampered" in err
    assert not cache.exists()  # no site folder, no partial file, not even the cache folders


@pytest.mark.parametrize("site", [
    "../../../../x", "/tmp/x", "..", "beer.stackexchange.com/../../x", "Beer.stackexchange.com", "beer",
    "stackexchange.com", "beer.stackexchange.com.evil.org", "x-.stackexchange.com", "a b.stackexchange.com",
])
def test_bad_site_names_are_refused_before_any_file_is_touched(site, cache, tmp_path, monkeypatch, capsys):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, err = run_main(monkeypatch, capsys, "data", "download", site, "--mirror", "http://127.0.0.1:9")
    assert code == 2 and f"error: SITE {site!r}: not a Stack Exchange site name" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_site_names_stack_exchange_uses_are_accepted():
    from qaembed.data.download import check_site

    for site in ("beer.stackexchange.com", "meta.beer.stackexchange.com", "meta.stackexchange.com", "askubuntu.com",
                 "meta.serverfault.com", "es.stackoverflow.com", "es.meta.stackoverflow.com", "mathoverflow.net",
                 "3dprinting.stackexchange.com", "mirrored-coffee.stackexchange.com"):
        assert check_site(site) == site


def test_stackoverflow_itself_says_it_is_split(cache, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "data", "download", "stackoverflow.com")
    assert code == 2 and "split into several archives" in err and not cache.exists()


@pytest.mark.parametrize("url", ["file:///etc", "ftp://example.org/stackexchange", "gopher://x", "127.0.0.1:8000",
                                 "https://user:secret@example.org/x"])
def test_only_https_or_an_explicit_http_mirror(url, cache, monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, "data", "download", "beer.stackexchange.com", "--mirror", url)
    assert code == 2 and f"error: --mirror {url!r}" in err and not cache.exists()


def test_plain_http_needs_an_explicit_mirror_and_redirects_keep_https():
    import urllib.error
    import urllib.request

    from qaembed.data.download import _SameSchemeRedirects, check_mirror
    from qaembed.errors import ConfigError

    assert check_mirror("http://127.0.0.1:8000/", explicit=True) == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match="must be an https:// URL"):
        check_mirror("http://archive.org/download/stackexchange", explicit=False)
    request = urllib.request.Request("https://archive.org/download/stackexchange/beer.stackexchange.com.7z")
    with pytest.raises(urllib.error.URLError, match="refused a redirect to a http:// URL"):
        _SameSchemeRedirects(("https",)).redirect_request(request, None, 302, "Found", {}, "http://evil.org/x.7z")


def test_missing_corrupt_and_truncated_archives_are_clear_errors_and_leave_nothing(mirror, cache, monkeypatch, capsys):
    url, served = mirror
    code, err = run_main(monkeypatch, capsys, "data", "download", "absent.stackexchange.com", "--mirror", url)
    assert code == 2 and f"could not download {url}/absent.stackexchange.com.7z" in err
    assert "QAEMBED_DATA_DIR" in err  # says where to put the files by hand
    (served / "broken.stackexchange.com.7z").write_bytes(b"this is not a 7z archive")
    code, err = run_main(monkeypatch, capsys, "data", "download", "broken.stackexchange.com", "--mirror", url)
    assert code == 2 and "could not extract" in err
    code, err = run_main(monkeypatch, capsys, "data", "download", "short.stackexchange.com", "--mirror", url)
    assert code == 2 and "could not download" in err and "(incomplete download: 20 of 1,000 bytes)" in err
    assert not cache.exists()


def test_interrupted_download_leaves_nothing(mirror, cache, monkeypatch):
    from qaembed.data import download

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.download_stackexchange_site(SITE, mirror=mirror[0])
    assert not cache.exists()


def test_a_folder_left_by_a_killed_download_is_removed_next_time(mirror, cache):
    from qaembed.data import download

    stale = cache / "data" / "stackexchange" / f".download-{SITE}-abc123"
    stale.mkdir(parents=True)
    (stale / f"{SITE}.7z").write_bytes(b"partial")
    target = download.download_stackexchange_site(SITE, mirror=mirror[0])
    assert (target / "Posts.xml").is_file() and not stale.exists()
