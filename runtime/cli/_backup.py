"""``dobox backup`` and ``dobox restore``: copies of every object file of a data directory.

A backup reads each object file with SQLite's backup API through a read-only connection,
so it is a consistent snapshot of that object's last commit (objects are consistent one by
one; there is no cross-object snapshot, as there is no cross-object transaction). A running
runtime or server keeps serving meanwhile, but an object whose file it holds open (one with
events in the last 10 s) cannot be read from outside it: the backup then stops with an
error naming that object (see ``_inspect``). The alarm index is not copied: a data directory
without one rebuilds it from the object files when a runtime first opens it.

A restore copies the files back into a data directory whose objects nobody is serving:
each target file is locked while it is written, and an object that already exists is
refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime._engine import ALARM_INDEX_NAME
from storage import ObjectLockedError
from storage._files import is_object_file
from storage._lock import acquire_file_lock

from ._inspect import IN_USE_WAIT, InspectError, ObjectInUseError, in_use, in_use_message


def object_files(root: Path) -> Iterator[Path]:
    """Every object file under ``root`` (tenants included), as paths relative to it."""
    if not root.is_dir():
        raise InspectError(f"{root} is not a directory")
    for path in sorted(root.rglob("*.sqlite")):
        relative = path.relative_to(root)
        if is_object_file(path) and not relative.parts[0].startswith("."):
            yield relative


def backup(
    data: Path, destination: Path, *, progress: Callable[[Path], None] | None = None
) -> int:
    """Copy every object of ``data`` into ``destination`` (which must be empty or absent).
    How many objects were copied."""
    if destination.exists() and any(destination.iterdir()):
        raise InspectError(f"{destination} is not empty: back up into a new directory")
    count = 0
    for relative in object_files(data):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(data / relative, target, from_served=True)
        count += 1
        if progress is not None:
            progress(relative)
    return count


def restore(backup_dir: Path, data: Path, *, overwrite: bool = False,
            progress: Callable[[Path], None] | None = None) -> int:
    """Copy every object of ``backup_dir`` into ``data``. How many were restored.

    Each data directory it writes into (``data``, and ``data/tenants/T`` for a server's
    tenants) is held for the whole restore, so none may be in use by a runtime or server
    (they hold it while open), and none can open one meanwhile. Its alarm index is removed
    afterwards: the next runtime rebuilds it from the restored files.

    Raises:
        InspectError: an object exists in ``data`` and ``overwrite`` is not set, or a
            runtime or server uses one of those directories.
    """
    files = list(object_files(backup_dir))
    if not overwrite:
        existing = [relative for relative in files if (data / relative).exists()]
        if existing:
            raise InspectError(
                f"{len(existing)} of the objects to restore already exist in {data} (the "
                f"first: {existing[0]}); pass --overwrite to replace them"
            )
    roots = sorted({_root_of(data, relative) for relative in files})
    with contextlib.ExitStack() as held:
        for root in roots:
            held.enter_context(_holding(root))
        count = 0
        for relative in files:
            target = data / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                lock = acquire_file_lock(str(target))
            except ObjectLockedError as exc:
                raise InspectError(
                    f"{target} is being served; stop the runtime or server before restoring"
                ) from exc
            try:
                _copy(backup_dir / relative, target, from_served=False)
            finally:
                lock.release()
            count += 1
            if progress is not None:
                progress(relative)
        for root in roots:  # rebuilt from the restored files at the next start
            for stale in root.glob(f"{ALARM_INDEX_NAME}*"):
                stale.unlink()
    return count


def _root_of(data: Path, relative: Path) -> Path:
    """The data directory a runtime opens for the object file at ``relative``: ``data``, or
    a server tenant's ``data/tenants/T``."""
    if len(relative.parts) > 2 and relative.parts[0] == "tenants":
        return data / "tenants" / relative.parts[1]
    return data


@contextlib.contextmanager
def _holding(root: Path) -> Iterator[None]:
    """Hold the data directory ``root`` against runtimes (see
    ``runtime._engine._alarms.hold_data_directory``), or refuse if one uses it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InspectError(f"{root} is being served (a runtime or server has it open); "
                               "stop it before restoring") from None
        yield
    finally:
        os.close(fd)


def _copy(source: Path, target: Path, *, from_served: bool) -> None:
    """Copy one object file, reading ``source`` read-only.

    From a data directory that may be served (``from_served``) the copy is one ``VACUUM
    INTO`` statement into a new file, which gives up after ``IN_USE_WAIT`` if a runtime
    holds the source (the backup API would retry for ever). Into a data directory (a
    restore) it is the backup API, writing into the file the caller has locked.
    """
    try:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=IN_USE_WAIT)
        try:
            if from_served:
                reader.execute("VACUUM INTO ?", (str(target),))
                return
            writer = sqlite3.connect(target)
            try:
                reader.backup(writer)
            finally:
                writer.close()
        finally:
            reader.close()
    except sqlite3.Error as exc:
        if in_use(exc):
            raise ObjectInUseError(f"{in_use_message(source)} The copy in {target.parent} "
                                   "is incomplete; run it again.") from exc
        raise InspectError(f"copying {source} to {target} failed: {exc}") from exc
