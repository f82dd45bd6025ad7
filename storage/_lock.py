"""One writer per object file: an OS-level lock held for as long as the storage is open.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on the database file itself, so a second process
fails at once instead of waiting. ``flock`` locks are separate from the POSIX record locks
SQLite uses inside the file, but closing *any* descriptor of a file drops every POSIX lock
the process holds on it. So a second open of the same file inside one process is refused
from a registry before any descriptor is opened, and the lock's descriptor is closed only
after SQLite has closed its own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import threading

import attrs

from ._errors import ObjectLockedError, StorageError

_held: set[str] = set()
_held_guard = threading.Lock()


@attrs.define
class FileLock:
    """An exclusive hold on one database file; :meth:`release` lets it go."""

    path: str
    _fd: int | None

    def release(self) -> None:
        """Release the lock. Safe to call more than once."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with _held_guard:
            _held.discard(self.path)
        os.close(fd)


def acquire_file_lock(path: str, label: str | None = None) -> FileLock:
    """Lock ``path`` (creating an empty file if needed) for this process alone; errors name
    it ``label`` (default: its path).

    Raises:
        ObjectLockedError: another process, or another storage in this process, holds it.
        StorageError: the file cannot be opened at all (a directory, no permission).
    """
    real = os.path.realpath(path)
    label = label or path
    with _held_guard:
        if real in _held:
            raise ObjectLockedError(
                f"{label} is already open in this process; an object's database may have only "
                "one owner. Close the other storage first."
            )
        try:
            fd = os.open(real, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                raise StorageError(
                    f"cannot open {label}: this process has all the files open that its limit "
                    f"allows ({soft:,}: ulimit -n); raise the limit, or keep fewer objects "
                    "live") from exc
            raise StorageError(f"cannot open {label}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ObjectLockedError(
                f"{label} is held by another process; an object's database may have only one "
                "writer. Stop the other dobox process, or wait for it to exit."
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {label}: {exc.strerror}") from exc
        _held.add(real)
    return FileLock(real, fd)
