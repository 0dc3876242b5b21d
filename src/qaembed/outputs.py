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

from qaembed.errors import ConfigError

LOCK_FILE = ".qaembed.lock"


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
def writing_alone(folder: Path, command: str, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (an existing folder) while ``command`` writes there.

    A second command into the same folder is refused with :class:`ConfigError` instead of both
    writing the same files. The lock is the kernel's (``flock`` on ``FOLDER/.qaembed.lock``, which holds
    the owner's pid): it goes with the process however it ends, so a killed run never leaves the folder
    locked. Where ``fcntl`` is missing (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for the context
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise ConfigError(f"{option} {folder}: another {command} is writing there now"
                              f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to finish or choose "
                              "another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
