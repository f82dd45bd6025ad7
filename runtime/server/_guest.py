"""The bridge between an asyncio server and the trio runtime: trio runs as a guest.

``dobox serve`` runs uvicorn (asyncio, uvloop) and the dobox runtime on the same thread,
with trio in *guest mode* (``trio.lowlevel.start_guest_run``): the asyncio loop drives
trio's scheduler between its own callbacks, so there is no second thread and no locking.
:func:`open_trio_guest` starts trio that way and gives asyncio code a :class:`TrioPortal`:

- ``await portal.call(async_fn, *args)`` runs ``async_fn`` as a trio task and returns its
  result (or raises its exception) in asyncio; if the asyncio task is cancelled (the HTTP
  client went away), the trio task is cancelled too;
- ``await portal.submit(begin, *args)`` runs the plain function ``begin`` in trio, which
  starts some work and returns a handle on it (``when_done``, ``outcome``: an object's
  ``Call``); the outcome comes back here without a trio task of its own. The server's
  requests take this way: a task, its cancel scope and its wake-ups were a third of a
  request's cost in trio;
- ``await portal.start(async_fn)`` starts a long-running trio task with trio's
  ``task_status`` protocol and returns what it passed to ``started()``.

Busy polling. When trio has nothing to run, guest mode waits for its I/O in a worker
thread; waking it for the next request costs a trip through that thread (its wake-up
socket, then ``call_soon_threadsafe`` back into the loop, then a new wait), about 0.2 ms
per request here, more than the rest of a no-op call. So for ``busy_poll`` seconds after
the last request arrived or was answered, one trio task (the portal's) keeps trio's
scheduler ticking on the loop's thread instead of sleeping: each tick polls trio's I/O
without waiting and yields to asyncio, and a request arriving meanwhile is taken at the
next tick. This is the trade Linux makes with ``SO_BUSY_POLL``: a core spins for a short
while after traffic to take the next message without a wake-up; an idle server does not
spin. ``busy_poll=0`` sleeps as soon as the calls have been handed over.

On exit, the portal's trio nursery is cancelled (a runtime inside drains within its grace
period, as its shutdown does) and the guest run is awaited to its end, so asyncio shuts
down only after trio has; an error that ended the trio run is raised there. Calls made
after trio has ended raise ``trio.RunFinishedError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar, TypeVarTuple

import outcome
import trio

from actors._signal import Signal
from runtime._engine import polling

log = logging.getLogger("dobox.server")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Ts = TypeVarTuple("Ts")

DEFAULT_BUSY_POLL = 0.001
"""Seconds trio keeps polling after the last request came or went (see "Busy polling")."""


class Pending(Protocol[T_co]):
    """Work started in trio by :meth:`TrioPortal.submit`'s ``begin`` (an object's ``Call``)."""

    def when_done(self, callback: Callable[[], None], /) -> None:
        """Call ``callback()`` in trio once the outcome is known."""

    def outcome(self) -> T_co:
        """The result; raises the error."""


class TrioPortal:
    """Runs trio functions for asyncio code (see the module docstring)."""

    def __init__(
        self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery,
        loop: asyncio.AbstractEventLoop, *, busy_poll: float = DEFAULT_BUSY_POLL,
    ) -> None:
        self._token = token
        self._nursery = nursery
        self._loop = loop
        self._busy_poll = busy_poll
        self._incoming: collections.deque[Callable[[], None]] = collections.deque()
        self._polling = False  # the portal's task is ticking: trio takes calls unprompted
        self._wake_sent = False
        self._finished = False
        self._activity = 0  # counts arrivals and answers; a change keeps the polling on
        self._arrived = Signal()

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
            try:
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
            finally:
                self._activity += 1
                if not future.done():  # cancelled from outside: trio is shutting down
                    future.set_exception(trio.RunFinishedError("trio is shutting down"))

        def begin() -> None:
            try:
                self._nursery.start_soon(run)
            except RuntimeError:  # the nursery has closed: trio is ending
                future.set_exception(trio.RunFinishedError("trio has ended"))

        self._to_trio(begin)
        try:
            return await future
        except asyncio.CancelledError:
            self.run_sync_soon(scope.cancel)  # the caller left: stop the trio side
            raise

    async def submit(self, begin: Callable[[*Ts], Pending[T]], *args: *Ts,
                     time_limit: float | None = None) -> T:
        """Run ``begin(*args)`` in trio, then wait here, not in a trio task, for the work
        it started; its outcome. ``begin`` must not block. After ``time_limit`` seconds,
        ``trio.TooSlowError`` (the work goes on: an object finishes a call its caller left,
        as it does when a trio caller is cancelled)."""
        future: asyncio.Future[T] = self._loop.create_future()

        def settle(pending: Pending[T]) -> None:
            self._activity += 1
            if not future.done():
                try:
                    future.set_result(pending.outcome())
                except Exception as exc:
                    future.set_exception(exc)

        def start() -> None:
            try:
                pending = begin(*args)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                return
            pending.when_done(lambda: settle(pending))

        self._to_trio(start)
        timer = None if time_limit is None else self._loop.call_later(
            time_limit, _too_slow, future)
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()

    def run_sync_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in trio soon, in order with other such calls; what it raises is
        logged (an error in a ``run_sync_soon`` callback would end the trio run)."""
        with contextlib.suppress(trio.RunFinishedError):  # trio has ended: nothing to do
            self._to_trio(lambda: log_errors(fn))

    async def start(  # type: ignore[explicit-any]  # async_fn takes task_status (nursery.start)
        self, async_fn: Callable[..., Awaitable[object]]
    ) -> object:
        """Start ``async_fn(task_status=...)`` as a trio task that outlives this call; the
        value it passes to ``task_status.started()``."""

        async def starter() -> object:
            return await self._nursery.start(async_fn)

        return await self.call(starter)

    def _to_trio(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` for the portal's task, waking trio unless it is polling already."""
        if self._finished:
            raise trio.RunFinishedError("trio has ended")
        self._incoming.append(fn)
        if not (self._polling or self._wake_sent):
            self._wake_sent = True
            self._token.run_sync_soon(self._wake)

    def _wake(self) -> None:
        self._wake_sent = False
        self._arrived.set()

    async def take_calls(self) -> None:
        """The portal's trio task: runs what asyncio queued, in order, and keeps trio
        polling while requests come and go (see "Busy polling")."""
        incoming = self._incoming
        checkpoint = trio.lowlevel.checkpoint
        now = trio.current_time
        try:
            while True:
                self._polling = False
                polling(False)
                while not incoming:
                    await self._arrived.wait()
                self._polling = True
                polling(True)  # runnable while it polls: commits may still run inline
                seen = -1
                quiet_since = 0.0
                while True:
                    while incoming:
                        incoming.popleft()()
                        self._activity += 1
                    if self._activity != seen:
                        seen = self._activity
                        quiet_since = now()
                    elif now() - quiet_since >= self._busy_poll:
                        break
                    await checkpoint()
        finally:
            self._finished = True
            self._polling = False
            polling(False)
            while incoming:  # queued before the end: each answers its caller
                incoming.popleft()()


def _too_slow(future: asyncio.Future[T]) -> None:
    if not future.done():
        future.set_exception(trio.TooSlowError())


def log_errors(fn: Callable[[], None]) -> None:
    """Call ``fn()``; log what it raises."""
    try:
        fn()
    except Exception:
        log.exception("a call from the server into trio failed")


@asynccontextmanager
async def open_trio_guest(*, busy_poll: float = DEFAULT_BUSY_POLL
                          ) -> AsyncIterator[TrioPortal]:
    """Start trio as a guest of the running asyncio loop; yield a portal into it, which
    keeps trio polling for ``busy_poll`` seconds after each request (see "Busy polling").

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
            portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery, loop,
                                busy_poll=busy_poll)
            nursery.start_soon(portal.take_calls)
            ready.set_result(portal)
            await stop.wait()
            nursery.cancel_scope.cancel()

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        # Back-to-back ticks (busy polling) need no wake-up of the loop: it runs them.
        run_sync_soon_not_threadsafe=loop.call_soon,
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
