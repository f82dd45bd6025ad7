"""Each package's ``__all__`` names exactly its public members (httpx's test, for dobox)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["actors", "runtime", "storage", "harness"])
def test_all_lists_every_public_name(package: str) -> None:
    module = importlib.import_module(package)
    # dir() and getattr(), not vars(): runtime loads its roles' names on first use.
    public = {
        name
        for name in dir(module)
        if not name.startswith("_")
        and getattr(getattr(module, name), "__module__", package) != "__future__"
        and not (isinstance(getattr(module, name), type(module)))
    }
    assert set(module.__all__) == public
