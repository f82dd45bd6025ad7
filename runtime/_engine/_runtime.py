"""``open_runtime``: host Durable Objects inside a trio program.

::

    async with open_runtime("./data", objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("tenant-42")
        print(await counter.increment(2))

The runtime owns a nursery for exactly its lifetime: each live object's tasks run in it.
On exit it stops admitting events, lets admitted ones finish within ``shutdown_grace``
seconds, commits, and closes every file; whatever is still running then is cancelled and
its callers get ``ObjectResetError``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, Unpack, overload

import attrs
import trio

from actors import DurableObject, PlainMethodWarning
from actors._rpc import plain_methods
from storage import StorageError

from ._alarms import AlarmIndex, AlarmScheduler
from ._coordinator import Coordinator, SingleProcessCoordinator
from ._descriptors import process_budget
from ._inspection import (
    READ_WAIT,
    LiveObject,
    NotHeld,
    SocketView,
    live_objects,
    object_sockets,
    read_held,
)
from ._lowlevel import RuntimeControls
from ._namespace import Namespace, ObjectT, check_namespace_class
from ._options import RuntimeOptions, RuntimeSettings, check_input_gate
from ._router import Router
from ._statistics import RuntimeStatistics

T = TypeVar("T")

_BINDING = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

DEFAULT_OPTIONS = RuntimeOptions()


class Runtime:
    """A running dobox runtime; get one from :func:`open_runtime`."""

    def __init__(self, router: Router, objects: Mapping[str, type[DurableObject]]) -> None:
        self._router = router
        self._namespaces = {
            binding: Namespace(router, binding, cls) for binding, cls in objects.items()
        }
        self.lowlevel = RuntimeControls(router, dict(objects))
        """Levers on its objects for test harnesses and tools (``runtime.lowlevel``)."""

    @property
    def data_dir(self) -> Path:
        return self._router.data_dir

    @property
    def bindings(self) -> list[str]:
        return list(self._namespaces)

    @overload
    def namespace(self, binding: str) -> Namespace[Any]: ...  # type: ignore[explicit-any]  # unchecked stubs, as before generics

    @overload
    def namespace(self, binding: str, cls: type[ObjectT]) -> Namespace[ObjectT]: ...

    def namespace(self, binding: str,
                  cls: type[DurableObject] | None = None) -> Namespace[DurableObject]:
        """The namespace of ``binding`` (also ``env.BINDING`` inside objects). With
        ``cls``, typed: a type checker with dobox's plugin checks its stubs' calls against
        ``cls`` (docs/reference/runtime.md, "Typed stubs").

        Raises:
            KeyError: no such binding.
            TypeError: ``cls`` is not the class bound to it (nor a base of it).
        """
        try:
            namespace = self._namespaces[binding]
        except KeyError:
            raise KeyError(
                f"no namespace {binding!r}; this runtime has {', '.join(self._namespaces)}"
            ) from None
        return check_namespace_class(namespace, cls)

    def now(self) -> float:
        """The runtime's wall clock (epoch seconds, advancing with trio's clock)."""
        return self._router.now()

    @property
    def idle(self) -> bool:
        """Nothing live: no object activated or closing, no WebSocket open, no alarm
        running. Closing the runtime now loses nothing but warm caches."""
        router = self._router
        return not (router.live or len(router.closing) or router.sockets.open_count)

    def next_alarm(self) -> float | None:
        """When the earliest pending alarm of its objects is due (epoch seconds), or None."""
        alarms = self._router.alarms
        return None if alarms is None else alarms.next_due()

    def trio_time_of(self, epoch: float) -> float:
        """The trio clock's reading when the runtime's wall clock shows ``epoch``."""
        return self._router.trio_time_of(epoch)

    # -- looking in from outside (the server's inspector: see _inspection) ------------------

    def live_objects(self) -> list[LiveObject]:
        """Every live object, least recently used first; sends them nothing."""
        return live_objects(self._router)

    async def read_held(self, binding: str, object_hex: str,
                        read: Callable[[sqlite3.Connection], T], *,
                        wait: float = READ_WAIT) -> T | NotHeld:
        """``read(conn)`` on a live object's open connection between its turns, or
        ``NOT_HELD`` when this runtime does not hold the object's file open (then read the
        file). Never activates the object or counts as its event.

        Raises:
            ObjectBusyError: it stayed in the middle of a write for ``wait`` seconds.
        """
        return await read_held(self._router, binding, object_hex, read, wait=wait)

    def object_sockets(self, binding: str, object_hex: str) -> list[SocketView]:
        """The WebSockets an object accepted, live or hibernating."""
        return object_sockets(self._router, binding, object_hex)

    def statistics(self) -> RuntimeStatistics:
        router, counters = self._router, self._router.counters
        return RuntimeStatistics(
            live_objects=len(router.live),
            open_connections=router.open_connections,
            queued_events=router.queued_events,
            activations=counters.activations,
            evictions=counters.evictions,
            resets=counters.resets,
            overloads=counters.overloads,
            commits=counters.commits,
            commit_seconds=counters.commit_seconds,
            inline_commits=counters.inline_commits,
            websockets=router.sockets.open_count,
        )


@asynccontextmanager
async def open_runtime(
    data_dir: str | os.PathLike[str],
    objects: Mapping[str, type[DurableObject]],
    *,
    options: RuntimeOptions | None = None,
    env: Mapping[str, object] | None = None,
    coordinator: Coordinator | None = None,
    id_scope: str = "",
    **settings: Unpack[RuntimeSettings],
) -> AsyncIterator[Runtime]:
    """Host ``objects`` (binding name -> ``DurableObject`` subclass) over ``data_dir``.

    The runtime's settings are ``options`` (a :class:`RuntimeOptions`), each changed by a
    keyword of the same name (``durability="normal"``, ``idle_timeout=10``, ...):

    - ``durability``: ``"full"`` (fsync every commit), ``"normal"`` or ``"off"``.
    - ``idle_timeout``: seconds without events after which an object is evicted (its
      state stays on disk; the next event rehydrates it).
    - ``idle_connection_timeout``: seconds without events after which a live object closes
      its SQLite connection (about 100 KiB of page cache) while keeping its instance and its
      file lock; the next event reconnects (``None``: never).
    - ``max_live_objects``: least recently used idle objects are evicted beyond this.
    - ``max_queued_per_object``: events admitted and unanswered per object before further
      events fail at once with ``OverloadedError``.
    - ``event_timeout``: seconds one event may keep its object's gate closed before the
      object is reset (``None``: no limit).
    - ``shutdown_grace``: seconds admitted events get to finish when the runtime closes.
    - ``max_concurrent_alarms``: alarm events in flight at once (overdue alarms after a
      restart are spread behind this limit).
    - ``alarm_retry_jitter``: the random extra on each alarm retry's delay, as a fraction of
      it (Durable Objects: up to 25%); 0 makes retries land on exact times, for tests.
    - ``max_websockets_per_object``: sockets one object may have accepted and open
      (Durable Objects: 32,768).
    - ``input_gate``: ``"open_on_await"`` (other events of an object run while a handler
      awaits anything but its storage, as in Durable Objects) or ``"strict"`` (only while
      it awaits another object), for classes that do not set their own.

    Besides them:

    - ``env``: extra values objects see in ``self.env`` beside the namespaces.
    - ``coordinator``: who may activate which object (default: this process alone).
    - ``id_scope``: a prefix of every namespace's id key (the server passes ``"<tenant>/"``,
      so that the same name in two tenants gives two ids). Changing it changes every id.

    Raises:
        ValueError, TypeError: for bad bindings, classes or options.
        StorageError: the data directory cannot be created or written (its message names
            it); nothing is left open.
    """
    options = attrs.evolve(options or DEFAULT_OPTIONS, **settings)
    check_objects(objects)
    root = _data_directory(data_dir)
    descriptors = process_budget()
    await descriptors.acquire(f"the alarm index of {root}")  # its files count too
    try:
        index = AlarmIndex.open(
            root, objects, synchronous="FULL" if options.durability == "full" else "NORMAL"
        )
    except BaseException:
        descriptors.release()
        raise
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            router = Router(
                nursery=nursery,
                data_dir=root,
                options=options,
                coordinator=coordinator or SingleProcessCoordinator(),
                env={},
                id_scope=id_scope,
                descriptors=descriptors,
            )
            runtime = Runtime(router, objects)
            router.env.update(env or {})
            router.env.update(runtime._namespaces)
            router.alarms = AlarmScheduler(router, index, objects)
            nursery.start_soon(router.timekeeper.run, name="dobox timekeeper")
            nursery.start_soon(router.alarms.run, name="dobox alarms")
            try:
                yield runtime
            except BaseException as exc:
                # The runtime's own tasks never raise, so the only error here is the body's.
                # Keep it out of the nursery and raise it as it was, after shutdown, instead
                # of wrapped in an ExceptionGroup the caller did not ask for.
                body_error = exc
            finally:
                with trio.CancelScope(shield=True) as grace:
                    grace.deadline = trio.current_time() + options.shutdown_grace
                    await router.drain()
                nursery.cancel_scope.cancel()
    finally:
        index.close()
        descriptors.release()
    if body_error is not None:
        raise body_error


def _data_directory(data_dir: str | os.PathLike[str]) -> Path:
    """``data_dir``, created if needed.

    Raises:
        StorageError: it cannot be created (read-only, no permission, a file in the way).
    """
    root = Path(data_dir)
    try:
        # Inline on purpose: one mkdir at start; a thread would let autojump_clock skip time.
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot use the data directory {root}: {exc.strerror}") from exc
    return root


def check_objects(objects: Mapping[str, type[DurableObject]]) -> None:
    """Refuse a bindings mapping that :func:`open_runtime` cannot host.

    Raises:
        ValueError: no bindings, or a binding that is not an identifier.
        TypeError: a value that is not a ``DurableObject`` subclass.
    """
    if not objects:
        raise ValueError("open_runtime() needs at least one binding in objects={...}")
    for binding, cls in objects.items():
        if not isinstance(binding, str) or not _BINDING.fullmatch(binding):
            raise ValueError(
                f"binding {binding!r} must be a Python identifier of at most 64 characters "
                "(it names a directory and env.BINDING)"
            )
        if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
            raise TypeError(f"objects[{binding!r}] must be a DurableObject subclass, not {cls!r}")
        for name in sorted(plain_methods(cls)):
            warnings.warn(f"{cls.__qualname__}.{name} is a plain def, so callers cannot call "
                          f"it: RPC methods are async def (name it _{name} if it is a "
                          "helper)", PlainMethodWarning, stacklevel=3)
        if cls.input_gate is not None:
            check_input_gate(cls.input_gate, f"{cls.__qualname__}.input_gate")
