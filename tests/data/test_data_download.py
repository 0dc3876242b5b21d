"""``qaembed data download`` end to end: a real .7z archive served over HTTP by a local mirror."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.stackexchange import StackExchangeDump
from qaembed.data.stats import compute_stats

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


SOURCE = "coffee.stackexchange.com"  # a real dump, served under a name no search-path folder has
SITE = "mirrored-coffee.stackexchange.com"


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


def test_download_fetches_extracts_and_the_site_then_prepares(mirror, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    result = runner.invoke(app, ["data", "download", SITE, "--mirror", mirror[0]])
    assert result.exit_code == 0, result.output
    target = tmp_path / "cache" / "data" / "stackexchange" / SITE
    assert result.output.strip().endswith(str(target))
    assert sorted(p.name for p in target.iterdir()) == ["Posts.xml"]  # only the dump files; archive removed
    assert (target / "Posts.xml").read_bytes() == (shared_data / "stackexchange" / SOURCE / "Posts.xml").read_bytes()
    stats = compute_stats(StackExchangeDump(target, progress=False).records())
    assert (stats["questions"], stats["answers"]) == (225, 327)  # the reference counts
    # a second call finds the cached site on the search path and downloads nothing
    again = runner.invoke(app, ["data", "download", SITE, "--mirror", "http://127.0.0.1:9"])
    assert again.exit_code == 0 and again.output.strip().endswith(str(target))


def test_missing_and_corrupt_archives_are_clear_errors(mirror, tmp_path, monkeypatch):
    url, served = mirror
    monkeypatch.setenv("QAEMBED_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("QAEMBED_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    missing = runner.invoke(app, ["data", "download", "absent.stackexchange.com", "--mirror", url])
    assert missing.exit_code != 0  # (the console entry point prints QaembedError as "Error: ...", exit 2)
    assert f"could not download {url}/absent.stackexchange.com.7z" in str(missing.exception)
    assert "QAEMBED_DATA_DIR" in str(missing.exception)  # says where to put the files by hand
    (served / "broken.stackexchange.com.7z").write_bytes(b"this is not a 7z archive")
    broken = runner.invoke(app, ["data", "download", "broken.stackexchange.com", "--mirror", url])
    assert broken.exit_code != 0 and "could not extract" in str(broken.exception)
    assert not (tmp_path / "cache" / "data" / "stackexchange" / "broken.stackexchange.com" / "Posts.xml").exists()
