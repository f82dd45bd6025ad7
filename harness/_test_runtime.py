"""``open_test_runtime``: a runtime on a test's directory, with the levers a test needs.

::

    async def test_counter(tmp_path, autojump_clock):
        async with open_test_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
            counter = rt.namespace("COUNTER").get_by_name("a")
            await counter.increment()
            await rt.restart()                  # as after a graceful shutdown
            assert await counter.increment() == 2

Stubs and namespaces taken from it keep working across :meth:`TestRuntime.restart`. By
default it commits inline (``durability="normal"``: worker threads are invisible to
``MockClock``) and retries alarms on exact times (``alarm_retry_jitter=0``); pass other
runtime options to change that.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, Unpack, overload

import attrs
import trio

from actors import DurableObject, ObjectContext, ObjectId
from runtime import (
    Namespace,
    Runtime,
    RuntimeOptions,
    RuntimeSettings,
    RuntimeStatistics,
    Stub,
    open_runtime,
)
from runtime.lowlevel import Event, RuntimeControls, check_namespace_class

T = TypeVar("T")
ObjectT = TypeVar("ObjectT", bound=DurableObject)

TEST_DEFAULTS = RuntimeOptions(durability="normal", alarm_retry_jitter=0.0)
"""Inline commits and exact alarm retries: worker threads and jitter are invisible to
``MockClock``."""


class TestRuntime:
    """A runtime for tests: everything :class:`runtime.Runtime` offers, plus levers."""

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        data_dir: Path,
        objects: Mapping[str, type[DurableObject]],
        options: RuntimeOptions,
        env: Mapping[str, object] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self._objects = dict(objects)
        self._options = options
        self._env = env
        self._runtime: Runtime | None = None
        self._namespaces: dict[str, Namespace[DurableObject]] = {}
        self._forward = _ToCurrentRuntime()
        """Where the namespaces send their events: the runtime running now."""
        self._switch = trio.Event()
        self._restarted = trio.Event()
        self._stopping = False
        self.restarts = 0

    # -- what a runtime offers ------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime running now (a new one after each restart)."""
        if self._runtime is None:
            raise RuntimeError("the test runtime is not running")
        return self._runtime

    @overload
    def namespace(self, binding: str) -> Namespace[Any]: ...  # type: ignore[explicit-any]  # unchecked stubs, as Runtime.namespace

    @overload
    def namespace(self, binding: str, cls: type[ObjectT]) -> Namespace[ObjectT]: ...

    def namespace(self, binding: str,
                  cls: type[DurableObject] | None = None) -> Namespace[DurableObject]:
        """The namespace of ``binding`` (typed with ``cls``, as ``Runtime.namespace``); it,
        and its stubs, survive restarts."""
        self.runtime.namespace(binding)  # the same KeyError for an unknown binding
        return check_namespace_class(self._namespaces[binding], cls)

    def statistics(self) -> RuntimeStatistics:
        return self.runtime.statistics()

    def now(self) -> float:
        return self.runtime.now()

    # -- levers -----------------------------------------------------------------------------

    async def restart(
        self, objects: Mapping[str, type[DurableObject]] | None = None
    ) -> None:
        """Shut the runtime down as a graceful shutdown would (admitted events finish,
        everything is committed and closed) and start a new one over the same files; with
        ``objects``, the new one hosts those classes (a deploy of new code, say a new
        ``schema_version``). Namespaces and stubs taken before go on working."""
        if objects is not None:
            if set(objects) != set(self._objects):
                raise ValueError("restart(objects=...) must keep the same bindings")
            self._objects = dict(objects)
        self._restarted = trio.Event()
        self._switch.set()
        await self._restarted.wait()

    def crash(self, stub: Stub[DurableObject]) -> bool:
        """Reset the object as a failure would: its queued and running calls fail with
        ``ObjectResetError``, its uncommitted writes are lost, and the next call starts it
        afresh. Whether it was live (a crash of an object that is not live does nothing)."""
        return self.runtime.lowlevel.reset(stub, "crashed by the test harness (crash())")

    async def evict(self, stub: Stub[DurableObject]) -> None:
        """Evict a live object as idleness would: admitted events finish, the file is
        closed, the instance dropped; the next call rehydrates it.

        Raises:
            LookupError: the object is not live.
        """
        await self.runtime.lowlevel.evict(stub)

    async def run_in_object(
        self, stub: Stub[DurableObject],
        fn: Callable[[DurableObject, ObjectContext], T | Awaitable[T]],
    ) -> T:
        """Run ``fn(instance, ctx)`` inside the object, as one of its events (activating it if
        needed), and return what it returns, not copied. ``fn`` may be async."""
        return await self.runtime.lowlevel.run_in_object(stub, fn)

    async def run_alarm(self, stub: Stub[DurableObject]) -> bool:
        """Run the object's pending alarm now, due or not; whether one ran."""
        return await self.runtime.lowlevel.run_alarm(stub)

    async def fail_next_commit(self, stub: Stub[DurableObject],
                               error: BaseException | None = None) -> None:
        """Make the object's next commit that has writes fail, as a failing disk would: the
        calls waiting on it get ``ObjectResetError`` and the object resets."""

        def arm(_: DurableObject, ctx: ObjectContext) -> None:
            ctx.storage.fail_next_commit(error)

        await self.run_in_object(stub, arm)

    def list_object_ids(self, binding: str) -> list[ObjectId]:
        """The ids of the objects of ``binding`` that have storage, in id order."""
        namespace = self.namespace(binding)
        return [namespace.id_from_string(object_hex)
                for object_hex in self.runtime.lowlevel.stored_object_ids(binding)]

    # -- the machinery --------------------------------------------------------------------

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            self._switch = trio.Event()
            async with open_runtime(self.data_dir, self._objects, options=self._options,
                                    env=self._env) as runtime:
                self._attach(runtime)
                if started:
                    self.restarts += 1
                    self._restarted.set()
                else:
                    started = True
                    task_status.started()
                await self._switch.wait()
            self._runtime = None
            if self._stopping:
                return

    def _attach(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._forward.target = runtime.lowlevel
        for binding in runtime.bindings:
            cls = runtime.namespace(binding).cls
            if binding in self._namespaces:
                self._namespaces[binding].cls = cls  # restart(objects=...) deployed new code
            else:
                self._namespaces[binding] = Namespace(self._forward, binding, cls)

    async def _stop(self) -> None:
        self._stopping = True
        self._switch.set()


class _ToCurrentRuntime:
    """An ``EventSink`` that forwards to the runtime running now, so the test runtime's
    namespaces and stubs outlive restarts. Between two runtimes, events go to the one that
    stopped, which refuses them (``RuntimeClosedError``), as a real restart would."""

    def __init__(self) -> None:
        self.target: RuntimeControls | None = None

    @property
    def id_scope(self) -> str:
        return ""

    def submit(self, binding: str, cls: type[DurableObject], object_id: ObjectId,
               event: Event) -> None:
        assert self.target is not None, "namespaces are made when the first runtime starts"
        self.target.submit(binding, cls, object_id, event)


@asynccontextmanager
async def open_test_runtime(
    data_dir: str | os.PathLike[str],
    objects: Mapping[str, type[DurableObject]],
    *,
    options: RuntimeOptions | None = None,
    env: Mapping[str, object] | None = None,
    **settings: Unpack[RuntimeSettings],
) -> AsyncIterator[TestRuntime]:
    """A :class:`TestRuntime` over ``data_dir`` (a test's ``tmp_path``), closed on exit.

    ``options``, ``env`` and the keywords are :func:`runtime.open_runtime`'s; the test
    defaults (``TEST_DEFAULTS``) are ``durability="normal"`` and ``alarm_retry_jitter=0``.
    """
    options = attrs.evolve(options or TEST_DEFAULTS, **settings)
    test_runtime = TestRuntime(Path(data_dir), objects, options, env)
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(test_runtime._serve)
        try:
            yield test_runtime
        except BaseException as exc:
            body_error = exc  # raised as it was, not wrapped by the nursery (see open_runtime)
        finally:
            await test_runtime._stop()
    if body_error is not None:
        raise body_error
