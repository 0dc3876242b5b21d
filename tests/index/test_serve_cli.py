"""``qaembed serve``: bad options and bad indexes exit 2 with one line naming them, before serving;
a real server process answers on loopback and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def test_no_index_is_a_usage_error(qaembed):
    code, _, err = qaembed("serve")
    assert code == 2 and "--index" in err


@pytest.mark.parametrize("args, words", [
    (["--max-k", "0"], "--max-k"),
    (["--max-body-bytes", "-1"], "--max-body-bytes"),
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--host", "no-such-host.invalid"], "not an address of this machine"),
    (["--maps", "no/such/folder"], "--maps no/such/folder: no such folder"),
    (["--log-level", "loud"], "--log-level"),
    (["--device", "tpu9"], "tpu9"),
])
def test_bad_options_exit_2_naming_them(qaembed, built_index, args, words):
    code, _, err = qaembed("serve", "--index", built_index, "--port", "0", *args)
    assert code == 2 and words in err and "Traceback" not in err, err


def test_two_indexes_with_one_name(qaembed, built_index):
    code, _, err = qaembed("serve", "--index", f"a={built_index}", "--index", f"a={built_index}", "--port", "0")
    assert code == 2 and "two indexes are named 'a'" in err


def test_unknown_index_path(qaembed, tmp_path):
    code, _, err = qaembed("serve", "--index", tmp_path / "missing", "--port", "0")
    assert code == 2 and "missing" in err and "Traceback" not in err, err


def test_truncated_index_is_refused(qaembed, built_index, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(built_index, broken)
    vectors = broken / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:100])
    code, _, err = qaembed("serve", "--index", broken, "--port", "0")
    assert code == 2 and "vectors.faiss" in err and "Traceback" not in err, err


def test_corrupt_manifest_is_refused(qaembed, built_index, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(built_index, broken)
    (broken / "manifest.json").write_text('{"format": "qaembed-index", ')
    code, _, err = qaembed("serve", "--index", broken, "--port", "0")
    assert code == 2 and "manifest.json" in err, err


def test_index_whose_model_changed_since_it_was_built(qaembed, tiny_model_dir, other_model_dir, qa_data, tmp_path):
    from qaembed.index import build_index

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    build_index(str(model), qa_data, tmp_path / "index", progress=False)
    shutil.rmtree(model)
    shutil.copytree(other_model_dir, model)  # the run folder was retrained: same path, other weights
    code, _, err = qaembed("serve", "--index", tmp_path / "index", "--port", "0")
    assert code == 2 and "differ from those the index was built with" in err, err


def test_port_in_use(qaembed, built_index):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        code, _, err = qaembed("serve", "--index", built_index, "--port", taken.getsockname()[1])
    finally:
        taken.close()
    assert code == 2 and "is in use; choose another with --port" in err, err


def test_server_process_answers_on_loopback_and_stops_on_ctrl_c(built_index, tiny_model_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qaembed", "serve", "--index", f"tiny={built_index}", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        lines, url, deadline = [], None, time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        assert any(line.startswith("loaded tiny:") for line in lines)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/health").json()["status"] == "ok"
            hits = http.post("/search", json={"query": "hops", "k": 3}).json()["results"][0]["hits"]
            assert len(hits) == 3 and hits[0]["rank"] == 1
            assert http.post("/search", content=b"{oops", headers={"Content-Type": "application/json"}).status_code == 400
            assert http.get("/health").status_code == 200  # still up
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130  # stopped by SIGINT, as a shell reports Ctrl-C (like qaembed suite)
        rest = process.stderr.read()
        assert "Traceback" not in rest, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
