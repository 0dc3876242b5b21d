"""``prepare --out``: no silent overwrite, files and unwritable folders refused before work, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qaembed import paths
from qaembed.data.prepare import OUTPUT_FILES, PrepareConfig, prepare_dataset, remove_stale_temp_dirs
from qaembed.errors import ConfigError
from qaembed.outputs import LOCK_FILE, folder_content

FIXTURES = Path(__file__).parent / "fixtures"
SE_SITE = FIXTURES / "stackexchange" / "example.stackexchange.com"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), to show nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def prepared(tmp_path) -> Path:
    out = tmp_path / "ds"
    prepare_dataset([str(SE_SITE)], out, PrepareConfig(min_answers=0), progress=False)
    return out


def test_existing_dataset_is_refused_without_overwrite(prepared, tmp_path, qaembed_cli):
    before = _snapshot(tmp_path)
    result = qaembed_cli("data", "prepare", SE_SITE, FIXTURES / "ranked_qa.json", "--out", prepared)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --out {prepared}: folder is not empty (holds a prepared dataset: ")
    assert "give --overwrite" in result.stderr
    default = qaembed_cli("data", "prepare", "--out", prepared)  # default data: refused before it is announced
    assert default.exit_code == 2 and default.stderr.startswith(f"error: --out {prepared}: folder is not empty")
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_the_dataset_files(prepared, qaembed_cli):
    (prepared / "notes.txt").write_text("mine")
    (prepared / "sub").mkdir()
    (prepared / "sub" / "keep.bin").write_bytes(b"\x00\x01")
    old_train = (prepared / "train.jsonl").read_bytes()
    result = qaembed_cli("data", "prepare", SE_SITE, FIXTURES / "ranked_qa.json", "--out", prepared, "--overwrite",
                         "--min-answers", "0")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in prepared.iterdir()) == sorted([*OUTPUT_FILES, "notes.txt", "sub"])
    assert (prepared / "notes.txt").read_text() == "mine" and (prepared / "sub" / "keep.bin").read_bytes() == b"\x00\x01"
    assert "ranked_qa.json" in (prepared / "manifest.json").read_text()
    assert (prepared / "train.jsonl").read_bytes() != old_train or (prepared / "test.jsonl").stat().st_size


def test_a_prepare_killed_while_the_new_dataset_moves_in_leaves_no_old_split_beside_a_new_one(prepared, monkeypatch):
    """Killed after the first file of the new dataset took its place: the old dev/test (and the manifest that
    vouched for them) must be gone, or train and test would come from two different splits."""
    import qaembed.data.prepare as prepare_module

    real, moved = os.replace, []

    def killed_after_the_first(source, target):
        if Path(target).parent != prepared:  # files written inside the staging folder
            return real(source, target)
        if moved:
            raise KeyboardInterrupt  # as if SIGKILLed here (the cleanup below runs only for the staging folder)
        real(source, target)
        moved.append(Path(target).name)

    monkeypatch.setattr(prepare_module.os, "replace", killed_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset([str(SE_SITE), str(FIXTURES / "ranked_qa.json")], prepared,
                        PrepareConfig(min_answers=0, seed=99), progress=False, overwrite=True)
    left = sorted(p.name for p in prepared.iterdir() if not p.name.startswith("."))
    assert left == moved == ["train.jsonl"]  # the new train alone: incomplete, refused by readers, not mixed


def test_any_non_empty_folder_is_refused(tmp_path, qaembed_cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("do not lose me")
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", out)
    assert result.exit_code == 2 and f"--out {out}: folder is not empty (holds 1 entries: thesis.tex)" in result.stderr
    assert _snapshot(out) == {"thesis.tex": b"do not lose me"}


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, qaembed_cli, monkeypatch):
    target = tmp_path / "dataset.jsonl"
    target.write_text("precious\n")
    opened = []
    monkeypatch.setattr("qaembed.data.prepare.open_source", lambda *a, **k: opened.append(a))
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", target)
    assert result.exit_code == 2
    assert f"error: --out {target}: is an existing file, not a folder" in result.stderr
    assert opened == [] and target.read_text() == "precious\n" and _snapshot(tmp_path) == {"dataset.jsonl": b"precious\n"}


def test_out_below_a_file_is_unwritable(tmp_path, qaembed_cli):
    (tmp_path / "plain").write_text("x")
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", tmp_path / "plain" / "ds")
    assert result.exit_code == 2
    assert f"--out {tmp_path / 'plain' / 'ds'}: {tmp_path / 'plain'} is a file, so no folder can be created in it" \
        in result.stderr
    assert _snapshot(tmp_path) == {"plain": b"x"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_unwritable(tmp_path, qaembed_cli):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = qaembed_cli("data", "prepare", SE_SITE, "--out", locked / "ds")
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and f"--out {locked / 'ds'}: the parent folder {locked} is not writable" in result.stderr
    assert list(locked.iterdir()) == []


def test_failed_prepare_leaves_no_new_folder_and_keeps_an_old_dataset(prepared, tmp_path, qaembed_cli):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x:1", "title": "T", "answers": [{"id": "x:2", "text": "a", "score": "many"}]}\n')
    result = qaembed_cli("data", "prepare", bad, "--out", tmp_path / "new" / "deeper")
    assert result.exit_code == 2 and f"{bad}:1, field 'answers.0.score'" in result.stderr
    assert not (tmp_path / "new").exists()
    before = _snapshot(prepared)
    result = qaembed_cli("data", "prepare", bad, "--out", prepared, "--overwrite")
    assert result.exit_code == 2
    assert _snapshot(prepared) == before and sorted(p.name for p in prepared.iterdir()) == sorted(OUTPUT_FILES)


def test_stale_temp_folders_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "ds"
    dead = out / ".prepare-999999999-abcd_123"  # pid beyond pid_max: that process is gone
    (dead / "qaembed-spill-x1").mkdir(parents=True)
    (dead / "records.sqlite").write_bytes(b"x")
    (dead / "train.jsonl.tmp").write_text("{}\n")
    legacy = out / ".prepare-k2j4h5g6"  # earlier versions: no pid in the name
    legacy.mkdir()
    (legacy / "records.sqlite").write_bytes(b"x")
    live = out / f".prepare-{os.getpid()}-abcdefgh"  # a prepare that is still running
    live.mkdir()
    users = out / ".prepare-notmine1"  # named like ours but holding a file prepare never writes
    users.mkdir()
    (users / "notes.txt").write_text("keep")
    lookalike = out / ".prepare-backup"  # not our name pattern
    lookalike.mkdir()
    removed = remove_stale_temp_dirs(out)
    assert removed == [dead, legacy] and not dead.exists() and not legacy.exists()
    assert live.is_dir() and (users / "notes.txt").read_text() == "keep" and lookalike.is_dir()


def test_a_killed_prepare_leaves_a_temp_folder_that_the_next_run_removes(tmp_path, qaembed_cli, pause_when):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "qaembed", "data", "prepare", str(paths.EMBEDDED_SAMPLE),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pause_when(proc, lambda: out.is_dir() and any(p.name.startswith(".prepare-") for p in out.iterdir()),
               timeout=60, what="prepare's temporary folder")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in folder_content(out)]  # and its lock file, which the next run takes over
    assert len(left) == 1 and left[0].startswith(f".prepare-{proc.pid}-")  # nothing under a final name
    assert (out / LOCK_FILE).is_file()
    result = qaembed_cli("data", "prepare", SE_SITE, "--out", out, "--min-answers", "0")
    assert result.exit_code == 0, result.stderr
    assert f"removed {out / left[0]} (temporary folder of an interrupted prepare)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)


def test_suite_folder_is_prepared_again_in_place(tmp_path):
    from qaembed.suite.dataset import resolve_suite_data

    first = resolve_suite_data(str(SE_SITE), tmp_path / "suite", PrepareConfig(min_answers=0), progress=False)
    (tmp_path / "suite" / "data" / "dev.jsonl").write_text("")  # damaged: prepared again over its own files
    second = resolve_suite_data(str(SE_SITE), tmp_path / "suite", PrepareConfig(min_answers=0), progress=False)
    assert second.hash == first.hash


def test_library_callers_get_the_same_refusal(prepared):
    with pytest.raises(ConfigError, match="folder is not empty"):
        prepare_dataset([str(SE_SITE)], prepared, progress=False)
