"""An event on its way to an object, and the reply its caller waits for.

Arguments and results cross by value: RPC arguments are encoded with the storage codec when
the call is made, and results when the handler returns, so caller and object never share a
mutable value (and what works in-process also works over HTTP).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

from actors._signal import Signal
from storage import Value, decode_value, encode_value

EventKind = Literal[
    "rpc", "fetch", "alarm", "run", "websocket_message", "websocket_close", "websocket_error"
]
"""``run`` is the harness's: run a function inside the object's turn. The ``websocket_*``
events come from accepted sockets; their payload is the handler's arguments."""


class Unencoded:
    """A result delivered as it is, not through the codec (fetch responses, the harness's
    ``run_in_object`` results)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


FORCE_ALARM = "force"
"""The payload of an alarm event that runs the pending alarm whether or not it is due."""

NO_ARGUMENTS = encode_value(((), {}))
"""The payload of a call without arguments (the object skips decoding it)."""


class Reply:
    """The outcome of one event, set once (the first outcome wins). Its caller either awaits
    it (``wait``), or, from outside trio's tasks (the server's bridge), asks to be called
    when it is set (``when_done``) and then reads it (``outcome``)."""

    __slots__ = ("_done", "_error", "_on_done", "_result", "_signal")

    def __init__(self) -> None:
        self._done = False
        self._result: object = None
        self._error: BaseException | None = None
        self._signal = Signal()
        self._on_done: Callable[[], None] | None = None

    @property
    def done(self) -> bool:
        return self._done

    def set_result(self, result: object) -> None:
        """``result`` is the encoded result (``bytes``), or an already copied value."""
        if not self._done:
            self._done = True
            self._result = result
            self._settled()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._done = True
            self._error = error
            self._settled()

    def _settled(self) -> None:
        self._signal.set()
        callback, self._on_done = self._on_done, None
        if callback is not None:
            # Let go of it first: the callback usually holds what holds this reply, and
            # a kept reference would make a cycle per request for the collector to find.
            callback()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the outcome is set (at once if it is). It runs inside
        the ``set_result`` or ``fail`` of the object's task: it must not raise or block."""
        if self._done:
            callback()
        else:
            self._on_done = callback

    async def wait(self) -> Value:
        """The decoded result; raises the event's error."""
        await self._signal.wait()
        return self.outcome()

    def outcome(self) -> Value:
        """The decoded result of a settled reply; raises the event's error."""
        assert self._done, "outcome() of a reply not yet set"
        if self._error is not None:
            raise _fresh(self._error)
        result = self._result
        if type(result) is bytes:
            return decode_value(result)
        return result.value if type(result) is Unencoded else result


def _fresh(error: BaseException) -> BaseException:
    """A copy of ``error`` for this raise (several callers may share one activation error),
    keeping its cause."""
    try:
        clone = copy.copy(error)
    except Exception:  # an exception type that cannot be copied: raise the original
        return error
    clone.__cause__ = error.__cause__
    clone.__traceback__ = None
    return clone


class Event:
    """An RPC call or a fetch, queued in an object's mailbox."""

    __slots__ = ("by_reference", "kind", "name", "payload", "reply")

    def __init__(self, kind: EventKind, name: str, payload: object) -> None:
        self.kind: EventKind = kind
        self.name = name
        self.payload = payload
        self.reply = Reply()
        self.by_reference = False
        """A fetch whose caller only reads the response: it is checked, not copied."""

    def describe(self) -> str:
        return f"{self.name}()" if self.kind == "rpc" else f"{self.kind}()"
