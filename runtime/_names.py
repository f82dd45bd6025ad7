"""The rules for the names that make up a server path, shared by the server and the client.

``/{tenant}/{namespace}/{name}/...``: a tenant is 1 to 64 letters, digits, ``_`` or ``-``; a
namespace is a binding name (a Python identifier); an object name follows
:func:`actors._ids.check_name`. The client refuses to build a path the server would refuse.
"""

from __future__ import annotations

import re

import httpx

from actors._ids import check_name

TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")

SERVED_BY = "dobox-node"
"""On an answer of a cluster node: the address (``--advertise``) of the node that served the
object, so that a client given every node can send that object's next calls there."""


RESERVED_TENANT = "_dobox"
"""Not a tenant: ``/_dobox/`` is the server's own (the inspector's pages)."""


def check_tenant(tenant: str) -> str:
    """Raises: ValueError, for a tenant name outside the rule above, or the reserved one."""
    if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
        raise ValueError(f"tenant {tenant!r:.80} is not a tenant name: 1 to 64 letters, "
                         "digits, '_' or '-'")
    if tenant == RESERVED_TENANT:
        raise ValueError(f"{RESERVED_TENANT!r} is reserved for the server's own pages, not "
                         "a tenant name")
    return tenant


def object_path(tenant: str, binding: str, name: str) -> str:
    """``/{tenant}/{binding}/{name}``, the name percent-encoded (a ``/`` in it too).

    Raises:
        ValueError: an invalid tenant or binding; InvalidObjectName: an invalid name.
    """
    if not binding.isidentifier():
        raise ValueError(f"namespace {binding!r:.80} is not a binding name (an identifier)")
    check_name(name)
    return f"/{check_tenant(tenant)}/{binding}/{quote_segment(name)}"


def quote_segment(text: str) -> str:
    """``text`` as one percent-encoded path segment.

    Raises:
        ValueError: ``text`` is empty, ``.`` or ``..``.
    """
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment")
    return httpx.URL("/" + text).raw_path.decode()[1:].replace("/", "%2F").replace("?", "%3F")
