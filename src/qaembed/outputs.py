"""Output folder checks that commands run before any work, so that no result is computed and then lost, and the
one way files are written there: never through a symbolic link that sits inside the folder.

A command writes only inside the folder it was given. A link planted in that folder (``OUT/report.md ->
~/.bashrc``) must not make a write land elsewhere: whole files are written to a new temporary file beside the
final name and renamed over it (:func:`replacing`, :func:`replace_text`), which replaces a link instead of
following it; files that are appended to or opened by a library in place are refused when they are links
(:func:`open_append`, :func:`refuse_link`), and so are links among the folders a command writes into
(:func:`check_no_links`). The folder given as ``--out`` may itself be a link: the user chose it.

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

import errno
import os
import shutil
import uuid
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
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX: opening a link fails (ELOOP) instead of opening its target


def link_error(path: str | Path) -> ConfigError:
    """The error for a symbolic link where qaembed writes: it names the link and its target."""
    path = Path(path)
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return ConfigError(f"{path}: is a symbolic link{target} where qaembed writes; it writes only inside the output "
                       "folder and never through a link there. Remove the link (or choose another folder)")


def refuse_link(path: str | Path) -> Path:
    """``path`` as a Path when it is not a symbolic link (it may be missing); else :func:`link_error`.

    For files that a library opens in place (SQLite databases) and folders written into.
    """
    path = Path(path)
    if path.is_symlink():
        raise link_error(path)
    return path


def check_no_links(root: str | Path, path: str | Path) -> Path:
    """``path`` (inside ``root``) when no entry from below ``root`` down to ``path`` is a symbolic link; else
    :func:`link_error` naming the first one. ``root`` itself may be a link (the folder the user gave).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "real").mkdir(); (root / "link").symlink_to(root / "real")
    >>> check_no_links(root, root / "real" / "x.png") == root / "real" / "x.png"
    True
    >>> check_no_links(root, root / "link" / "x.png")
    Traceback (most recent call last):
    ...
    qaembed.errors.ConfigError: ...link: is a symbolic link (to ...real) where qaembed writes; ...
    """
    root, path = Path(root), Path(path)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise link_error(current)
    return path


def new_file(path: str | Path) -> Path:
    """Create ``path`` as a new empty file of its own: whatever is at that name first (a leftover of a killed run,
    or a link planted there) is removed, never followed. Returns ``path``, for a writer to open."""
    path = Path(path)
    try:
        path.unlink()  # a link goes, its target stays
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder where qaembed writes a temporary file; remove it") from None
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666))
    return path


@contextmanager
def replacing(path: str | Path, tmp_name: str | None = None) -> Iterator[Path]:
    """Write a whole file atomically and without following links: yields a new file beside ``path`` (named
    ``tmp_name``, default ``NAME.tmp``; give one with the right suffix to a writer that picks the format by it) to
    write; when the block ends it is renamed over ``path``, replacing a file or a link there (not its target),
    so a reader sees the old file or the new one, never half of one. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_file(path.with_name(tmp_name or path.name + ".tmp"))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def open_append(path: str | Path) -> TextIO:
    """``path`` opened to append UTF-8 text (created when missing); a symbolic link there is :func:`link_error`,
    so a log or ``metrics.jsonl`` never grows a file elsewhere."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise link_error(path) from None
        raise
    if not _NOFOLLOW and path.is_symlink():  # pragma: no cover - no O_NOFOLLOW (Windows)
        os.close(fd)
        raise link_error(path)
    return open(fd, "a", encoding="utf-8")  # noqa: SIM115 - the caller closes it


@contextmanager
def replacing_folder(path: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``path`` for a library to write a whole folder into (a model); when the
    block ends it takes ``path``'s place: an earlier folder there is removed, a link there is removed (its target
    is untouched). Links inside the earlier folder are never written through. On error the new folder goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = path.parent / f".{path.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        old = path.parent / f".{path.name}.old-{tag}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
            # never through a link: truncating and writing the pid would change the link's target
            handle = open(os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o666), "a+",  # noqa: SIM115
                          encoding="utf-8")  # held until _unlock
        except FileNotFoundError as exc:
            if create:  # a failed command removed the folder it had made just now: make it again
                continue
            raise ConfigError(f"{option} {folder}: cannot write there ({exc.strerror or exc})") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP or path.is_symlink():
                raise ConfigError(f"{option} {folder}: {link_error(path)}") from None
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
