"""Hosting Durable Objects: ``open_runtime``, namespaces and stubs, the coordinator, and the
``dobox`` command line."""

from actors import MessageTooBigError as MessageTooBigError
from actors import ReadyState as ReadyState
from actors import WebSocket as WebSocket
from actors import WebSocketClosed as WebSocketClosed
from actors import WebSocketPair as WebSocketPair
from actors import WebSocketRejected as WebSocketRejected
from actors import WebSocketRequestResponsePair as WebSocketRequestResponsePair

from ._client import Client as Client
from ._client import ClientError as ClientError
from ._client import ClientNamespace as ClientNamespace
from ._client import ClientStub as ClientStub
from ._client import RetryPolicy as RetryPolicy
from ._client_live import LiveQueryError as LiveQueryError
from ._client_websocket import RemoteWebSocket as RemoteWebSocket
from ._coordinator import Coordinator as Coordinator
from ._coordinator import Lease as Lease
from ._coordinator import SingleProcessCoordinator as SingleProcessCoordinator
from ._namespace import Call as Call
from ._namespace import Namespace as Namespace
from ._namespace import Stub as Stub
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeStatistics as RuntimeStatistics
from ._runtime import open_runtime as open_runtime
from ._serve import serve as serve

__all__ = [
    "Call",
    "Client",
    "ClientError",
    "ClientNamespace",
    "ClientStub",
    "Coordinator",
    "Lease",
    "LiveQueryError",
    "MessageTooBigError",
    "Namespace",
    "ReadyState",
    "RemoteWebSocket",
    "RetryPolicy",
    "Runtime",
    "RuntimeStatistics",
    "SingleProcessCoordinator",
    "Stub",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketPair",
    "WebSocketRejected",
    "WebSocketRequestResponsePair",
    "open_runtime",
    "serve",
]
