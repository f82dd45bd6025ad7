"""The server's tenants: one runtime each, open while the tenant has something live.

A tenant's runtime opens on its first request. Once it has been idle (nothing live: see
``Runtime.idle``) at two checks ``idle_timeout`` apart, it is closed: its alarm index, its
tasks and its memory go, and a server with thousands of tenants that are seldom used holds
only the open ones. If it has a pending alarm, a timer (one sleeping task, no file) opens it
again when the alarm is due, so that alarms fire as if it had stayed open. A request that
arrives while it closes waits for the close, then opens it again.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import attrs
import trio

from runtime._engine import ALARM_INDEX_NAME, MemoryRelease, Runtime, earliest_alarm
from storage import StorageError

log = logging.getLogger("dobox.server")

OpenRuntime = Callable[[str], AbstractAsyncContextManager[Runtime]]


@attrs.define(eq=False)
class _Slot:
    ready: trio.Event = attrs.Factory(trio.Event)
    """Set once the runtime is open, or failed to open."""
    done: trio.Event = attrs.Factory(trio.Event)
    """Set once the runtime is closed (or never opened)."""
    runtime: Runtime | None = None
    closing: bool = False
    error: BaseException | None = None


class Tenants:
    """Open runtimes by tenant (see the module docstring)."""

    def __init__(self, open_runtime: OpenRuntime, *, idle_timeout: float,
                 nursery: Callable[[], trio.Nursery]) -> None:
        self._open_runtime = open_runtime
        self._idle_timeout = idle_timeout
        self._nursery = nursery
        self._slots: dict[str, _Slot] = {}
        self._wakers: dict[str, trio.CancelScope] = {}
        self.open: dict[str, Runtime] = {}
        """The runtimes open now, by tenant (for metrics)."""
        self._memory = MemoryRelease(nursery)

    async def runtime(self, tenant: str) -> Runtime:
        """The tenant's runtime, opened if it is not (waiting for a close under way).

        Raises:
            StorageError (and what else ``open_runtime`` raises): it cannot be opened.
        """
        while True:
            slot = self._slots.get(tenant)
            if slot is None:
                slot = self._slots[tenant] = _Slot()
                waker = self._wakers.pop(tenant, None)
                if waker is not None:
                    waker.cancel()
                self._nursery().start_soon(self._serve, tenant, slot,
                                           name=f"dobox tenant {tenant}")
            if slot.closing:
                await slot.done.wait()
                continue
            await slot.ready.wait()
            if slot.error is not None:
                raise slot.error
            if slot.runtime is not None and not slot.closing:
                return slot.runtime

    def runtime_now(self, tenant: str) -> Runtime | None:
        """The tenant's runtime if it is open and not closing; None if ``runtime()`` would
        have to wait (the server's fast path takes the slow one then)."""
        slot = self._slots.get(tenant)
        if slot is None or slot.closing:
            return None
        return slot.runtime

    async def _serve(self, tenant: str, slot: _Slot) -> None:
        next_alarm: float | None = None
        wake_at = math.inf
        try:
            async with self._open_runtime(tenant) as runtime:
                slot.runtime = runtime
                self.open[tenant] = runtime
                slot.ready.set()
                await self._until_idle(runtime)
                slot.closing = True
                del self.open[tenant]
                next_alarm = runtime.next_alarm()
                if next_alarm is not None:
                    wake_at = runtime.trio_time_of(next_alarm)
        except Exception as exc:
            if slot.runtime is None:  # it did not open: say so without the server's paths
                log.error("tenant %s could not be opened: %s", tenant, exc)
                slot.error = StorageError(
                    f"the data of tenant {tenant} cannot be opened (the server's log says "
                    "why); retry later")
                slot.error.__cause__ = exc
            else:
                slot.error = exc  # every waiting request gets it; the next one tries again
        finally:
            self.open.pop(tenant, None)
            if self._slots.get(tenant) is slot:
                del self._slots[tenant]
            slot.ready.set()
            slot.done.set()
        self._memory.soon()  # what the runtime freed goes back to the system
        if next_alarm is not None:
            self._nursery().start_soon(self._wake, tenant, wake_at,
                                       name=f"dobox tenant {tenant} alarm")

    async def wake_for_alarms(self, tenants_dir: Path) -> None:
        """At startup: set the alarm timer of every tenant with a pending alarm, as if each
        had been open and closed; open each tenant that has objects but no alarm index yet
        (a restored directory), which builds it. Without this, a tenant's alarms waited for
        its next request after the server restarted."""
        found = await trio.to_thread.run_sync(_tenants_and_alarms, tenants_dir)
        now, clock = time.time(), trio.current_time()
        for tenant, earliest in found:
            if earliest is _NO_INDEX:
                self._nursery().start_soon(self._open_once, tenant,
                                           name=f"dobox tenant {tenant} index")
            elif isinstance(earliest, float) and tenant not in self._slots:
                self._nursery().start_soon(self._wake, tenant,
                                           clock + max(0.0, earliest - now),
                                           name=f"dobox tenant {tenant} alarm")

    async def _open_once(self, tenant: str) -> None:
        try:
            await self.runtime(tenant)  # it closes itself when idle, timer set
        except Exception:  # its next request meets the error again, and says so
            log.exception("could not open tenant %s to index its alarms", tenant)

    async def _until_idle(self, runtime: Runtime) -> None:
        """Return once ``runtime`` was idle at two checks ``idle_timeout`` apart."""
        was_idle = False
        while True:
            await trio.sleep(self._idle_timeout)
            if runtime.idle and was_idle:
                return
            was_idle = runtime.idle

    async def _wake(self, tenant: str, at: float) -> None:
        """Open the tenant again when its next alarm is due (its scheduler fires it)."""
        with trio.CancelScope() as scope:
            self._wakers[tenant] = scope
            await trio.sleep_until(at)
            if self._wakers.get(tenant) is scope:
                del self._wakers[tenant]
            try:
                await self.runtime(tenant)
            except Exception:  # the tenant's next request meets it again, and says so
                log.exception("could not open tenant %s for its alarm", tenant)
        if self._wakers.get(tenant) is scope:
            del self._wakers[tenant]



_NO_INDEX = "no index"


def _tenants_and_alarms(tenants_dir: Path) -> list[tuple[str, float | str | None]]:
    """Each tenant under ``tenants_dir`` with the time of its earliest alarm (epoch
    seconds), ``None`` for none, or :data:`_NO_INDEX` when it has objects but no index."""
    if not tenants_dir.is_dir():
        return []
    found: list[tuple[str, float | str | None]] = []
    for tenant_dir in sorted(tenants_dir.iterdir()):
        if not tenant_dir.is_dir():
            continue
        index = tenant_dir / ALARM_INDEX_NAME
        if not index.exists():
            has_objects = any(child.is_dir() and not child.name.startswith(".")
                              for child in tenant_dir.iterdir())
            found.append((tenant_dir.name, _NO_INDEX if has_objects else None))
            continue
        try:
            found.append((tenant_dir.name, earliest_alarm(index)))
        except sqlite3.Error as exc:  # opening the tenant reports it, with the object's path
            log.warning("could not read the alarm index of tenant %s: %s", tenant_dir.name,
                        exc)
            found.append((tenant_dir.name, _NO_INDEX))
    return found
