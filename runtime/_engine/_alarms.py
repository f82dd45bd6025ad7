"""Alarms: the runtime's index of pending alarms, and the scheduler that fires them.

An object's alarm is stored in its own database (``ctx.storage.set_alarm``), written in the
same transaction as the rest of its turn. So that alarms fire for objects that are not
live, the runtime also keeps an **index** in ``<data>/.alarms.sqlite``: one row per object
with a pending alarm. The object's file is the truth; the index may only ever hold *more*:

- when a turn sets an alarm, the index row is written, durably, *before* the object's
  commit; when a turn deletes one, the row goes *after* it. A crash in between leaves a
  row whose alarm is gone, which fires, finds nothing due, and is dropped.
- a data directory without an index (new, or copied without it) is scanned once: every
  object file's alarm is put in a new index before any alarm fires.

The **scheduler** sleeps until the earliest alarm is due, then sends each due object an
alarm event, which activates the object if it is not live and passes through its input
gate like any other event. At most ``max_concurrent_alarms`` alarm events are in flight at
once, earliest due first: after a restart, thousands of overdue alarms fire once each,
spread out behind that limit, while other calls go on between them.

Retries follow Durable Objects: when ``alarm()`` raises, the alarm is set again (in the same
turn) for 2 s later, doubling with each retry, plus up to 25% jitter, at most 6 retries; a
new ``set_alarm`` meanwhile wins; after the last retry the alarm is dropped and logged.
"""

from __future__ import annotations

import fcntl
import heapq
import logging
import os
import random
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from actors import DurableObject, ObjectId, ObjectResetError, OverloadedError, RemoteError
from actors._ids import id_from_string, namespace_key
from storage import StorageError
from storage._files import connect_read_only, object_paths, peek_alarm

from ._event import Event
from ._lowlevel import EventSink

if TYPE_CHECKING:
    from ._options import RuntimeOptions


class AlarmsHost(EventSink, Protocol):
    """What the scheduler uses of its runtime (a router): where events go, and these."""

    options: RuntimeOptions
    accepting: bool

    def now(self) -> float: ...

    def trio_time_of(self, epoch: float) -> float: ...


log = logging.getLogger("dobox.runtime")

ALARM_RETRY_START = 2.0
ALARM_MAX_RETRIES = 6
ALARM_INDEX_NAME = ".alarms.sqlite"


def retry_delay(retry: int, jitter: float, rng: random.Random) -> float:
    """Seconds before retry number ``retry`` (1-based): 2, 4, 8, ... plus up to ``jitter``."""
    base: float = ALARM_RETRY_START * 2 ** (retry - 1)
    return base * (1 + jitter * rng.random())


class AlarmIndex:
    """Which objects have a pending alarm, and when (see the module docstring)."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self.path = path
        self._removals: set[str] = set()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._in_use: int | None = None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS alarms (key TEXT PRIMARY KEY NOT NULL, "
                "binding TEXT NOT NULL, object TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID"
            )
            self._in_use = hold_data_directory(path.parent)
        except BaseException:
            self._conn.close()  # no descriptor left behind on a directory that refused us
            raise

    @classmethod
    def open(
        cls, data_dir: Path, bindings: Mapping[str, object], *, synchronous: str
    ) -> AlarmIndex:
        """Open the index, building it from the object files if there is none.

        Raises:
            StorageError: the data directory cannot hold it (read-only, no permission, a
                full disk); nothing is left open.
        """
        path = data_dir / ALARM_INDEX_NAME
        existed = path.exists()
        try:
            index = cls(path, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot use the data directory {data_dir}: opening {ALARM_INDEX_NAME} in it "
                f"failed ({exc}); is it writable, with space left?") from exc
        if not existed:
            try:
                index._rebuild(data_dir, bindings)
            except BaseException:
                index._conn.close()
                raise
        return index

    def _rebuild(self, data_dir: Path, bindings: Mapping[str, object]) -> None:
        found = 0
        self._conn.execute("BEGIN")
        for binding in bindings:
            for file in object_paths(data_dir, binding):
                at = _alarm_in(file)
                if at is not None:
                    key = f"{binding}/{file.stem}"
                    self._conn.execute(
                        "INSERT OR REPLACE INTO alarms VALUES (?, ?, ?, ?)",
                        (key, binding, file.stem, at),
                    )
                    found += 1
        self._conn.execute("COMMIT")
        log.info("built the alarm index of %s from its object files: %d alarms", data_dir, found)

    def put(self, key: str, binding: str, object_hex: str, at: float) -> None:
        """Record an alarm, durably (before the object's commit that sets it)."""
        self._removals.discard(key)
        self._conn.execute(
            "INSERT OR REPLACE INTO alarms VALUES (?, ?, ?, ?)", (key, binding, object_hex, at)
        )

    def remove(self, key: str) -> None:
        """Forget an alarm, lazily: a row left behind by a crash only causes a wake that finds
        nothing due, so removals are batched into one transaction by :meth:`flush`."""
        self._removals.add(key)
        if len(self._removals) >= 256:
            self.flush()

    def flush(self) -> None:
        if not self._removals:
            return
        removals, self._removals = self._removals, set()
        self._conn.execute("BEGIN")
        self._conn.executemany("DELETE FROM alarms WHERE key = ?", [(k,) for k in removals])
        self._conn.execute("COMMIT")

    def entries(self) -> list[tuple[str, str, str, float]]:
        rows: list[tuple[str, str, str, float]] = self._conn.execute(
            "SELECT key, binding, object, at FROM alarms"
        ).fetchall()
        return rows

    def close(self) -> None:
        self.flush()
        self._conn.close()
        if self._in_use is not None:
            os.close(self._in_use)
            self._in_use = None


def hold_data_directory(data_dir: Path) -> int:
    """Mark ``data_dir`` as in use by a runtime for as long as the returned descriptor is
    open: a shared ``flock`` on the directory, which ``dobox restore`` takes exclusively
    (so it refuses a served directory, and a runtime cannot open one being restored).

    Raises:
        StorageError: a restore holds the directory.
    """
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"the data directory {data_dir} is being restored (dobox restore "
                           "holds it); open it once the restore has finished") from None
    return fd


