"""One live object: its mailbox, input gate, output gate, and supervision.

How an object runs (the Durable Objects contract, in trio):

- **Mailbox.** A call is put in the object's FIFO mailbox when it is *made*, so calls are
  delivered in the order they were made (trio may start tasks in any order).
- **Driver.** One task per live object, the *driver*, takes events from the mailbox and runs
  each handler holding the **input gate** (a FIFO lock): one handler's code at a time.
- **The gate opens while a handler waits.** By default (``input_gate="open_on_await"``) a
  handler runs inside :meth:`Actor._gated`, which sees each time it is about to block
  (any await but its storage, whose calls never block) and releases the gate then; if the
  handler was the driver, a new driver starts, so the next events start meanwhile, in
  order. Before the handler continues, it takes the gate back, in turn. Under
  ``"strict"`` only an await of another object opens it.
- **Outbound calls.** When a handler awaits another object's stub, it first makes its
  writes durable (the output gate covers outgoing messages too), then releases the gate
  the same way (A->B->A works). Inside ``block_concurrency_while`` (and
  ``storage.transaction``, ``storage.sync`` and the runtime's own commits) the gate is kept
  across every await.
- **Write coalescing and the output gate.** A handler's writes join the storage's implicit
  transaction. An event that ends with writes uncommitted does not reply yet: its reply
  waits while the driver runs the events already queued, then one commit makes all their
  writes durable and every waiting caller gets its reply. A failed commit fails those
  replies and resets the object.
- **Supervision.** A reset (``on_start`` or ``block_concurrency_while`` raising, a failed
  commit, an event timeout, ``ctx.abort()``) fails every queued, running and waiting event
  with ``ObjectResetError``, cancels the object's tasks and closes its file; the next event
  activates a fresh instance. No other object notices.
"""

from __future__ import annotations

import inspect
import logging
import time
import types
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn, Protocol, TypeVar

import trio

from actors import (
    AlarmInfo,
    DurableObject,
    Env,
    ObjectAborted,
    ObjectContext,
    ObjectId,
    OverloadedError,
)
from actors._errors import ObjectResetError, remote_error_for
from actors._host import current_host
from actors._object import is_sync_present, schema_policy
from actors._rpc import rpc_method
from actors._signal import Signal
from storage import (
    DatabaseCorruptError,
    DoboxError,
    Storage,
    UnsupportedValueError,
    collection_specs,
    decode_value,
    encode_value,
    open_storage,
)

from ._alarms import ALARM_MAX_RETRIES, retry_delay
from ._commit_placement import commit_placement
from ._event import FORCE_ALARM, NO_ARGUMENTS, Event, Unencoded
from ._gate import InputGate
from ._http import copy_response

if TYPE_CHECKING:
    from actors._websocket import WebSocket, WebSocketRequestResponsePair

    from ._alarms import AlarmScheduler
    from ._clock import Clock
    from ._closing import ClosingFiles
    from ._coordinator import Coordinator, Lease
    from ._descriptors import DescriptorBudget
    from ._memory import MemoryRelease
    from ._options import RuntimeOptions
    from ._sockets import SocketRegistry
    from ._statistics import Counters
    from ._timekeeper import Timekeeper

T = TypeVar("T")
log = logging.getLogger("dobox.runtime")

COMMIT_BATCH = 256
"""At most this many replies wait for one commit, so a busy object still answers."""


State = Literal["activating", "running", "stopping", "dead"]


class Site(Protocol):
    """What an actor uses of the runtime that hosts it (the router is one).

    Each member is one concept: the settings, the clock, the counters, who may own
    objects, room for open files, the timekeeper, the files still closing, the sockets and
    the alarms that outlive activations, and the router's own part, the table of live
    objects, which ``retire``, ``idle`` and ``finished`` report to.
    """

    options: RuntimeOptions
    clock: Clock
    counters: Counters
    env: dict[str, object]
    data_dir: Path
    id_scope: str
    coordinator: Coordinator
    descriptors: DescriptorBudget
    timekeeper: Timekeeper
    closing: ClosingFiles
    memory: MemoryRelease
    sockets: SocketRegistry
    alarms: AlarmScheduler | None

    def retire(self, actor: Actor) -> None:
        """Route no more events to ``actor``."""

    def idle(self, actor: Actor) -> None:
        """``actor`` has had nothing to do since ``actor.last_active``."""

    def finished(self, actor: Actor) -> None:
        """``actor``'s file is closed."""


