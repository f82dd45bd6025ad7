"""The RPC method table of an object class: the only way a call's method name selects code.

A name that reaches an object (from a stub, or from the network through the server) is
looked up in this table, built once per class from the class's own public ``async def``
methods; nothing calls ``getattr`` with it. Arguments are checked against the method's
signature before the call is queued, so a call that does not fit is the caller's error
(:class:`~actors.InvalidArgumentsError`) and the object never runs it.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

import attrs

from ._errors import InvalidArgumentsError, UnknownMethodError

if TYPE_CHECKING:
    from ._object import DurableObject

HANDLER_NAMES = frozenset(
    {
        "fetch",
        "alarm",
        "on_start",
        "sync",
        "websocket_message",
        "websocket_close",
        "websocket_error",
    }
)
"""Methods the runtime calls itself; they cannot be called over RPC."""

AnyMethod: TypeAlias = Callable[..., Awaitable[object]]  # type: ignore[explicit-any]  # any RPC signature

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@attrs.frozen
class RpcMethod:
    """One RPC method: ``invoke(instance, args, kwargs)`` runs it on an instance."""

    name: str
    qualname: str
    """``Class.method``, for messages."""
    function: AnyMethod
    takes_instance: bool
    """False for static and class methods, whose function is already complete."""
    signature: inspect.Signature
    """Without ``self``: what a caller passes."""
    min_positional: int
    max_positional: int | None
    """None when the method takes ``*args``."""
    keyword_free: bool
    """No keyword-only parameter is required, so a positional-only call may skip ``bind``."""

    def check_arguments(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
        """Raises:
        InvalidArgumentsError: the arguments do not bind to the signature.
        """
        if (not kwargs and self.keyword_free and len(args) >= self.min_positional
                and (self.max_positional is None or len(args) <= self.max_positional)):
            return  # the common case, without the cost of Signature.bind (about 2 us)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentsError(
                f"{self.qualname}{_shown(self.signature)} cannot take these arguments: {exc}"
            ) from None

    def invoke(self, instance: DurableObject, args: tuple[object, ...],
               kwargs: Mapping[str, object]) -> Awaitable[object]:
        if self.takes_instance:
            return self.function(instance, *args, **kwargs)
        return self.function(*args, **kwargs)


_tables: weakref.WeakKeyDictionary[type[DurableObject], Mapping[str, RpcMethod]]
_tables = weakref.WeakKeyDictionary()


def rpc_methods(cls: type[DurableObject]) -> Mapping[str, RpcMethod]:
    """The methods a stub may call, by name: public coroutine functions, less the handlers.

    A method whose name is also a stub attribute (``id``, ``name``, ``call``,
    ``subscribe``, ``websocket``) is in the table as any other: the server reaches it, and
    in process ``stub.call(name, ...)`` does.
    """
    table = _tables.get(cls)
    if table is None:
        _tables[cls] = table = {
            name: _method(cls, name, value)
            for name, value in inspect.getmembers(cls)
            if not name.startswith("_") and name not in HANDLER_NAMES
            and inspect.iscoroutinefunction(value)
        }
    return table


class PlainMethodWarning(UserWarning):
    """A bound class has a public plain ``def``: callers cannot call it, since RPC methods
    are ``async def``. Issued when a runtime binds the class."""


_plain: weakref.WeakKeyDictionary[type[DurableObject], frozenset[str]]
_plain = weakref.WeakKeyDictionary()


def plain_methods(cls: type[DurableObject]) -> frozenset[str]:
    """The public plain (not ``async``) functions ``cls`` adds to ``DurableObject``: not RPC
    methods, though a caller may expect them to be (the runtime warns when it binds the
    class, and a call names the cause)."""
    names = _plain.get(cls)
    if names is None:
        from ._object import DurableObject  # the object module imports this one

        inherited = set(dir(DurableObject))
        _plain[cls] = names = frozenset(
            name for name, value in inspect.getmembers(cls)
            if not name.startswith("_") and name not in HANDLER_NAMES
            and name not in inherited
            and inspect.isfunction(value) and not inspect.iscoroutinefunction(value)
        )
    return names


def rpc_method(cls: type[DurableObject], name: str) -> RpcMethod:
    """The RPC method ``name`` of ``cls``.

    Raises:
        UnknownMethodError: no such method, or a private, dunder or handler name.
    """
    try:
        return rpc_methods(cls)[name]
    except KeyError:
        if name in plain_methods(cls):
            raise UnknownMethodError(
                f"{cls.__qualname__}.{name} is a plain def, and RPC methods are async def: "
                f"make it async to call it (or name it _{name} if it is a helper)"
            ) from None
        public = ", ".join(sorted(rpc_methods(cls))) or "none"
        raise UnknownMethodError(
            f"{cls.__qualname__} has no RPC method {name[:100]!r}: RPC methods are its public "
            f"async methods other than the handlers (it has: {public})"
        ) from None


def _method(cls: type[DurableObject], name: str, value: AnyMethod) -> RpcMethod:
    static = isinstance(inspect.getattr_static(cls, name), staticmethod | classmethod)
    signature = inspect.signature(value)
    parameters = list(signature.parameters.values())
    if not static and parameters and parameters[0].kind in _POSITIONAL:
        parameters = parameters[1:]  # self
    signature = signature.replace(parameters=parameters)
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    return RpcMethod(
        name=name,
        qualname=f"{cls.__qualname__}.{name}",
        function=value,
        takes_instance=not static,
        signature=signature,
        min_positional=sum(p.default is p.empty for p in positional),
        max_positional=(None if any(p.kind is p.VAR_POSITIONAL for p in parameters)
                        else len(positional)),
        keyword_free=not any(p.kind is p.KEYWORD_ONLY and p.default is p.empty
                             for p in parameters),
    )


def _shown(signature: inspect.Signature) -> str:
    """The signature as the caller sees it: ``(by: int = 1)``, without the return annotation
    and without quotes around annotations that are strings (``from __future__ import
    annotations``)."""
    parameters = [
        p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    return str(signature.replace(parameters=parameters,
                                 return_annotation=inspect.Signature.empty))


class _Annotation(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)
