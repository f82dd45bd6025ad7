"""The programming model: ``DurableObject``, ``ObjectContext``, ``ObjectId``, ``Env`` and the
errors callers of objects see."""

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
from ._ids import MAX_NAME_BYTES as MAX_NAME_BYTES
from ._ids import ObjectId as ObjectId
from ._object import DurableObject as DurableObject
from ._object import Env as Env
from ._object import ObjectContext as ObjectContext
from ._object import ObjectHost as ObjectHost
from ._rpc import HANDLER_NAMES as HANDLER_NAMES

__all__ = [
    "HANDLER_NAMES",
    "MAX_NAME_BYTES",
    "AlarmInfo",
    "DurableObject",
    "Env",
    "InvalidArgumentsError",
    "InvalidObjectId",
    "InvalidObjectName",
    "ObjectAborted",
    "ObjectContext",
    "ObjectHost",
    "ObjectId",
    "ObjectResetError",
    "OverloadedError",
    "RemoteError",
    "RuntimeClosedError",
    "UnknownMethodError",
]
