"""Carry frames between a server's WebSocket connection (ASGI) and the client end of an
object's ``WebSocketPair``.

Two directions, two tasks of the connection's ASGI handler:

- *in*: each frame the client sends goes into trio (``to_trio``, in order) as a ``send`` on
  the client end, so it reaches the object's accepted server end; a disconnect closes the
  client end (code 1006 when the connection was lost, so the object sees ``was_clean``
  False);
- *out*: what the object sends arrives through the client end's listener (in trio) and is
  queued for the connection, which sends it at the pace the client reads. At most
  ``MAX_PENDING_BYTES`` wait: past that the client is not keeping up, and the socket is
  closed with 1011 (and ``websocket_error`` for the object) rather than buffered without
  bound.

It runs under asyncio (``dobox serve``: trio is a guest of the loop) and under trio
(hypercorn's trio worker), through anyio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping

import anyio
import sniffio

from actors._websocket import Frame, ReadyState, WebSocket, WebSocketClosed, message_size
from storage import DoboxError

Message = MutableMapping[str, object]

MAX_PENDING_BYTES = 16 * 1024 * 1024
"""Bytes sent by an object and not yet written to a slow client, per connection."""


class ClientTooSlowError(DoboxError):
    """The client did not read fast enough: too much was waiting to be sent to it."""


async def bridge_websocket(
    client: WebSocket,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
    to_trio: Callable[[Callable[[], None]], None],
) -> None:
    """Carry frames both ways until either side closes (see the module docstring)."""
    outbox_in, outbox_out = anyio.create_memory_object_stream[Frame](math.inf)
    pending = 0

    def put(frame: Frame) -> None:
        # Frames that arrive after the connection ended have nowhere to go.
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            outbox_in.send_nowait(frame)

    if sniffio.current_async_library() == "asyncio":
        # The listener runs in trio, a guest on this loop's thread: hand frames over
        # through the loop, not by touching asyncio's primitives from inside trio's tick.
        loop = asyncio.get_running_loop()

        def enqueue(frame: Frame) -> None:
            loop.call_soon(put, frame)
    else:
        enqueue = put

    def listener(_: WebSocket, frame: Frame) -> None:  # in trio
        nonlocal pending
        if frame[0] == "closed":
            return  # this end closed itself: the close frame it sent is on its way out
        if frame[0] == "message":
            pending += message_size(frame[1])
            if pending > MAX_PENDING_BYTES:
                client._fail(ClientTooSlowError(
                    f"over {MAX_PENDING_BYTES:,} bytes were waiting for a slow client"))
                frame = ("close", 1011, "the client is not reading fast enough")
        enqueue(frame)

    async def send_out(cancel: anyio.CancelScope) -> None:
        nonlocal pending
        async with outbox_out:
            async for kind, data, reason in outbox_out:
                try:
                    if kind == "message":
                        pending -= message_size(data)
                        key = "text" if isinstance(data, str) else "bytes"
                        await send({"type": "websocket.send", key: data})
                        continue
                    code = data if kind == "close" else 1011
                    await send({"type": "websocket.close", "code": code,
                                "reason": str(reason or "")})
                except Exception as exc:  # the connection broke under us
                    to_trio(functools.partial(client._fail, exc))
                cancel.cancel()
                return

    client._listen(listener)
    try:
        with outbox_in:
            await _carry(client, receive, send_out, to_trio)
    finally:
        if client.ready_state is not ReadyState.CLOSED:  # the handler was cancelled
            to_trio(functools.partial(client._close_now, 1006, ""))


async def _carry(
    client: WebSocket,
    receive: Callable[[], Awaitable[Message]],
    send_out: Callable[[anyio.CancelScope], Coroutine[object, object, None]],
    to_trio: Callable[[Callable[[], None]], None],
) -> None:
    """Run ``send_out`` beside the loop that carries the client's frames in, until one
    of them sees the connection end."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(send_out, tasks.cancel_scope)
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                data = text if text is not None else message.get("bytes")
                to_trio(functools.partial(_send_quietly, client, data))
            elif message["type"] == "websocket.disconnect":
                code, reason = close_of(message)
                to_trio(functools.partial(client._close_now, code, reason))
                tasks.cancel_scope.cancel()
                return


def close_of(message: Message) -> tuple[int, str]:
    """The close code and reason of a ``websocket.disconnect``, as the WebSocket spec names
    them: 1006 when the connection was lost without a close frame.

    ASGI servers disagree on that case. uvicorn reports a lost connection as 1005 (its
    choice since uvicorn PR 1753), the code the spec keeps for a close frame *without* a
    code, and tells the two apart only by the ``reason`` key, which it sets for every close
    frame and never for a lost connection. hypercorn reports 1006 for a lost connection,
    and also, losing the code (hypercorn issue 127), for every close the client starts.
    """
    code = message.get("code", 1005)
    if not isinstance(code, int):
        code = 1005
    if code == 1005 and "reason" not in message:
        return 1006, ""
    return int(code), str(message.get("reason") or "")


def _send_quietly(client: WebSocket, data: object) -> None:
    """A frame from the connection, for the object. The object may have closed the socket
    meanwhile; the frame is then dropped, as a closed socket's would be."""
    if isinstance(data, str | bytes):
        with contextlib.suppress(WebSocketClosed):
            client.send(data)
