"""dobox in one import: ``from dobox import DurableObject, open_runtime, Client``.

The project's code lives in four packages with generic names, kept as its design fixes
them: ``actors`` (what an object is), ``runtime`` (hosting, serving, the client, the
command line), ``storage`` (an object's database) and ``harness`` (tests). This package
re-exports the public names of the first three, each loaded when first used, as
``runtime`` itself does: ``from dobox import Client`` loads neither the engine nor the
server. ``python -m dobox`` runs the ``dobox`` command line.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from actors import *  # noqa: F403  # the names listed in each package's __all__
    from runtime import *  # noqa: F403
    from storage import *  # noqa: F403

_PACKAGES = ("actors", "runtime", "storage")


def _public_names() -> dict[str, str]:
    """Each public name, and the package it comes from (the first that has it)."""
    owners: dict[str, str] = {}
    for package in _PACKAGES:
        for name in importlib.import_module(package).__all__:
            owners.setdefault(name, package)
    return owners


_OWNERS = _public_names()
__all__ = sorted(_OWNERS)  # pyright: ignore[reportUnsupportedDunderAll]


def __getattr__(name: str) -> object:
    package = _OWNERS.get(name)
    if package is None:
        raise AttributeError(f"module 'dobox' has no attribute {name!r}")
    value = getattr(importlib.import_module(package), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
