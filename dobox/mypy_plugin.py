"""dobox's mypy plugin: stubs of a typed namespace type-check as their object's methods.

Enable it in your mypy configuration (``plugins = ["dobox.mypy_plugin"]``). Then, for a
namespace made with its class, ``counters = rt.namespace("COUNTER", Counter)``:

- ``await counters.get_by_name("a").increment(2)`` has ``Counter.increment``'s signature
  and result type;
- a name that is not one of ``Counter``'s RPC methods (its public ``async def`` methods,
  less the handlers) is an error, as the call would be at run time.

A stub's own attributes (``id``, ``name``, ``call``, ``fetch``...) are unaffected, and a
namespace made without its class (``rt.namespace("COUNTER")``) keeps unchecked stubs, as
without the plugin. Nothing changes at run time: this only tells mypy what ``Stub``'s
``__getattr__`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import Decorator, FuncDef, MemberExpr, OverloadedFuncDef
from mypy.plugin import AttributeContext, Plugin
from mypy.typeops import bind_self
from mypy.types import AnyType, CallableType, Instance, Type, TypeOfAny, get_proper_type

from actors import HANDLER_NAMES

STUB = "runtime._engine._namespace.Stub"


class DoboxPlugin(Plugin):
    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        # mypy asks for "Stub.<name>" when a name reaches Stub.__getattr__.
        if fullname.startswith(STUB + ".") and fullname.count(".") == STUB.count(".") + 1:
            return _rpc_method
        return None


def _rpc_method(ctx: AttributeContext) -> Type:
    """The type of ``stub.<name>``: the object class's method, bound; or an error."""
    stub = get_proper_type(ctx.type)
    if not isinstance(stub, Instance) or not stub.args or not isinstance(ctx.context,
                                                                         MemberExpr):
        return ctx.default_attr_type
    if stub.type.has_readable_member(ctx.context.name):
        return ctx.default_attr_type  # the stub's own (id, name, call...): mypy asks for all
    target = get_proper_type(stub.args[0])
    if not isinstance(target, Instance) or target.type.fullname == "actors._object.DurableObject":
        return ctx.default_attr_type  # a namespace made without its class: unchecked
    name = ctx.context.name
    symbol = target.type.get(name)
    node = symbol.node if symbol is not None else None
    if isinstance(node, Decorator | OverloadedFuncDef):
        return ctx.default_attr_type  # what a decorator makes of it is the decorator's to say
    if (isinstance(node, FuncDef) and node.is_coroutine and not name.startswith("_")
            and name not in HANDLER_NAMES):
        signature = get_proper_type(node.type)
        if isinstance(signature, CallableType):
            if node.is_static:
                return signature
            return bind_self(signature, target, is_classmethod=node.is_class)
        return ctx.default_attr_type  # not annotated: nothing to check against
    why = ("a plain def, not async" if isinstance(node, FuncDef)
           else "private" if name.startswith("_")
           else "a handler the runtime calls" if name in HANDLER_NAMES
           else "not a method of it")
    ctx.api.fail(f'"{target.type.name}" has no RPC method "{name}" ({why})', ctx.context)
    return AnyType(TypeOfAny.from_error)


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return DoboxPlugin
