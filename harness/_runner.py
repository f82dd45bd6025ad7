"""The harness's own object server: a subprocess that opens a runtime and serves calls.

    python -m harness._runner --data DIR --objects package.module:OBJECTS [--durability full]

It prints ``ready`` once the runtime is open, then reads one JSON call per line on stdin,
``{"id": 1, "binding": "COUNTER", "name": "a", "method": "increment", "args": [2]}``, runs
calls concurrently, and answers each on stdout once its result is durable:
``{"id": 1, "result": 2}`` or ``{"id": 1, "error": {"type": "ValueError", "message": "..."}}``.
End of input or SIGTERM shuts the runtime down gracefully; SIGKILL is what crash tests send.
:class:`harness.ServerProcess` drives it; the HTTP server will take its place.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import AsyncIterator, Mapping

import trio

from actors import DurableObject, RemoteError
from runtime import Runtime, open_runtime
from runtime._load import load_objects


async def serve(data: str, objects: Mapping[str, type[DurableObject]], durability: str) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_sigterm, nursery.cancel_scope)
        async with open_runtime(data, objects, durability=durability) as runtime:  # type: ignore[arg-type]  # checked by open_runtime
            out = trio.lowlevel.FdStream(sys.stdout.fileno())
            write_lock = trio.Lock()
            await out.send_all(b"ready\n")
            async with trio.open_nursery() as calls:
                async for line in _lines(trio.lowlevel.FdStream(sys.stdin.fileno())):
                    calls.start_soon(_answer, runtime, json.loads(line), out, write_lock)
        nursery.cancel_scope.cancel()


async def _answer(
    runtime: Runtime, call: dict[str, object], out: trio.abc.SendStream, lock: trio.Lock
) -> None:
    reply: dict[str, object] = {"id": call["id"]}
    try:
        stub = runtime.namespace(str(call["binding"])).get_by_name(str(call["name"]))
        method = getattr(stub, str(call["method"]))
        reply["result"] = await method(*call.get("args", []))  # type: ignore[misc]  # JSON args
    except Exception as exc:
        type_name = exc.type_name if isinstance(exc, RemoteError) else type(exc).__name__
        reply["error"] = {"type": type_name, "message": str(exc)}
    async with lock:
        await out.send_all(json.dumps(reply).encode() + b"\n")


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes]:
    buffer = b""
    while True:
        chunk = await stream.receive_some()
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line


async def _stop_on_sigterm(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()  # open_runtime's exit then drains and commits
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--objects", required=True)
    parser.add_argument("--durability", default="full", choices=["full", "normal", "off"])
    args = parser.parse_args()
    trio.run(serve, args.data, load_objects(args.objects), args.durability)


if __name__ == "__main__":
    main()