def earliest_alarm(index: Path) -> float | None:
    """The earliest alarm an index file records (epoch seconds), read without writing it
    (while no runtime has it open: a server at startup).

    Raises:
        sqlite3.Error: the file cannot be read.
    """
    conn = connect_read_only(index)
    try:
        row = conn.execute("SELECT min(at) FROM alarms").fetchone()
    finally:
        conn.close()
    return float(row[0]) if row is not None and row[0] is not None else None


def _alarm_in(file: Path) -> float | None:
    """The alarm recorded in an object file, read without locking or writing it."""
    try:
        return peek_alarm(file)
    except sqlite3.Error as exc:
        log.warning("could not read the alarm of %s: %s", file, exc)
        return None


@attrs.frozen
class _Due:
    at: float
    """Epoch seconds."""
    binding: str
    object_hex: str


class AlarmScheduler:
    """Fires alarms when due (see the module docstring)."""

    def __init__(
        self,
        router: AlarmsHost,
        index: AlarmIndex,
        classes: Mapping[str, type[DurableObject]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._router = router
        self._index = index
        self._classes = dict(classes)
        self._keys = {binding: namespace_key(router.id_scope + binding) for binding in classes}
        self._limiter = trio.CapacityLimiter(router.options.max_concurrent_alarms)
        self.retry_jitter = router.options.alarm_retry_jitter
        self.rng = rng or random.Random()
        self._pending: dict[str, _Due] = {}
        self._firing: dict[str, float] = {}
        """Alarms whose event is on its way (key: the time it was due)."""
        self._heap: list[tuple[float, str]] = []
        self._timer: trio.CancelScope | None = None
        self.fired = 0
        for key, binding, object_hex, at in index.entries():
            if binding in self._classes:
                self._set(key, _Due(at, binding, object_hex))

    # -- what the actors tell us ------------------------------------------------------------

    def before_commit(self, key: str, binding: str, object_hex: str, at: float | None) -> None:
        """An object is about to commit a turn that set its alarm to ``at``."""
        if at is not None:
            self._index.put(key, binding, object_hex, at)

    def after_commit(self, key: str, binding: str, object_hex: str, at: float | None) -> None:
        """An object committed a turn that changed its alarm to ``at`` (None: no alarm)."""
        if at is None:
            self._index.remove(key)
            self._pending.pop(key, None)
        else:
            self._set(key, _Due(at, binding, object_hex))

    def reconcile(self, key: str, binding: str, object_hex: str, at: float | None) -> None:
        """Make the index and the schedule agree with what an object's file says (on every
        activation, and after a schema policy rewrote the file)."""
        due = self._pending.get(key)
        if at is None:
            if due is not None:
                self.after_commit(key, binding, object_hex, None)
        elif due is None and self._firing.get(key) == at:
            pass  # being fired now: that very event activated the object
        elif due is None or due.at != at:
            self._index.put(key, binding, object_hex, at)
            self._set(key, _Due(at, binding, object_hex))

    def next_due(self) -> float | None:
        """The earliest pending alarm (epoch seconds), or None."""
        return min((due.at for due in self._pending.values()), default=None)

    def _set(self, key: str, due: _Due) -> None:
        self._pending[key] = due
        trio_at = self._router.trio_time_of(due.at)
        heapq.heappush(self._heap, (trio_at, key))
        timer = self._timer
        if timer is not None and trio_at < timer.deadline:
            timer.deadline = trio_at

    # -- firing -------------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                with trio.CancelScope() as timer:
                    self._timer = timer
                    timer.deadline = self._heap[0][0] if self._heap else float("inf")
                    # While nothing is due, batch the removals made since the last wake.
                    with trio.move_on_after(1):
                        await trio.sleep_forever()
                    self._index.flush()
                    await trio.sleep_forever()
                self._timer = None
                now = trio.current_time()
                while self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    due = self._pending.get(key)
                    if due is None or self._router.trio_time_of(due.at) > now:
                        continue  # deleted, or moved later (its own heap entry will come)
                    del self._pending[key]
                    nursery.start_soon(self._fire, key, due)

    async def _fire(self, key: str, due: _Due) -> None:
        async with self._limiter:
            if not self._router.accepting:
                return  # shutting down: the alarm stays in the file and the index
            event = Event("alarm", "alarm", due.at)
            object_id = id_from_string(self._keys[due.binding], due.object_hex)
            self._firing[key] = due.at
            self._router.submit(due.binding, self._classes[due.binding],
                                ObjectId(object_id.hex), event)
            self.fired += 1
            try:
                await event.reply.wait()
            except (ObjectResetError, OverloadedError) as exc:
                # Not the handler's fault: try again soon, without counting a retry (the
                # alarm is still in the object's file).
                if self._router.accepting and key not in self._pending:
                    log.info("alarm of %s will run again: %s", key, exc)
                    self._set(key, _Due(self._router.now() + ALARM_RETRY_START,
                                        due.binding, due.object_hex))
            except RemoteError:
                pass  # alarm() raised: its retry was recorded in the same turn
            except Exception:
                log.exception("alarm of %s could not run", key)
            finally:
                if self._firing.get(key) == due.at:
                    del self._firing[key]
