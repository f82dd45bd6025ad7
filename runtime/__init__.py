"""Hosting Durable Objects: ``open_runtime``, namespaces and stubs, the coordinator, the
server, the Python client and the ``dobox`` command line.

Each role is a package of its own (docs/architecture.md): the engine (``_engine``),
``server``, ``client`` and ``cli``. This module re-exports their public names, and loads a
role's package the first time one of its names is used, so that a program that only uses
the client never loads the engine, the server or their dependencies.
"""

from __future__ import annotations

import importlib
import typing

from actors import MessageTooBigError as MessageTooBigError
from actors import ReadyState as ReadyState
from actors import WebSocket as WebSocket
from actors import WebSocketClosed as WebSocketClosed
from actors import WebSocketPair as WebSocketPair
from actors import WebSocketRejected as WebSocketRejected
from actors import WebSocketRequestResponsePair as WebSocketRequestResponsePair

if typing.TYPE_CHECKING:
    from ._engine import NOT_HELD as NOT_HELD
    from ._engine import Call as Call
    from ._engine import Coordinator as Coordinator
    from ._engine import Lease as Lease
    from ._engine import LiveObject as LiveObject
    from ._engine import Namespace as Namespace
    from ._engine import NotHeld as NotHeld
    from ._engine import ObjectBusyError as ObjectBusyError
    from ._engine import Runtime as Runtime
    from ._engine import RuntimeOptions as RuntimeOptions
    from ._engine import RuntimeSettings as RuntimeSettings
    from ._engine import RuntimeStatistics as RuntimeStatistics
    from ._engine import SingleProcessCoordinator as SingleProcessCoordinator
    from ._engine import SocketView as SocketView
    from ._engine import Stub as Stub
    from ._engine import open_runtime as open_runtime
    from .client import Client as Client
    from .client import ClientError as ClientError
    from .client import ClientNamespace as ClientNamespace
    from .client import ClientStub as ClientStub
    from .client import LiveQueryError as LiveQueryError
    from .client import RemoteWebSocket as RemoteWebSocket
    from .client import RetryPolicy as RetryPolicy
    from .server import serve as serve

_PACKAGE_OF: dict[str, str] = {
    # name: the package that defines it, imported on first use
    "Call": "runtime._engine",
    "Coordinator": "runtime._engine",
    "Lease": "runtime._engine",
    "LiveObject": "runtime._engine",
    "NOT_HELD": "runtime._engine",
    "NotHeld": "runtime._engine",
    "ObjectBusyError": "runtime._engine",
    "SocketView": "runtime._engine",
    "Namespace": "runtime._engine",
    "Runtime": "runtime._engine",
    "RuntimeOptions": "runtime._engine",
    "RuntimeSettings": "runtime._engine",
    "RuntimeStatistics": "runtime._engine",
    "SingleProcessCoordinator": "runtime._engine",
    "Stub": "runtime._engine",
    "open_runtime": "runtime._engine",
    "Client": "runtime.client",
    "ClientError": "runtime.client",
    "ClientNamespace": "runtime.client",
    "ClientStub": "runtime.client",
    "LiveQueryError": "runtime.client",
    "RemoteWebSocket": "runtime.client",
    "RetryPolicy": "runtime.client",
    "serve": "runtime.server",
}


def __getattr__(name: str) -> object:
    try:
        package = _PACKAGE_OF[name]
    except KeyError:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}") from None
    value: object = vars(importlib.import_module(package))[name]
    globals()[name] = value  # later uses find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "NOT_HELD",
    "Call",
    "Client",
    "ClientError",
    "ClientNamespace",
    "ClientStub",
    "Coordinator",
    "Lease",
    "LiveObject",
    "LiveQueryError",
    "MessageTooBigError",
    "Namespace",
    "NotHeld",
    "ObjectBusyError",
    "ReadyState",
    "RemoteWebSocket",
    "RetryPolicy",
    "Runtime",
    "RuntimeOptions",
    "RuntimeSettings",
    "RuntimeStatistics",
    "SingleProcessCoordinator",
    "SocketView",
    "Stub",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketPair",
    "WebSocketRejected",
    "WebSocketRequestResponsePair",
    "open_runtime",
    "serve",
]
