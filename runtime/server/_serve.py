"""``runtime.serve``: the HTTP server inside your own trio program (hypercorn's trio worker).

::

    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve, OBJECTS, "./data", port=8787))
        ...                                  # your program goes on
        nursery.cancel_scope.cancel()        # stops the server; the runtimes drain

``dobox serve`` (uvicorn, asyncio, the runtime as trio's guest) is faster; this is for
programs that are trio already, where no bridge is needed. The routes, tenants, tokens and
errors are the same (docs/serving.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import trio

from actors import DurableObject
from actors._websocket import MAX_MESSAGE_SIZE

from ._asgi import DoboxApp


async def serve(
    objects: Mapping[str, type[DurableObject]],
    data_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    tokens: Mapping[str, str] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``objects`` over HTTP until cancelled; ``task_status.started`` gets the bound
    addresses (``port=0`` picks a free port). Needs ``hypercorn[trio]``
    (``pip install 'dobox[hypercorn]'``).
    """
    try:  # an optional dependency
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve
    except ImportError as exc:
        raise ModuleNotFoundError(
            "runtime.serve needs hypercorn's trio worker: pip install 'dobox[hypercorn]' "
            "(or serve under uvicorn with the dobox serve command)", name="hypercorn"
        ) from exc

    if tokens is None and host != "127.0.0.1":
        raise ValueError("without tokens the server binds to 127.0.0.1 only")
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.websocket_max_message_size = MAX_MESSAGE_SIZE
    async with trio.open_nursery() as runtimes:
        app = DoboxApp(Path(data_dir), objects, tokens=tokens)
        app.run_in_trio(runtimes)
        try:
            await hypercorn_serve(app, config, task_status=task_status)  # type: ignore[arg-type]  # DoboxApp is an ASGI app
        finally:
            runtimes.cancel_scope.cancel()  # each runtime drains within its grace period
