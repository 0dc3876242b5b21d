"""Output folder checks that commands run before any work, so that no result is computed and then lost.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> check_output_dir(folder / "new" / "run") == folder / "new" / "run"
True
>>> (folder / "file").write_text("x")
1
>>> check_output_dir(folder / "file")
Traceback (most recent call last):
...
qaembed.errors.ConfigError: --out ...file: is an existing file, not a folder; choose a folder path
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from qaembed.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

LOCK_FILE = ".qaembed.lock"  # in a folder a command is writing (writing_alone): not part of what it holds


def is_lock_file(path: str | Path) -> bool:
    """Whether ``path`` (a name or a path) is a folder's lock file (:func:`writing_alone`), not its content."""
    return Path(path).name == LOCK_FILE


def folder_content(folder: str | Path) -> list[Path]:
    """The entries of ``folder``, sorted, without its lock file (none when the folder does not exist).

    Every check of what an output folder holds (empty? only a dataset's files?) and every copy of a folder
    goes through it, so a folder that a command is writing, or that a killed command left its lock file
    in, holds exactly what it held before.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(path for path in folder.iterdir() if not is_lock_file(path))


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a Path when it is, or can become, a writable folder; else :class:`ConfigError` naming ``option``.

    Nothing is created: a missing folder is checked through its nearest existing parent.
    """
    path = Path(path)
    try:  # the files written there name it (manifests, results): it must be text
        str(path.absolute()).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise ConfigError(f"{option} {shown}: the path is not valid UTF-8 text; choose a name in UTF-8") from None
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{option} {path}: is a broken symbolic link")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is an existing file, not a folder; choose a folder path")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, so no folder can be created in it")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == path.absolute() else "parent folder"
        raise ConfigError(f"{option} {path}: the {what} {existing} is not writable")
    return path


@contextmanager
def writing_alone(folder: Path, command: str, option: str = "--out", *, create: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while ``command`` writes there.

    A second command into the same folder is refused with :class:`ConfigError` instead of both
    writing the same files. The lock is the kernel's (``flock`` on ``FOLDER/.qaembed.lock``, which holds
    the owner's pid and command): it goes with the process however it ends, so a killed run never leaves the folder
    locked. The lock file is removed when the command ends; one that a killed run left is taken over by
    the next command, and checks of what a folder holds do not count it (:func:`folder_content`).
    Where ``fcntl`` is missing (Windows) there is no lock.

    ``folder`` must exist, unless ``create``: then it is made (with missing parents) first, and if the
    command fails, the folders made here go again when nothing else was written in them, so a failed run
    into a new folder leaves nothing behind. Take the lock before checking what the folder holds: a
    check made under it cannot be outdated by another command's result.
    """
    folder = Path(folder)
    made = next((p for p in reversed((folder, *folder.parents)) if not p.exists()), None) if create else None
    try:
        handle = _lock(folder, command, option, create=create)
    except BaseException:
        if made is not None:  # made here, but another command holds it, or it could not be locked
            _remove_empty_dirs(folder, made)
        raise
    try:
        yield
    except BaseException:
        if made is not None:
            _unlock(handle, folder)
            handle = None
            _remove_empty_dirs(folder, made)
        raise
    finally:
        if handle is not None:
            _unlock(handle, folder)


def _lock(folder: Path, command: str, option: str, *, create: bool) -> TextIO | None:
    """The open lock file of ``folder``, locked (None without ``fcntl``); else :class:`ConfigError`.

    The file is removed when its holder ends (:func:`_unlock`): a lock taken on a file that is no longer
    ``FOLDER/.qaembed.lock`` (removed, or its folder replaced, as an index build does) is taken again on
    the file there now, so two holders never hold two different files.
    """
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    path = folder / LOCK_FILE
    while True:
        try:
            if create:
                folder.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until _unlock
        except FileNotFoundError as exc:
            if create:  # a failed command removed the folder it had made just now: make it again
                continue
            raise ConfigError(f"{option} {folder}: cannot write there ({exc.strerror or exc})") from exc
        except OSError as exc:
            raise ConfigError(f"{option} {folder}: cannot write there ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid, _, holder = handle.read().strip().partition(" ")  # "PID COMMAND" (just "PID" from earlier versions)
            handle.close()
            raise ConfigError(f"{option} {folder}: another {holder.strip() or command} is writing there now"
                              f"{f' (pid {pid})' if pid.isdigit() else ''}; wait for it to finish or choose "
                              "another folder") from None
        if _is_file_at(handle, path):
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()} {command}\n")  # who holds it, for the message to the next command
    handle.flush()
    return handle


def _is_file_at(handle: TextIO, path: Path) -> bool:
    """Whether the open ``handle`` is the file that ``path`` names now."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _unlock(handle: TextIO | None, folder: Path) -> None:
    """Remove the lock file while it is still held (only if it is still ``folder``'s), then release it."""
    if handle is None:  # pragma: no cover - not POSIX
        return
    path = folder / LOCK_FILE
    try:
        if _is_file_at(handle, path):  # not when the folder was replaced: that file is another command's
            path.unlink()
    except OSError:
        pass  # left behind: the next command takes it over
    finally:
        handle.close()


def _remove_empty_dirs(folder: Path, top: Path) -> None:
    """``rmdir`` ``folder`` and its parents up to ``top`` while they are empty."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
        if path == top:
            return
