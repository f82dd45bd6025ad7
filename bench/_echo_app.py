"""The floor for bench_server.py's numbers: a bare ASGI app, served by the same uvicorn
(httptools, uvloop) as ``dobox serve``, with no trio, no object and no storage behind it.
It answers any HTTP request with ``{"result": 0}`` and echoes each WebSocket message.

    python -m uvicorn _echo_app:app --port 8788 --loop uvloop --http httptools
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

Message = MutableMapping[str, object]


async def app(scope: Message, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] == "http":
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"result": 0}'})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})
