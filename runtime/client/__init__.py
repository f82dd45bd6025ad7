"""The Python client of a dobox server: ``Client`` and its stubs, live queries and
WebSockets over the network. It stands alone: it imports nothing of the engine or the
server (tests/runtime/test_architecture.py checks), so a program that only calls a server
loads neither."""

from ._client import Client as Client
from ._client import ClientError as ClientError
from ._client import ClientNamespace as ClientNamespace
from ._client import ClientStub as ClientStub
from ._client import RetryPolicy as RetryPolicy
from ._live import LiveQueryError as LiveQueryError
from ._websocket import RemoteWebSocket as RemoteWebSocket

__all__ = [
    "Client",
    "ClientError",
    "ClientNamespace",
    "ClientStub",
    "LiveQueryError",
    "RemoteWebSocket",
    "RetryPolicy",
]
