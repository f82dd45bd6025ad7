"""The programming model: ``DurableObject``, ``ObjectContext``, ``ObjectId``, ``Env``, the
WebSockets objects accept and send on, and the errors callers of objects see."""

from ._alarm_info import AlarmInfo as AlarmInfo
from ._errors import InvalidArgumentsError as InvalidArgumentsError
from ._errors import InvalidObjectId as InvalidObjectId
from ._errors import InvalidObjectName as InvalidObjectName
from ._errors import ObjectAborted as ObjectAborted
from ._errors import ObjectResetError as ObjectResetError
from ._errors import OverloadedError as OverloadedError
from ._errors import RemoteError as RemoteError
from ._errors import RuntimeClosedError as RuntimeClosedError
from ._errors import UnknownMethodError as UnknownMethodError
from ._host import ObjectHost as ObjectHost
from ._ids import MAX_NAME_BYTES as MAX_NAME_BYTES
from ._ids import ObjectId as ObjectId
from ._object import DurableObject as DurableObject
from ._object import Env as Env
from ._object import ObjectContext as ObjectContext
from ._rpc import HANDLER_NAMES as HANDLER_NAMES
from ._rpc import PlainMethodWarning as PlainMethodWarning
from ._websocket import MessageTooBigError as MessageTooBigError
from ._websocket import ReadyState as ReadyState
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketClosed as WebSocketClosed
from ._websocket import WebSocketPair as WebSocketPair
from ._websocket import WebSocketRejected as WebSocketRejected
from ._websocket import WebSocketRequestResponsePair as WebSocketRequestResponsePair

__all__ = [
    "HANDLER_NAMES",
    "MAX_NAME_BYTES",
    "AlarmInfo",
    "DurableObject",
    "Env",
    "InvalidArgumentsError",
    "InvalidObjectId",
    "InvalidObjectName",
    "MessageTooBigError",
    "ObjectAborted",
    "ObjectContext",
    "ObjectHost",
    "ObjectId",
    "ObjectResetError",
    "OverloadedError",
    "PlainMethodWarning",
    "ReadyState",
    "RemoteError",
    "RuntimeClosedError",
    "UnknownMethodError",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketPair",
    "WebSocketRejected",
    "WebSocketRequestResponsePair",
]