class Actor:
    """One activation of one object, from its first event to its eviction or reset."""

    def __init__(
        self, site: Site, binding: str, cls: type[DurableObject], object_id: ObjectId,
        path: Path,
    ) -> None:
        self.site = site
        self.binding = binding
        self.cls = cls
        self.id = object_id
        self.key = f"{binding}/{object_id.hex}"
        self.path = path
        self.state: State = "activating"
        self.mailbox: deque[Event] = deque()
        self.events: set[Event] = set()
        """Admitted and not yet answered: queued, running, or waiting for their commit."""
        self.gate = InputGate()
        self.storage: Storage | None = None
        self.instance: DurableObject | None = None
        self.closed = trio.Event()
        self.last_active = trio.current_time()
        self.handled = 0
        """Events taken from the mailbox since activation (the inspector's busiest objects)."""
        self._to_reply: list[tuple[Event, object]] = []
        self._wakeup = Signal()
        self._driver: trio.lowlevel.Task | None = None
        self._gate_owner: trio.lowlevel.Task | None = None
        self._blocking = 0
        self._background = 0
        self._nursery: trio.Nursery | None = None
        self._lease: Lease | None = None
        self._stop_requested = False
        self._held_calls: list[Callable[[], None]] = []
        """Calls made by this object while it had uncommitted writes: sent after the commit."""
        self._holds_descriptors = False
        """Room for its file is taken from the process's descriptor budget."""
        self._replicating = False
        """The coordinator replicates the open file (its last sync is owed on closing)."""
        self._strict = (cls.input_gate or site.options.input_gate) == "strict"
        """Only a call to another object opens the gate (not any await)."""

    def __repr__(self) -> str:
        return f"<Actor {self.label} {self.state}>"

    @property
    def label(self) -> str:
        """How logs and errors name the object: ``BINDING/name`` or ``BINDING/<id>``."""
        return f"{self.binding}/{self.id.name if self.id.name is not None else self.id.hex}"

    # -- admission (synchronous: a call is queued the moment it is made) -------------------

    def submit(self, event: Event) -> None:
        if len(self.events) >= self.site.options.max_queued_per_object:
            self.site.counters.overloads += 1
            event.reply.fail(
                OverloadedError(
                    f"Durable Object is overloaded. Too many requests queued. ({self.label} "
                    f"has {len(self.events)} events waiting; the limit is "
                    f"{self.site.options.max_queued_per_object})",
                    object_id=self.id.hex,
                )
            )
            return
        if not self.events:
            self.site.timekeeper.busy(self)
        self.events.add(event)
        self.mailbox.append(event)
        self._wakeup.set()

    @property
    def idle(self) -> bool:
        return (
            self.state == "running" and not self.events and not self._background
            and not self.gate.held
        )

    def stop(self) -> None:
        """Admit nothing more; the driver finishes what was admitted, commits, and returns,
        and the file is closed (the router has already stopped routing here)."""
        self._stop_requested = True
        if self.storage is not None:
            # Live queries keep an object busy; stopping ends them (their subscribers
            # resume from their row version), so the object can finish and close.
            self.storage.close_subscriptions()
        if self.state == "running":
            self.state = "stopping"
            self._wakeup.set()

    # -- the object's life ----------------------------------------------------------------

    async def run(self) -> None:
        """Activate, serve events until evicted or reset, then close the file."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if await self._activate():
                    nursery.start_soon(self._drive)
        except Exception as exc:
            # Handlers' errors are caught where they run; this is a bug in dobox. Contain
            # it to this object, so that the runtime and every other object go on.
            log.exception("internal error in %s", self.label)
            self.reset(f"dobox failed internally: {exc!r}", cause=exc)
        finally:
            if self.storage is not None:
                if self.storage.durability == "full":
                    # Closing checkpoints the WAL and fsyncs: with full durability that runs
                    # in a thread, as commits do, so evictions do not stall other objects.
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(self.storage.close)
                else:
                    self.storage.close()
            if self._holds_descriptors:
                self._holds_descriptors = False
                self.site.descriptors.release()
            if self._replicating and self._lease is not None:
                self._replicating = False
                with trio.CancelScope(shield=True):  # a last sync before the claim goes
                    await self.site.coordinator.after_close(self._lease, self.path)
            if self._lease is not None:
                self.site.coordinator.release(self._lease)
            if self.state != "dead":
                self.state = "dead"
                self._fail_all(lambda: ObjectResetError(
                    f"{self.label} stopped before answering", object_id=self.id.hex))
            self.site.retire(self)
            self.closed.set()
            self.site.finished(self)

    async def _activate(self) -> bool:
        previous = self.site.closing.previous(self.key)
        if previous is not None:
            await previous.wait()
        await self.site.closing.wait_for_room()
        scoped_label = f"{self.site.id_scope}{self.label}"  # with the tenant, if served
        try:
            await self.site.descriptors.acquire(scoped_label)
        except OverloadedError as exc:
            self._die_activating(exc)
            return False
        self._holds_descriptors = True
        coordinator = self.site.coordinator
        try:
            self._lease = await coordinator.acquire(self.key)
            await coordinator.before_open(self._lease, self.path)  # a replica: the newest copy
        except DoboxError as exc:  # owned elsewhere, or ownership cannot be decided now
            self._die_activating(exc)
            return False
        try:
            storage = open_storage(
                self.path, durability=self.site.options.durability, name=self.id.name,
                namespace=self.binding, class_name=self.cls.__qualname__,
                label=f"the file of {scoped_label}", shared=coordinator.shares_files,
            )
        except DoboxError as exc:
            self._die_activating(exc)
            return False
        self.storage = storage
        try:
            await coordinator.after_open(self._lease, self.path)  # replicating from here on
        except DoboxError as exc:
            self._die_activating(exc)
            return False
        self._replicating = coordinator.shares_files
        try:
            storage.apply_schema(
                self.cls.schema_version, policy=schema_policy(self.cls),
                migrations=self.cls.migrations,
                backup_dir=self.site.data_dir / ".backups" / self.binding,
            )
            # Collections are prepared as the object's schema is, before any code of it runs:
            # a sync-absent mismatch refuses the activation, with nothing changed.
            collections_to_sync = [spec for spec in collection_specs(self.cls)
                                   if storage.prepare_collection(spec)]
        except DoboxError as exc:
            self._die_activating(exc)
            return False
        metadata = storage.metadata
        if self.id.name is None and metadata.name is not None:
            self.id = ObjectId(self.id.hex, metadata.name)
        if self.site.alarms is not None:
            # The file is the truth: a migration or a clear may have changed the alarm, and
            # a copied file may bring one the index has not seen.
            self.site.alarms.reconcile(self.key, self.binding, self.id.hex, metadata.alarm)
        storage.exclusive = self._exclusive
        await self.gate.acquire()
        self._gate_owner = trio.lowlevel.current_task()
        self._blocking += 1
        token = current_host.set(self)
        try:
            self.instance = self.cls(ObjectContext(self.id, storage, self), Env(self.site.env))
            await self.instance.on_start()
            if metadata.sync_pending:  # read above; on_start cannot change it
                # Cleared by a schema change: refill from upstream (a class that clears
                # without a sync() simply starts empty).
                if is_sync_present(self.cls):
                    await self.instance.sync()  # type: ignore[attr-defined]  # it has sync()
                storage.mark_synced()
            for spec in collections_to_sync:  # cleared by a schema change: refill them
                if spec.sync is not None:
                    await spec.sync(self.instance, storage.collection(spec))
                storage.mark_collection_synced(spec)
            await self._commit_writes()
            if self.state == "dead":  # the commit failed and reset the object
                return False
        except (Exception, ObjectAborted) as exc:
            self.reset(f"starting it raised {type(exc).__name__}: {exc}", cause=exc)
            return False
        finally:
            current_host.reset(token)
            self._blocking -= 1
            self._release_gate()
        self.state = "stopping" if self._stop_requested else "running"
        if not self.events:
            self.site.idle(self)
        log.debug("activated %s", self.label)
        return True

    def _die_activating(self, error: DoboxError) -> None:
        log.warning("could not activate %s: %s (file %s)", self.label, error, self.path)
        self.state = "dead"
        self._fail_all(lambda: error)
        self.site.retire(self)
        self.site.sockets.close_object(self.key, 1011, f"the object cannot start: {error}")

    # -- the driver -----------------------------------------------------------------------

    async def _drive(self) -> None:
        me = trio.lowlevel.current_task()
        self._driver = me
        while True:
            if self.mailbox and self.state != "dead":
                await self._run(self.mailbox.popleft())
                if self._driver is not me:
                    return  # handed off while the handler awaited another object
                if len(self._to_reply) >= COMMIT_BATCH:
                    await self._commit_and_reply()
                continue
            if self._to_reply and self.state != "dead":
                await self._commit_and_reply()
                continue
            if self._writes_waiting():  # a handler wrote, then awaited the outside world
                await self._commit_and_reply()
                continue
            if self.state == "dead":
                return
            if self.state == "stopping" and not (self.events or self._background):
                return
            # Idle eviction and event timeouts are the router's timekeeper's job: a cancel
            # scope per wait here would cost more than the rest of a call.
            await self._wakeup.wait()

    async def _run(self, event: Event) -> None:
        self.handled += 1
        await self.gate.acquire()
        self._gate_owner = trio.lowlevel.current_task()
        token = current_host.set(self)
        self.site.timekeeper.started(event, self)
        try:
            outcome = await self._handle(event)
            if outcome is not None and self.state != "dead":
                self._finish(event, outcome)
        finally:
            self.site.timekeeper.ended(event)
            current_host.reset(token)
            self._release_gate()
            if self._driver is not trio.lowlevel.current_task():
                self._wakeup.set()  # the driver may be waiting for this event to end (a stop)

    async def _handle(self, event: Event) -> object:
        """The encoded result, or the error to deliver; ``None`` if the object was reset."""
        try:
            if self._strict:
                result = await self._dispatch(event)
            else:
                result = await self._gated(self._dispatch(event), event)
        except ObjectAborted as exc:
            self.reset(f"ctx.abort() was called: {exc}", cause=exc)
            return None
        except Exception as exc:
            if self._reset_on_storage_fault():
                return None
            if event.kind.startswith("websocket_"):  # nobody waits for these: say it here
                log.warning("%s raised in %s", event.describe(), self.label, exc_info=True)
            else:
                log.debug("%s raised in %s", event.describe(), self.label, exc_info=True)
            return remote_error_for(exc, object_id=self.id.hex)
        if self._reset_on_storage_fault():  # met (and perhaps caught) inside the handler
            return None
        if event.kind == "fetch":
            try:
                return copy_response(result, copy=not event.by_reference)
            except TypeError as exc:  # not a response, or a 101 without a WebSocketPair end
                return remote_error_for(exc, object_id=self.id.hex)
        if event.kind != "rpc":
            return Unencoded(result)
        try:
            return encode_value(result, name="result")
        except UnsupportedValueError as exc:
            return remote_error_for(
                UnsupportedValueError(f"{event.describe()} returned a value that cannot cross "
                                      f"the call: {exc}"),
                object_id=self.id.hex,
            )

    @types.coroutine
    def _gated(self, handler: Coroutine[object, object, T], event: Event
               ) -> Generator[object, object, T]:
        """Run ``event``'s ``handler``, opening the gate each time it waits and taking it
        back before it goes on.

        A coroutine blocks by yielding to trio's scheduler; this passes each yield and each
        resumption through unchanged, releasing the gate just before the yield and
        re-taking it (in FIFO turn, shielded: a handler must hold it as it unwinds) after.
        So another handler's code, or a commit, never runs between two of this handler's
        statements, only where it awaited; and since storage calls never yield, never in
        the middle of one.

        ``event_timeout`` counts only while the handler holds the gate: waiting on the
        outside world keeps nobody else out, and Durable Objects limit a request's CPU time,
        not how long it waits.
        """
        to_send: object = None
        to_throw: BaseException | None = None
        while True:
            try:
                if to_throw is None:
                    waiting_on = handler.send(to_send)
                else:
                    waiting_on, to_throw = handler.throw(to_throw), None
            except StopIteration as returned:
                result: T = returned.value
                return result
            opened = self._open_while_waiting()
            if opened:
                self.site.timekeeper.ended(event)
            try:
                to_send = yield waiting_on
            except GeneratorExit:  # closed, never to resume: nothing may be awaited now
                handler.close()
                raise
            except BaseException as exc:  # delivered by trio: for the handler
                to_send, to_throw = None, exc
            if opened:
                yield from self.gate.acquire_shielded().__await__()
                self._gate_owner = trio.lowlevel.current_task()
                self.site.timekeeper.started(event, self)

    def _open_while_waiting(self) -> bool:
        """Before a handler blocks: let the next events in, unless it must keep the gate.
        Whether it released the gate."""
        if self._blocking or not self.holds_gate():
            return False  # exclusive, or already opened (a call to another object)
        if self._driver is trio.lowlevel.current_task() and self._nursery is not None:
            self._driver = None  # this task waits in its handler: a new one takes the mailbox
            self._nursery.start_soon(self._drive)
        elif self._writes_waiting():
            self._wakeup.set()  # the driver commits them while this handler waits
        self._release_gate()
        return True

    def _writes_waiting(self) -> bool:
        storage = self.storage
        return (self.state in ("running", "stopping") and storage is not None
                and storage.has_uncommitted_writes)

    def timed_out(self, event: Event) -> None:
        """Called by the router's timekeeper when ``event`` ran past ``event_timeout``."""
        self.reset(
            "Actor exceeded event execution time and was disconnected "
            f"({event.describe()} ran past {self.site.options.event_timeout} s)"
        )

    async def _dispatch(self, event: Event) -> object:
        instance = self.instance
        if event.kind == "alarm":
            return await self._run_alarm(force=event.payload == FORCE_ALARM)
        if event.kind == "run":
            assert instance is not None, "events run only after activation"
            run: Callable[[DurableObject, ObjectContext], object]
            run = event.payload  # type: ignore[assignment]  # the harness's function
            result = run(instance, instance.ctx)
            return await result if inspect.isawaitable(result) else result
        if event.kind == "rpc":
            assert instance is not None, "events run only after activation"
            method = rpc_method(self.cls, event.name)  # the name was checked when queued
            if event.payload is NO_ARGUMENTS:
                return await method.invoke(instance, (), {})
            call = decode_value(event.payload)  # type: ignore[arg-type]  # rpc payloads are bytes
            assert isinstance(call, tuple), "a stub encodes (args, kwargs)"
            args, kwargs = call
            return await method.invoke(instance, args, kwargs)
        if event.kind == "fetch":
            return await instance.fetch(event.payload)  # type: ignore[union-attr]  # checked on submit
        # A WebSocket event: the registry submits only those the class has a handler for.
        handler = getattr(instance, event.kind)
        return await handler(*event.payload)  # type: ignore[misc]  # a tuple of arguments

    async def _run_alarm(self, *, force: bool = False) -> bool:
        """Run ``alarm(info)`` if the object's alarm is due (or pending at all, when
        ``force``); on a raise, record the retry (or drop the alarm after the last one) in
        the same turn. Whether a handler ran."""
        storage = self.storage
        assert storage is not None
        meta = storage.metadata
        now = self.site.clock.now()
        # A millisecond's slack for the float round trip between trio's clock and epoch time.
        if meta.alarm is None or (meta.alarm > now + 0.001 and not force):
            return False  # deleted or moved later since it was scheduled
        retry = meta.alarm_retry
        storage.delete_alarm_sync()  # consumed: inside alarm(), get_alarm() is None
        handler = getattr(self.instance, "alarm", None)
        if handler is None:
            log.warning("Attempted to run a scheduled alarm without a handler on %s; did you "
                        "remember to define alarm()? The alarm was dropped.", self.label)
            return False
        try:
            await handler(AlarmInfo(retry_count=retry, is_retry=retry > 0))
        except Exception:
            if storage.get_alarm_sync() is None:  # a new alarm set by the handler wins
                scheduler = self.site.alarms
                if retry < ALARM_MAX_RETRIES and scheduler is not None:
                    delay = retry_delay(retry + 1, scheduler.retry_jitter, scheduler.rng)
                    storage.set_alarm_retry(self.site.clock.now() + delay, retry + 1)
                    log.warning("the alarm of %s%s raised; retry %d of %d in %.1f s",
                                self.site.id_scope, self.label, retry + 1, ALARM_MAX_RETRIES,
                                delay, exc_info=True)
                else:
                    log.error("the alarm of %s%s raised on its last retry (%d); dropped",
                              self.site.id_scope, self.label, retry, exc_info=True)
            raise
        return True

    def _finish(self, event: Event, outcome: object) -> None:
        """Reply now, or after the commit that makes this event's view durable."""
        storage = self.storage
        if self._to_reply or (storage is not None and storage.holds_output):
            self._to_reply.append((event, outcome))
            if self._driver is not trio.lowlevel.current_task():
                self._wakeup.set()
        elif storage is not None and storage.has_uncommitted_writes:
            # Only allow_unconfirmed writes: the result leaves now, the driver commits soon.
            self._deliver(event, outcome)
            if self._driver is not trio.lowlevel.current_task():
                self._wakeup.set()
        else:
            if storage is not None and storage.in_implicit_transaction:
                try:
                    storage.commit()  # a turn that only read: end its snapshot (no fsync)
                except DoboxError as exc:
                    self.reset(f"ending a read transaction failed: {exc}", cause=exc)
                    return
            self._deliver(event, outcome)

    def _deliver(self, event: Event, outcome: object) -> None:
        self.events.discard(event)
        if not self.events and not self._background:
            self.last_active = trio.current_time()
            self.site.idle(self)
        if isinstance(outcome, BaseException):
            event.reply.fail(outcome)
        else:
            event.reply.set_result(outcome)

    # -- the output gate ----------------------------------------------------------------------

    async def _commit_and_reply(self) -> None:
        await self.gate.acquire()
        self._gate_owner = trio.lowlevel.current_task()
        try:
            await self._commit_writes()
        finally:
            self._release_gate()

    async def _commit_writes(self) -> None:
        """With the gate held: make every write durable, then answer the waiting events.
        The gate stays held across the commit's awaits (the fsync's thread, a replica's
        confirmation): no handler may write meanwhile."""
        self._blocking += 1
        try:
            await self._commit_batch()
        finally:
            self._blocking -= 1

    async def _commit_batch(self) -> None:
        batch, self._to_reply = self._to_reply, []
        storage = self.storage
        assert storage is not None
        alarms = self.site.alarms if storage.alarm_changed else None
        alarm_at = storage.get_alarm_sync() if alarms is not None else None
        committed = storage.has_uncommitted_writes
        if committed and not self._still_owned(committed=False):
            return
        try:
            if committed:
                started = time.perf_counter()
                self.site.counters.commits += 1
                if alarms is not None:  # the index may hold more than the files, never less
                    alarms.before_commit(self.key, self.binding, self.id.hex, alarm_at)
                if storage.durability != "full":
                    storage.commit()
                else:
                    await self._commit_durably(storage)
                self.site.counters.commit_seconds += time.perf_counter() - started
        except DoboxError as exc:
            if not self._reset_on_storage_fault():
                self.reset(f"its writes could not be committed: {exc}", cause=exc)
            return
        if alarms is not None:
            alarms.after_commit(self.key, self.binding, self.id.hex, alarm_at)
        if committed and self.site.coordinator.confirms_commits:
            assert self._lease is not None
            try:  # replicated before acknowledged (a cluster's --replication sync)
                await self.site.coordinator.confirm(self._lease, self.path)
            except DoboxError as exc:
                self.reset(f"its writes were committed on this node, but their replication "
                           f"was not confirmed ({exc}): whether they survive the loss of this "
                           "node is unknown", cause=exc, type_name=type(exc).__name__,
                           retryable=False)
                return
        if not self._still_owned(committed=committed):  # lost while committing
            return
        for event, outcome in batch:
            self._deliver(event, outcome)
        held, self._held_calls = self._held_calls, []
        for send in held:
            send()  # calls made while those writes were uncommitted may leave now

    async def _commit_durably(self, storage: Storage) -> None:
        """Commit with its fsync on this thread when nothing else is ready to run, else in
        a worker thread, where other objects go on meanwhile (see _commit_placement)."""
        placement = commit_placement()
        try:
            if placement.inline():
                self.site.counters.inline_commits += 1
                storage.commit()
            else:
                placement.in_threads += 1
                try:
                    await storage.commit_in_thread()
                finally:
                    placement.in_threads -= 1
        finally:
            placement.took(storage.last_commit_seconds)

    def _still_owned(self, *, committed: bool) -> bool:
        """Whether this node may still acknowledge this object's writes (a cluster node that
        lost its lease may not: another may own the object now); if not, reset it. Before
        a commit, its writes are dropped and its callers told to retry; after one (the lease
        lapsed while it ran), the writes are on disk here and may reach the next owner, so
        the callers are told the outcome is unknown instead."""
        if self.site.coordinator.owns(self.key):
            return True
        if committed:
            self.reset("this node lost its ownership of the object (its lease in the cluster "
                       "lapsed) while committing: the writes were not acknowledged and may or "
                       "may not survive", retryable=False)
        else:
            self.reset("this node no longer owns the object (its lease in the cluster "
                       "lapsed); nothing was committed, retry")
        return False

    # -- calls to other objects -------------------------------------------------------------

    def suspend_connection(self) -> None:
        """Close the SQLite connection of this idle object (its instance stays live, its
        file stays locked); the next event reconnects. Called by the router's timekeeper."""
        storage = self.storage
        if storage is None or storage.suspended or self.events or not storage.can_suspend:
            return
        if storage.durability == "full":
            # Closing may checkpoint and fsync: in a thread, holding the gate so that an
            # event arriving meanwhile waits for it.
            if self._nursery is not None:
                self._nursery.start_soon(self._suspend_in_thread, storage)
        elif self.gate.try_acquire():
            try:
                storage.suspend()
            finally:
                self.gate.release()
            self.site.memory.soon()

    async def _suspend_in_thread(self, storage: Storage) -> None:
        await self.gate.acquire()
        self._gate_owner = trio.lowlevel.current_task()
        try:
            if not storage.suspended and storage.can_suspend and not self.events:
                await trio.to_thread.run_sync(storage.suspend)
                self.site.memory.soon()
        finally:
            self._release_gate()

    def hold_until_durable(self, send: Callable[[], None]) -> bool:
        """Hold an outgoing call until this object's writes are durable; False if there is
        nothing to wait for (then the caller sends it at once)."""
        storage = self.storage
        if storage is None or not storage.holds_output or self.state == "dead":
            return False
        self._held_calls.append(send)
        return True

    def holds_gate(self) -> bool:
        return self.gate.held and self._gate_owner is trio.lowlevel.current_task()

    async def call_out(self, send: Callable[[], Awaitable[T]]) -> T:
        """Run ``send()`` (a call to another object) from a handler of this object."""
        if self._blocking or not self.holds_gate():
            return await send()
        if self._to_reply or (self.storage is not None and self.storage.holds_output):
            await self._commit_writes()  # nothing leaves before the writes are durable
            if self.state == "dead":
                # The commit failed and reset the object: the call must not leave. The
                # object's tasks are cancelled; this checkpoint delivers it.
                await trio.lowlevel.checkpoint()
        if not self._strict:
            return await send()  # the handler is gated: its wait for the answer opens the gate
        if self._driver is trio.lowlevel.current_task() and self._nursery is not None:
            self._driver = None
            self._nursery.start_soon(self._drive)
        self._release_gate()
        try:
            return await send()
        finally:
            await self.gate.acquire_shielded()
            self._gate_owner = trio.lowlevel.current_task()

    def _release_gate(self) -> None:
        self._gate_owner = None
        self.gate.release()

    # -- ObjectHost: what ctx offers the object ---------------------------------------------

    def now(self) -> float:
        return self.site.clock.now()

    async def block_concurrency_while(self, fn: Callable[[], Awaitable[T]]) -> T:
        async with self._exclusive():
            try:
                return await fn()
            except (Exception, ObjectAborted) as exc:
                self.reset(
                    f"block_concurrency_while() raised {type(exc).__name__}: {exc}", cause=exc
                )
                raise

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold this object's other events, even across calls to other objects."""
        owned = self.holds_gate()
        if not owned:
            await self.gate.acquire()
            self._gate_owner = trio.lowlevel.current_task()
        self._blocking += 1
        try:
            yield
        finally:
            self._blocking -= 1
            if not owned:
                self._release_gate()

    def wait_until(self, awaitable: Awaitable[object]) -> None:
        if self._nursery is None or self.state not in ("activating", "running"):
            raise RuntimeError(f"{self.label} is not running; wait_until() cannot start")
        if not self.events and not self._background:
            self.site.timekeeper.busy(self)
        self._background += 1
        self._nursery.start_soon(self._in_background, awaitable)

    async def _in_background(self, awaitable: Awaitable[object]) -> None:
        try:
            await awaitable
        except ObjectAborted as exc:
            self.reset(f"ctx.abort() was called: {exc}", cause=exc)
        except Exception:
            log.exception("a wait_until() task of %s raised", self.label)
        finally:
            self._background -= 1
            if not self.events and not self._background:
                self.last_active = trio.current_time()
                self.site.idle(self)
            self._wakeup.set()

    def abort(self, reason: str | None) -> NoReturn:
        raise ObjectAborted(reason or "aborted")

    def accept_websocket(self, ws: object, tags: Iterable[str]) -> None:
        self.site.sockets.accept(self, ws, tags)

    def get_websockets(self, tag: str | None) -> list[WebSocket]:
        return self.site.sockets.websockets(self, tag)

    def get_tags(self, ws: WebSocket) -> list[str]:
        return self.site.sockets.tags(self, ws)

    def set_websocket_auto_response(self, pair: WebSocketRequestResponsePair | None) -> None:
        self.site.sockets.set_auto_response(self, pair)

    def get_websocket_auto_response(self) -> WebSocketRequestResponsePair | None:
        return self.site.sockets.auto_response(self)

    # -- reset ----------------------------------------------------------------------------------

    def _reset_on_storage_fault(self) -> bool:
        """Reset the object if its storage met a critical error (a damaged file, a full
        disk, an I/O error) since the last check, even one the handler caught: its
        connection can no longer be trusted. Whether it did."""
        fault = self.storage.take_fault() if self.storage is not None else None
        if fault is None:
            return False
        self.reset(str(fault), cause=fault, type_name=type(fault).__name__,
                   retryable=not isinstance(fault, DatabaseCorruptError))
        return True

    def reset(self, why: str, *, cause: BaseException | None = None,
              type_name: str = "ObjectResetError", retryable: bool = True) -> None:
        """Fail every event of this activation, drop the instance, close the file.

        The events fail with ``ObjectResetError`` saying ``why``; ``type_name`` and
        ``retryable`` say what kind of fault it was (a damaged file: not retryable).
        """
        if self.state == "dead":
            return
        self.state = "dead"
        self.site.counters.resets += 1
        self.site.retire(self)
        self.site.sockets.close_object(self.key)
        log.warning("reset %s: %s (file %s)", self.label, why, self.path)

        def error() -> ObjectResetError:
            failure = ObjectResetError(
                f"Durable Object {self.label} was reset: {why}", type_name=type_name,
                retryable=retryable, object_id=self.id.hex,
            )
            failure.__cause__ = cause
            return failure

        self._fail_all(error)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _fail_all(self, error: Callable[[], BaseException]) -> None:
        for event in list(self.events):
            event.reply.fail(error())
        for event in self.mailbox:
            event.reply.fail(error())
        self.events.clear()
        self.mailbox.clear()
        self._to_reply.clear()
        self._held_calls.clear()  # their writes were not committed: they never leave

