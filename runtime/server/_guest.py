"""The bridge between an asyncio server and the trio runtime: trio runs as a guest.

``dobox serve`` runs uvicorn (asyncio, uvloop) and the dobox runtime on the same thread,
with trio in *guest mode* (``trio.lowlevel.start_guest_run``): the asyncio loop drives
trio's scheduler between its own callbacks, so there is no second thread and no locking.
:func:`open_trio_guest` starts trio that way and gives asyncio code a :class:`TrioPortal`:

- ``await portal.call(async_fn, *args)`` runs ``async_fn`` as a trio task and returns its
  result (or raises its exception) in asyncio; if the asyncio task is cancelled (the HTTP
  client went away), the trio task is cancelled too;
- ``await portal.start(async_fn)`` starts a long-running trio task with trio's
  ``task_status`` protocol and returns what it passed to ``started()``.

On exit, the portal's trio nursery is cancelled (a runtime inside drains within its grace
period, as its shutdown does) and the guest run is awaited to its end, so asyncio shuts
down only after trio has; an error that ended the trio run is raised there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar, TypeVarTuple

import outcome
import trio

log = logging.getLogger("dobox.server")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class TrioPortal:
    """Runs trio functions for asyncio code (see the module docstring)."""

    def __init__(
        self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._token = token
        self._nursery = nursery
        self._loop = loop

    async def call(self, async_fn: Callable[[*Ts], Awaitable[T]], *args: *Ts,
                   time_limit: float | None = None) -> T:
        """Run ``await async_fn(*args)`` in trio; its result, or its exception, here. After
        ``time_limit`` seconds it is cancelled and ``trio.TooSlowError`` raised (one cancel
        scope serves both the deadline and the caller's leaving: each costs microseconds on
        every request)."""
        future: asyncio.Future[T] = self._loop.create_future()
        scope = trio.CancelScope()

        async def run() -> None:
            if time_limit is not None:
                scope.deadline = trio.current_time() + time_limit
            with scope:
                try:
                    result = await async_fn(*args)
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                    return
                if not future.done():
                    future.set_result(result)
            if scope.cancelled_caught and not future.done():
                if trio.current_time() >= scope.deadline:
                    future.set_exception(trio.TooSlowError())
                else:
                    future.cancel()

        self._token.run_sync_soon(self._nursery.start_soon, run)
        try:
            return await future
        except asyncio.CancelledError:
            self._token.run_sync_soon(scope.cancel)  # the caller left: stop the trio side
            raise

    def run_sync_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in trio soon, in order with other such calls; what it raises is
        logged (an error in a ``run_sync_soon`` callback would end the trio run)."""
        with contextlib.suppress(trio.RunFinishedError):  # trio has ended: nothing to do
            self._token.run_sync_soon(log_errors, fn)

    async def start(  # type: ignore[explicit-any]  # async_fn takes task_status (nursery.start)
        self, async_fn: Callable[..., Awaitable[object]]
    ) -> object:
        """Start ``async_fn(task_status=...)`` as a trio task that outlives this call; the
        value it passes to ``task_status.started()``."""

        async def starter() -> object:
            return await self._nursery.start(async_fn)

        return await self.call(starter)


def log_errors(fn: Callable[[], None]) -> None:
    """Call ``fn()``; log what it raises."""
    try:
        fn()
    except Exception:
        log.exception("a call from the server into trio failed")


@asynccontextmanager
async def open_trio_guest() -> AsyncIterator[TrioPortal]:
    """Start trio as a guest of the running asyncio loop; yield a portal into it.

    Raises (on exit): whatever error ended the trio run.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[TrioPortal] = loop.create_future()
    done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
    stop_holder: list[trio.Event] = []

    async def trio_main() -> None:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            stop_holder.append(stop)
            ready.set_result(TrioPortal(trio.lowlevel.current_trio_token(), nursery, loop))
            await stop.wait()
            nursery.cancel_scope.cancel()

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        done_callback=done.set_result,
        host_uses_signal_set_wakeup_fd=True,
    )
    portal = await asyncio.shield(ready)
    try:
        yield portal
    finally:
        with contextlib.suppress(trio.RunFinishedError):  # trio may have ended already
            portal._token.run_sync_soon(stop_holder[0].set)
        result = await asyncio.shield(done)
        result.unwrap()
