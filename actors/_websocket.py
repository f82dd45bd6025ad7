"""WebSockets as objects see them: ``WebSocketPair`` and its two ``WebSocket`` ends.

As in Durable Objects, an object answers an upgrade request from ``fetch``::

    client, server = WebSocketPair()
    self.ctx.accept_websocket(server, tags=["lobby"])
    return httpx.Response(101, extensions={"websocket": client})

The two ends are an in-memory pipe: what one end sends, the other receives. The server
hands the client end to the real connection (``runtime.server``); in-process, the caller
of ``stub.fetch`` (or ``stub.websocket()``) holds it. A server end accepted with
``ctx.accept_websocket`` is *hibernatable*: its messages become ``websocket_message``
events of its object (the runtime's socket registry routes them), and it stays open while
its object is evicted.

Sending is synchronous, as in Durable Objects, and goes through the output gate: a
message (or close) sent by an object with uncommitted writes leaves after those writes
are durable. Closing is immediate on both ends (the runtime answers a close frame itself,
as workerd does with ``web_socket_auto_reply_to_close``).
"""

from __future__ import annotations

import abc
import enum
from collections import deque
from collections.abc import Callable
from typing import Self, TypeAlias

import attrs

from storage import DoboxError, Value, decode_value, encode_value

from ._host import current_host
from ._signal import Signal

Message: TypeAlias = str | bytes

MAX_ATTACHMENT_SIZE = 16_384
"""Bytes of an encoded attachment (Durable Objects' ``MAX_ATTACHMENT_SIZE``)."""

MAX_AUTO_RESPONSE_LENGTH = 2_048
"""Characters of an auto-response's request and of its response."""

MAX_MESSAGE_SIZE = 32 * 1024 * 1024
"""Bytes of one received message (Durable Objects' limit, 32 MiB)."""


