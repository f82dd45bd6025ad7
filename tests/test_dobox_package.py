"""``import dobox``: one import for the public API, loaded lazily, and ``python -m dobox``."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import dobox


def test_every_public_name_of_the_packages_is_there_and_the_same() -> None:
    for package in ("actors", "runtime", "storage"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert name in dobox.__all__
            assert getattr(dobox, name) is getattr(module, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'dobox' has no attribute 'nothing'"):
        dobox.nothing  # noqa: B018


def test_the_client_alone_loads_neither_the_engine_nor_the_server() -> None:
    program = ("import sys\nfrom dobox import Client, DurableObject\n"
               "print(sorted(m for m in ('runtime._engine', 'runtime.server', 'uvicorn') "
               "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_python_m_dobox_runs_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "dobox", "--help"], capture_output=True,
                            text=True, check=True, timeout=60)
    assert "Usage: python -m dobox" in result.stdout
    assert "serve" in result.stdout
