"""The errors that callers of objects see, under dobox's root :class:`~storage.DoboxError`.

::

    DoboxError                      (storage's tree: StorageError, SchemaMismatchError, ...)
    ├── RemoteError                 an event failed in the object; flags as Durable Objects'
    │   ├── OverloadedError         the object's queue is full (overloaded=True); don't retry
    │   └── ObjectResetError        the object was reset (reset=True); a retry starts it afresh
    ├── InvalidObjectId             (also ValueError) malformed, or of another namespace
    ├── InvalidObjectName           (also ValueError) empty, '.', '..', not UTF-8, too long
    ├── UnknownMethodError          (also AttributeError) not a public RPC method of the class
    ├── InvalidArgumentsError       (also TypeError) arguments that do not fit the method
    └── RuntimeClosedError          the runtime is closing or closed: you closed it

A ``RemoteError`` keeps the name and message of the exception the handler raised
(``type_name``, ``str(error)``); when that was a builtin exception such as ``ValueError``,
the error the caller sees also subclasses it, so ``except ValueError`` works across the call.

:class:`ObjectAborted` is not an error callers see: ``ctx.abort()`` raises it inside the
object, as a ``BaseException`` so that the object's own ``except Exception`` cannot swallow
it, and the runtime turns it into a reset.
"""

from __future__ import annotations

import builtins
import functools

from storage import DoboxError


class RemoteError(DoboxError):
    """An event failed inside an object (or could not reach it).

    Attributes, as Durable Objects set them on the error a caller sees:

    - ``remote``: the error happened in the object, not in the caller;
    - ``retryable``: a retry may help (the object was reset, or the runtime restarted it);
    - ``overloaded``: the object had too much queued work: back off, do not retry at once;
    - ``reset``: the object was reset, its in-memory state dropped;
    - ``type_name``: the name of the exception raised in the object;
    - ``object_id``: the hex id of the object, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str,
        remote: bool = True,
        retryable: bool = False,
        overloaded: bool = False,
        reset: bool = False,
        object_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type_name = type_name
        self.remote = remote
        self.retryable = retryable
        self.overloaded = overloaded
        self.reset = reset
        self.object_id = object_id

    def __str__(self) -> str:
        # Builtins such as KeyError would otherwise show the repr of the message.
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # A class made by remote_error_class() cannot be found by name: rebuild it from there.
        cls = type(self)
        mirrored = cls.__name__ == f"Remote{self.type_name}" and cls.__module__ == __name__
        return (_rebuild, (None if mirrored else cls, self.message, self._flags()))

    def _flags(self) -> dict[str, object]:
        return {
            "type_name": self.type_name,
            "remote": self.remote,
            "retryable": self.retryable,
            "overloaded": self.overloaded,
            "reset": self.reset,
            "object_id": self.object_id,
        }


def _rebuild(
    cls: type[RemoteError] | None, message: str, flags: dict[str, object]
) -> RemoteError:
    if cls is None:
        cls = remote_error_class(str(flags["type_name"]))
    return cls(message, **flags)  # type: ignore[arg-type]  # the flags _flags() made


class OverloadedError(RemoteError):
    """The object's queue is full ("Durable Object is overloaded. Too many requests queued.")."""

    def __init__(self, message: str, *, object_id: str | None = None, **_: object) -> None:
        super().__init__(
            message, type_name="OverloadedError", overloaded=True, object_id=object_id
        )


class ObjectResetError(RemoteError):
    """The object was reset while the event was queued, running or waiting for its commit.

    The next event starts a fresh instance from the object's storage, so ``retryable`` is
    set; retry only what is safe to repeat.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str = "ObjectResetError",
        object_id: str | None = None,
        **_: object,
    ) -> None:
        super().__init__(
            message, type_name=type_name, reset=True, retryable=True, object_id=object_id
        )


class InvalidObjectId(DoboxError, ValueError):
    """An object id that is not 64 hex digits, or was made by another namespace."""


class InvalidObjectName(DoboxError, ValueError):
    """An object name that is empty, ``.`` or ``..``, not valid UTF-8 text, or longer than
    ``MAX_NAME_BYTES``."""


class UnknownMethodError(DoboxError, AttributeError):
    """The class has no public ``async def`` of that name that may be called over RPC."""


class InvalidArgumentsError(DoboxError, TypeError):
    """A call's arguments do not fit the RPC method's signature; refused before the object
    runs (nothing is queued or activated)."""


class RuntimeClosedError(DoboxError):
    """The runtime is closing or closed and admits no more events."""


class ObjectAborted(BaseException):
    """Raised by ``ctx.abort()`` inside the object; the runtime resets the object."""


# Builtin exceptions whose instances a remote error may also be, so ``except ValueError``
# works across a call. OSError's family builds itself from errno arguments; leave it out.
_MIRRORED = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, Exception)
    and not issubclass(value, OSError | Warning)
    and value.__module__ == "builtins"
)


@functools.cache
def remote_error_class(type_name: str) -> type[RemoteError]:
    """The class for a remote error whose original was ``type_name``.

    For builtin exceptions it is a subclass of both :class:`RemoteError` and that builtin.
    """
    if type_name not in _MIRRORED:
        return RemoteError
    builtin: type[Exception] = getattr(builtins, type_name)
    return type(f"Remote{type_name}", (RemoteError, builtin), {"__module__": __name__})


def remote_error_for(exc: BaseException, *, object_id: str | None) -> RemoteError:
    """The error a caller sees for ``exc``, raised by a handler in object ``object_id``."""
    type_name = type(exc).__name__
    cls = remote_error_class(type_name)
    return cls(str(exc), type_name=type_name, object_id=object_id)
