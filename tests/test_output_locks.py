"""One writer per output folder: a command into a folder that another live command is writing is refused
(:func:`qaembed.outputs.writing_alone`), and a lock file that a killed command left changes nothing about what
the folder holds: alone it is an empty folder, beside a result it is refused or replaced as that result is.

The other writer is a separate process holding the lock, as a second terminal would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import qaembed
from qaembed.data.dataset import write_jsonl_records
from qaembed.errors import ConfigError
from qaembed.outputs import LOCK_FILE, folder_content, writing_alone
from qaembed.records import Answer, QARecord

SE_SITE = Path(__file__).parent / "data" / "fixtures" / "stackexchange" / "example.stackexchange.com"
STALE_LOCK = "4194305 qaembed data prepare\n"  # what a killed command leaves (above Linux's largest pid)

_HOLD = ("import sys\nfrom pathlib import Path\nfrom qaembed.outputs import writing_alone\n"
         "with writing_alone(Path(sys.argv[1]), sys.argv[2]):\n    print('held', flush=True)\n    sys.stdin.read()\n")


@contextmanager
def held_by_another_process(folder: Path, command: str) -> Iterator[int]:
    """``folder``'s lock held by a separate process (as ``command``) until the block ends; yields its pid."""
    env = {**os.environ, "PYTHONPATH": str(Path(qaembed.__file__).parents[1])}  # this qaembed, not another install
    process = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), command], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline() == "held\n", "the holder process did not take the lock"
        yield process.pid
    finally:
        process.stdin.close()  # it ends, and the kernel releases its lock
        process.wait(timeout=60)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Everything under ``folder``: files by their bytes, folders as None."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _records(prefix: str, count: int) -> list[QARecord]:
    topics = ["beer", "coffee", "hops", "yeast", "malt", "tea", "milk", "bread", "rice", "salt"]
    return [QARecord(id=f"{prefix}:{i}", title=f"How do I store {topics[i % 10]} number {i}?",
                     body=f"Asking about {topics[i % 10]}.",
                     answers=[Answer(id=f"{prefix}:{i}-{k}", text=f"keep {topics[(i + k) % 10]} {i} cool, way {k}",
                                     score=float(3 - k)) for k in range(2)])
            for i in range(count)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A prepared Q&A dataset (24 / 6 / 6 questions) holding a lock file a killed command left: readers ignore it."""
    folder = tmp_path_factory.mktemp("locked_data")
    records = _records("q", 36)
    for split, part in (("train", records[:24]), ("dev", records[24:30]), ("test", records[30:])):
        write_jsonl_records(folder / f"{split}.jsonl", part)
    (folder / LOCK_FILE).write_text(STALE_LOCK)
    return folder


@pytest.fixture(scope="module")
def more_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("more_data")
    for split, part in zip(("train", "dev", "test"), (_records("m", 2), _records("n", 1), _records("o", 1))):
        write_jsonl_records(folder / f"{split}.jsonl", part)
    return folder


@pytest.fixture(scope="module")
def index(tiny_model_dir, dataset, tmp_path_factory) -> Path:
    from qaembed.index import build_index

    out = tmp_path_factory.mktemp("indexes") / "index"
    build_index(str(tiny_model_dir), dataset, out, progress=False)
    return out


def _qqp(folder: Path) -> Path:
    rows = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"] + [
        f"{i}\t{2 * i}\t{2 * i + 1}\thow do I brew {i}?\thow can I brew {i}?\t{i % 2}" for i in range(1, 13)]
    path = folder / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _docs(folder: Path) -> tuple[Path, Path]:
    docs = folder / "docs"
    docs.mkdir()
    (docs / "beer.md").write_text("# Beer\n\nBeer is brewed from malt. Hops add bitterness.\n\nStore it cold.")
    (docs / "coffee.md").write_text("Coffee is roasted. Grind it fresh.")
    qa = folder / "qa.jsonl"
    qa.write_text('{"question": "How is beer made?", "answer": "From malt.", "document": "beer.md"}\n'
                  '{"question": "Is coffee roasted?", "answer": "Yes.", "document": "coffee.md"}\n')
    return docs, qa


# command, then its arguments but --out (or --index): what each test of a command runs
def _commands(tiny: Path, data: Path, tmp: Path) -> dict[str, list]:
    docs, qa = _docs(tmp)
    return {
        "qaembed data prepare": ["data", "prepare", SE_SITE, "--min-answers", "0"],
        "qaembed data prepare --format": ["data", "prepare", _qqp(tmp), "--format", "pairs-qqp"],
        "qaembed data chunk": ["data", "chunk", docs, "--qa", qa, "--model", tiny, "--positive-threshold", "-1"],
        "qaembed mine": ["mine", "--data", data, "--model", tiny, "--device", "cpu", "--no-cache",
                         "--num-negatives", "1"],
        "qaembed index build": ["index", "build", "--data", data, "--model", tiny],
        "qaembed eval": ["eval", "--data", data, "--model", tiny, "--batch-size", "8"],
        "qaembed map": ["map", "--data", data, "--split", "train", "--base", tiny, "--max-points", "20"],
        "qaembed train": ["train", "--data", data, "--set", f"model.base={tiny}", "--set", "training.max_steps=2",
                          "--set", "training.batch_size=4", "--set", "model.max_seq_length=32"],
    }


@pytest.mark.parametrize("command", ["qaembed data prepare", "qaembed data prepare --format", "qaembed data chunk",
                                     "qaembed mine", "qaembed index build", "qaembed eval", "qaembed map",
                                     "qaembed train"])
def test_a_command_into_a_folder_another_is_writing_is_refused_and_changes_nothing(
        command, qaembed_cli, tiny_model_dir, dataset, tmp_path, monkeypatch):
    import qaembed.embedding_maps as maps

    monkeypatch.setattr(maps, "umap_available", lambda: True)  # refused before umap would be used
    args = _commands(tiny_model_dir, dataset, tmp_path)[command]
    out = tmp_path / "out"
    out.mkdir()
    holder = command.removesuffix(" --format")
    with held_by_another_process(out, holder) as pid:
        before = snapshot(out)
        result = qaembed_cli(*args, "--out", out)
        assert result.exit_code == 2, result.stderr + result.stdout
        assert result.stderr.startswith(f"error: --out {out}: another {holder} is writing there now (pid {pid}); "
                                        "wait for it to finish or choose another folder")
        assert "Traceback" not in result.stderr
        assert snapshot(out) == before
    assert snapshot(out) == {}  # the lock went with its holder


def test_a_second_index_add_is_refused_while_one_runs(qaembed_cli, tiny_model_dir, index, more_data):
    with held_by_another_process(index, "qaembed index add") as pid:
        before = snapshot(index)
        result = qaembed_cli("index", "add", "--index", index, "--data", more_data)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: --index {index}: another qaembed index add is writing there now "
                                        f"(pid {pid})")
        assert snapshot(index) == before


def test_a_second_train_or_resume_into_a_live_run_is_refused(qaembed_cli, tiny_model_dir, dataset, tmp_path):
    run = tmp_path / "run"
    args = _commands(tiny_model_dir, dataset, tmp_path)["qaembed train"]
    assert qaembed_cli(*args, "--set", "training.save_every=1", "--set", "training.max_steps=1", "--out", run).exit_code == 0
    (run / "result.json").unlink()  # as if it were still running: a resume would continue it
    with held_by_another_process(run, "qaembed train") as pid:
        before = snapshot(run)
        for extra in ([], ["--resume"]):
            result = qaembed_cli(*args, "--set", "training.save_every=1", "--set", "training.max_steps=1", "--out", run,
                         *extra)
            assert result.exit_code == 2, result.stderr
            assert f"another qaembed train is writing there now (pid {pid})" in result.stderr
            assert snapshot(run) == before
    resumed = qaembed_cli(*args, "--set", "training.save_every=1", "--set", "training.max_steps=1", "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.stderr  # the holder is gone: the run is resumed
    assert not (run / LOCK_FILE).exists()


# --- a lock file a killed command left ---------------------------------------------------------------

# what a second run without --overwrite says of the first one's result, lock file or not
_REFUSED = {
    "qaembed data prepare": "folder is not empty (holds a prepared dataset",
    "qaembed data prepare --format": "folder is not empty (holds a prepared dataset",
    "qaembed data chunk": "is not empty; choose a new folder or pass --overwrite",
    "qaembed mine": "exists and is not empty; pass --overwrite",
    "qaembed index build": "already holds an index; pass --overwrite",
    "qaembed eval": "already holds a result (summary.json); pass --overwrite",
}


@pytest.mark.parametrize("command", list(_REFUSED))
def test_a_left_lock_file_is_not_content(command, qaembed_cli, tiny_model_dir, dataset, tmp_path):
    """Alone, it is an empty folder (written without --overwrite); beside a result, that result is refused
    without --overwrite and replaced with it, as without the lock file; the run leaves no lock file."""
    args = _commands(tiny_model_dir, dataset, tmp_path)[command]
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(STALE_LOCK)
    first = qaembed_cli(*args, "--out", out)
    assert first.exit_code == 0, first.stderr + first.stdout
    assert not (out / LOCK_FILE).exists()  # taken over, and gone with the run
    written = sorted(p.name for p in out.iterdir())

    (out / LOCK_FILE).write_text(STALE_LOCK)
    before = snapshot(out)
    refused = qaembed_cli(*args, "--out", out)
    assert refused.exit_code == 2 and _REFUSED[command] in refused.stderr, refused.stderr
    assert LOCK_FILE not in refused.stderr  # not named as content
    assert snapshot(out) == before
    again = qaembed_cli(*args, "--out", out, "--overwrite")
    assert again.exit_code == 0, again.stderr + again.stdout
    assert sorted(p.name for p in out.iterdir()) == written


def test_a_mined_copy_takes_no_lock_file_from_its_data(dataset, tmp_path):
    from qaembed.mining.dataset import _copied

    assert [p.name for p in _copied(dataset)] == ["dev.jsonl", "test.jsonl"]


def test_an_index_whose_old_folder_holds_a_lock_file_is_recovered(tiny_model_dir, index, tmp_path):
    """A build killed between its two renames leaves the earlier index (with the lock file it held) beside."""
    import shutil

    from qaembed.index.store import _recover_stale_folders

    out = tmp_path / "index"
    old = tmp_path / f".index.old-{4194305}-0123abcd"
    shutil.copytree(index, old)
    (old / LOCK_FILE).write_text(STALE_LOCK)
    _recover_stale_folders(out)
    assert out.is_dir() and not old.exists()
    assert [p.name for p in folder_content(out)] == [p.name for p in folder_content(index)]


# --- the lock itself --------------------------------------------------------------------------------

def test_a_second_lock_is_refused_even_in_the_same_process(tmp_path):
    """flock locks an open file, not a process: opening the file again here conflicts as another process would."""
    with writing_alone(tmp_path, "qaembed eval"):
        with pytest.raises(ConfigError, match=rf"another qaembed eval is writing there now \(pid {os.getpid()}\)"):
            with writing_alone(tmp_path, "qaembed map"):
                pass
        assert folder_content(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_lock_in_a_folder_that_was_replaced_leaves_the_new_folder_s_lock_alone(tmp_path):
    """An index build renames the folder it locked away; a command in the new folder locks its own file,
    which the first one's release must not remove."""
    folder = tmp_path / "index"
    folder.mkdir()
    with writing_alone(folder, "qaembed index build"):
        folder.rename(tmp_path / ".index.old")
        folder.mkdir()
        second = writing_alone(folder, "qaembed index build")
        second.__enter__()
    assert (folder / LOCK_FILE).is_file()  # the second still holds it
    with pytest.raises(ConfigError, match="another qaembed index build is writing there now"):
        with writing_alone(folder, "qaembed eval"):
            pass
    second.__exit__(None, None, None)
    assert not (folder / LOCK_FILE).exists()


def test_create_makes_the_folder_and_a_failed_command_leaves_none(tmp_path):
    target = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with writing_alone(target, "qaembed eval", create=True):
            assert target.is_dir() and folder_content(target) == []
            raise RuntimeError("the command failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with writing_alone(target, "qaembed eval", create=True):
            (target / "partial.bin").write_bytes(b"kept")  # something was written: nothing is removed
            raise RuntimeError("the command failed")
    assert [p.name for p in target.iterdir()] == ["partial.bin"]
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        with writing_alone(existing, "qaembed eval", create=True):
            raise RuntimeError("the command failed")
    assert existing.is_dir()  # not made by the command: kept
