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
(``type_name``, ``str(error)``); when that derives from a builtin exception such as
``ValueError``, the error the caller sees also subclasses it, so ``except ValueError`` works
across the call.

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
        # A class made by _mirror() cannot be found by name: rebuild it from its builtin.
        cls = type(self)
        mirrored = cls.__module__ == __name__ and cls.__name__.startswith("Remote") and (
            cls not in (RemoteError, OverloadedError, ObjectResetError))
        builtin = _builtin_base(cls) if mirrored else None
        return (_rebuild, (None if mirrored else cls, builtin, self.message, self._flags()))

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
    cls: type[RemoteError] | None, builtin: str | None, message: str, flags: dict[str, object]
) -> RemoteError:
    if cls is None:
        cls = _mirror(builtin) if builtin is not None else RemoteError
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
    set; retry only what is safe to repeat. A reset caused by a damaged file is the
    exception: its ``type_name`` is ``DatabaseCorruptError`` and ``retryable`` is false,
    because a retry meets the same file.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str = "ObjectResetError",
        retryable: bool = True,
        object_id: str | None = None,
        **_: object,
    ) -> None:
        super().__init__(
            message, type_name=type_name, reset=True, retryable=retryable, object_id=object_id
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
    and value is not Exception  # every error is one: no need to say so
    and not issubclass(value, OSError | Warning)
    and value.__module__ == "builtins"
)


def _builtin_base(cls: type[BaseException]) -> str | None:
    """The name of the nearest builtin exception ``cls`` derives from (itself included)
    that a remote error may mirror, or None."""
    for base in cls.__mro__:
        if base.__module__ == "builtins" and base.__name__ in _MIRRORED:
            return base.__name__
    return None


@functools.cache
def _mirror(builtin: str) -> type[RemoteError]:
    """A subclass of both :class:`RemoteError` and the builtin exception named ``builtin``."""
    base: type[Exception] = getattr(builtins, builtin)
    return type(f"Remote{builtin}", (RemoteError, base), {"__module__": __name__})


@functools.cache
def remote_error_class(type_name: str) -> type[RemoteError]:
    """The class for a remote error known only by the name of its original (over HTTP).

    A builtin's name gives a subclass of :class:`RemoteError` and that builtin; so does the
    name of one of dobox's own errors, for the builtin it derives from
    (``UnsupportedValueError`` is a ``TypeError`` on both sides). Any other name gives
    :class:`RemoteError`.
    """
    if type_name in _MIRRORED:
        return _mirror(type_name)
    known = _dobox_errors().get(type_name)
    builtin = _builtin_base(known) if known is not None else None
    return _mirror(builtin) if builtin is not None else RemoteError


def _dobox_errors() -> dict[str, type[DoboxError]]:
    found: dict[str, type[DoboxError]] = {}
    pending: list[type[DoboxError]] = [DoboxError]
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] in ("storage", "actors", "runtime"):
            found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def remote_error_for(exc: BaseException, *, object_id: str | None) -> RemoteError:
    """The error a caller sees for ``exc``, raised by a handler in object ``object_id``:
    it keeps the original's type name and message and, when the original derives from a
    builtin exception (``ValueError``, ``KeyError``, ...), it is also an instance of that
    builtin, so ``except ValueError`` works across the call."""
    builtin = _builtin_base(type(exc))
    cls = _mirror(builtin) if builtin is not None else RemoteError
    return cls(str(exc), type_name=type(exc).__name__, object_id=object_id)