class ReadyState(enum.IntEnum):
    """The WebSocket API's ``readyState`` values (there is no CONNECTING: a pair is open)."""

    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class WebSocketClosed(DoboxError):
    """The WebSocket is closed: raised by ``receive()`` once the peer's close has been
    read, and by ``send()`` after a close. ``code`` and ``reason`` are the close frame's;
    ``was_clean`` is False when the connection was lost without one (code 1006)."""

    def __init__(self, code: int, reason: str = "", *, was_clean: bool = True) -> None:
        super().__init__(f"the WebSocket is closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason
        self.was_clean = was_clean


class WebSocketRejected(DoboxError):
    """The object answered a WebSocket upgrade with ``status`` instead of accepting it;
    ``body`` is its response body."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"the object refused the WebSocket with status {status}: "
                         f"{body[:200].decode(errors='replace')}")
        self.status = status
        self.body = body


class MessageTooBigError(DoboxError, ValueError):
    """A received WebSocket message was over the size limit; the socket is closed (1009)."""


@attrs.frozen
class WebSocketRequestResponsePair:
    """An auto-response: a text message equal to ``request`` is answered with ``response``
    by the runtime, without waking the object (``ctx.set_websocket_auto_response``).

    Raises:
        ValueError: either is over 2,048 characters.
    """

    request: str = attrs.field(validator=attrs.validators.instance_of(str))
    response: str = attrs.field(validator=attrs.validators.instance_of(str))

    def __attrs_post_init__(self) -> None:
        for name in ("request", "response"):
            if len(getattr(self, name)) > MAX_AUTO_RESPONSE_LENGTH:
                raise ValueError(f"the auto-response's {name} is over "
                                 f"{MAX_AUTO_RESPONSE_LENGTH:,} characters")


class MessageStream(abc.ABC):
    """What both ends a program reads share, the in-process ``WebSocket`` and the network
    client's ``RemoteWebSocket``: ``await receive()``, and ``async for`` over it until the
    connection closes."""

    __slots__ = ()

    @abc.abstractmethod
    async def receive(self) -> Message:
        """The next message.

        Raises:
            WebSocketClosed: the connection closed (after every message sent before it).
        """

    def __aiter__(self) -> Self:
        """Every message until the connection closes."""
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None


Frame: TypeAlias = tuple[str, object, object]
"""What a listener is given: from the peer, ``("message", data, None)``, ``("close", code,
reason)`` (``code`` 1006 when the peer was lost) or ``("error", exception, None)``; and
``("closed", code, reason)`` when its own end closed."""

Listener: TypeAlias = Callable[["WebSocket", Frame], None]


class WebSocket(MessageStream):
    """One end of a WebSocket connection (see the module docstring).

    ``send``/``close`` work on both ends. ``receive()`` and ``async for`` read an end that
    nobody listens to (the client end in-process, or a server end an object reads itself
    instead of accepting it); an accepted end's messages go to its object's handlers.
    """

    __slots__ = (
        "__weakref__", "_attachment", "_close", "_inbox", "_listener", "_peer", "_signal",
        "auto_response_at", "ready_state",
    )

    def __init__(self) -> None:
        self._peer: WebSocket | None = None
        self._inbox: deque[Frame] = deque()
        self._signal: Signal | None = None
        self._listener: Listener | None = None
        self._close: WebSocketClosed | None = None
        self._attachment: bytes | None = None
        self.ready_state = ReadyState.OPEN
        self.auto_response_at: float | None = None
        """When the runtime last auto-responded on this socket (epoch seconds)."""

    def __repr__(self) -> str:
        return f"<WebSocket {self.ready_state.name} at {id(self):#x}>"

    # -- sending ----------------------------------------------------------------------------

    def send(self, message: Message | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message to the other end.

        Raises:
            WebSocketClosed: this end is closing or closed.
            TypeError: ``message`` is neither text nor bytes.
        """
        if isinstance(message, bytearray | memoryview):
            message = bytes(message)
        if not isinstance(message, str | bytes):
            raise TypeError(f"a WebSocket sends str or bytes, not {type(message).__name__}")
        if self.ready_state is not ReadyState.OPEN:
            raise self._close or WebSocketClosed(1000, "closed by this end")
        self._through_output_gate(self._deliver, ("message", message, None))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` (1000, or 3000-4999) and ``reason`` (at
        most 123 bytes of UTF-8). Closing a closed socket does nothing.

        Raises:
            ValueError: a code or reason the WebSocket protocol does not allow.
        """
        if not (code == 1000 or 3000 <= code <= 4999):
            raise ValueError(f"close code {code} is not allowed: use 1000 or 3000-4999")
        if len(reason.encode()) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        if self.ready_state is ReadyState.OPEN:
            self.ready_state = ReadyState.CLOSING
            self._through_output_gate(self._deliver, ("close", code, reason))

    def _through_output_gate(self, deliver: Callable[[Frame], None], frame: Frame) -> None:
        host = current_host.get()
        if host is None or not host.hold_until_durable(lambda: deliver(frame)):
            deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        """Hand ``frame``, sent from this end, to the peer (and finish a close here)."""
        peer = self._peer
        if frame[0] != "message":
            self._closed(WebSocketClosed(int(frame[1]), str(frame[2])))  # type: ignore[call-overload]  # a close frame's code is an int
            if self._listener is not None:
                self._listener(self, ("closed", frame[1], frame[2]))
        if peer is not None and peer.ready_state is not ReadyState.CLOSED:
            peer._arrive(frame)

    def _arrive(self, frame: Frame) -> None:
        """``frame`` came from the peer."""
        if frame[0] != "message":
            if frame[0] == "close":
                code, reason = int(frame[1]), str(frame[2])  # type: ignore[call-overload]  # as above
                self._closed(WebSocketClosed(code, reason, was_clean=code != 1006))
            else:
                self._closed(WebSocketClosed(1011, str(frame[1]), was_clean=False))
        if self._listener is not None:
            self._listener(self, frame)
        else:
            self._inbox.append(frame)
            if self._signal is not None:
                self._signal.set()

    def _closed(self, info: WebSocketClosed) -> None:
        if self.ready_state is not ReadyState.CLOSED:
            self.ready_state = ReadyState.CLOSED
            self._close = info

    def _listen(self, listener: Listener) -> None:
        """Give this end's frames to ``listener`` from now on, starting with any queued."""
        self._listener = listener
        while self._inbox:
            listener(self, self._inbox.popleft())

    def _close_now(self, code: int = 1006, reason: str = "") -> None:
        """Close at once with any ``code``, past the output gate: the transport under this
        end went away (1006), or the runtime closes the socket (a reset, a shutdown)."""
        if self.ready_state is not ReadyState.CLOSED:
            self.ready_state = ReadyState.CLOSING
            self._deliver(("close", code, reason))

    def _fail(self, error: BaseException) -> None:
        """The transport under this end failed: the peer sees ``error``."""
        if self.ready_state is not ReadyState.CLOSED:
            self._closed(WebSocketClosed(1011, str(error), was_clean=False))
            peer = self._peer
            if peer is not None and peer.ready_state is not ReadyState.CLOSED:
                peer._arrive(("error", error, None))

    # -- receiving (an end nobody listens to) -------------------------------------------------

    async def receive(self) -> Message:
        """The next message from the other end.

        Raises:
            WebSocketClosed: the connection closed (after every message sent before it).
            RuntimeError: this end was accepted by an object (its handlers get messages).
        """
        if self._listener is not None:
            raise RuntimeError("this WebSocket was accepted by an object: its messages go to "
                               "the object's websocket_message handler")
        while not self._inbox:
            if self.ready_state is ReadyState.CLOSED:
                raise self._close or WebSocketClosed(1006, was_clean=False)
            if self._signal is None:
                self._signal = Signal()
            await self._signal.wait()
        kind, data, _ = self._inbox.popleft()
        if kind == "message":
            return data  # type: ignore[return-value]  # message frames carry str or bytes
        assert self._close is not None, "a close or error frame closes this end"
        raise self._close

    # -- attachments ---------------------------------------------------------------------------

    def serialize_attachment(self, value: Value) -> None:
        """Keep ``value`` with this socket: it survives the object's hibernation, is still
        readable in ``websocket_close``, and goes with the socket. Stored by value, through
        the storage codec.

        Raises:
            ValueError: its encoding is over 16 KiB.
            UnsupportedValueError: the codec cannot store it.
        """
        encoded = encode_value(value, name="the attachment")
        if len(encoded) > MAX_ATTACHMENT_SIZE:
            raise ValueError(f"A WebSocket 'attachment' cannot be larger than "
                             f"{MAX_ATTACHMENT_SIZE:,} bytes (this one encodes to "
                             f"{len(encoded):,})")
        self._attachment = encoded

    def deserialize_attachment(self) -> Value:
        """A copy of the value last given to ``serialize_attachment``, or None."""
        return None if self._attachment is None else decode_value(self._attachment)


def WebSocketPair() -> tuple[WebSocket, WebSocket]:  # named as Durable Objects' class
    """Two connected ends: ``(client, server)``. Keep the server end (accept it with
    ``ctx.accept_websocket``); return the client end in a 101 response's
    ``extensions["websocket"]``."""
    client, server = WebSocket(), WebSocket()
    client._peer, server._peer = server, client
    return client, server


def message_size(message: object) -> int:
    """Bytes of a message on the wire."""
    return len(message.encode()) if isinstance(message, str) else len(message)  # type: ignore[arg-type]  # bytes

