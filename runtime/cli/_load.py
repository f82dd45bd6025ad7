"""Finding the objects a command serves: ``package.module:NAME``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from actors import DurableObject


def load_objects(spec: str) -> Mapping[str, type[DurableObject]]:
    """``package.module:NAME`` (or ``path/to/module.py:NAME``) -> the ``{binding: class}``
    mapping it names. Modules are imported from the current directory first, as
    ``uvicorn app:app`` does; a file's own directory is searched first for a file.

    Raises:
        ValueError: the spec is not of that form, or does not name a mapping of classes.
        ImportError: the module cannot be imported.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"objects must be named as package.module:OBJECTS, not {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        file = Path(module_name)
        if file.suffix != ".py" or not file.is_file():
            raise ValueError(f"{module_name} is not a Python file; name the objects as "
                             "package.module:OBJECTS or path/to/module.py:OBJECTS")
        _search_first(file.resolve().parent)  # for the modules it imports beside it
        module = _import_file(file)
    else:
        _search_first(Path.cwd())
        module = importlib.import_module(module_name)
    objects = getattr(module, attribute, None)
    if not isinstance(objects, Mapping) or not all(
        isinstance(cls, type) and issubclass(cls, DurableObject) for cls in objects.values()
    ):
        raise ValueError(f"{spec} is not a dict of binding names to DurableObject classes")
    return objects


def _search_first(directory: Path) -> None:
    """Put ``directory`` first on the import path (the ``dobox`` script's own directory is
    there instead of the current one, unlike ``python -m``)."""
    entry = str(directory)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _import_file(file: Path) -> ModuleType:
    """The module in ``file``, imported under its stem from that very file (an
    ``import_module`` of the stem could return another file's module of the same name)."""
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module  # as an import would: its classes pickle, its
    spec.loader.exec_module(module)  # dataclasses resolve their module
    return module
