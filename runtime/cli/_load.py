"""Finding the objects a command serves: ``package.module:NAME``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from actors import DurableObject


def load_objects(spec: str) -> Mapping[str, type[DurableObject]]:
    """``package.module:NAME`` -> the ``{binding: class}`` mapping it names.

    Raises:
        ValueError: the spec is not of that form, or does not name a mapping of classes.
        ImportError: the module cannot be imported.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"objects must be named as package.module:OBJECTS, not {spec!r}")
    objects = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(objects, Mapping) or not all(
        isinstance(cls, type) and issubclass(cls, DurableObject) for cls in objects.values()
    ):
        raise ValueError(f"{spec} is not a dict of binding names to DurableObject classes")
    return objects
