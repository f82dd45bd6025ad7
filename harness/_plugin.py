"""dobox's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures, so that an application's tests need no set-up code:

- ``dobox_objects``: override it to return ``{BINDING: cls}`` for your objects;
- ``dobox_runtime_options``: override it to pass runtime options (default: none beyond the
  harness's test defaults);
- ``dobox_runtime``: a :class:`harness.TestRuntime` on the test's ``tmp_path``, closed after
  the test.
- ``dobox_objects_spec``: override it to return ``"package.module:OBJECTS"``, the same
  objects importable by name, for ``dobox_server``;
- ``dobox_server``: a :class:`harness.ServerProcess` (a real subprocess) over
  ``tmp_path / "dobox-server"``, to call, SIGKILL and restart; terminated after the test.

An ``async def`` test that uses ``dobox_runtime`` or ``dobox_server`` runs under trio
(pytest-trio's ``trio`` marker is added to it), so a project needs no ``trio_mode = true``
for them; its other async tests need that setting or the marker, as pytest-trio says.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from actors import DurableObject
from runtime import RuntimeSettings

from ._server import ServerProcess, open_server_process
from ._test_runtime import TestRuntime, open_test_runtime


@pytest.fixture
def dobox_objects() -> Mapping[str, type[DurableObject]]:
    """The objects ``dobox_runtime`` hosts: override this fixture in your conftest.py."""
    raise pytest.UsageError(
        "dobox_runtime needs your objects: define a fixture named dobox_objects that "
        "returns {BINDING: DurableObjectSubclass}"
    )


@pytest.fixture
def dobox_runtime_options() -> RuntimeSettings:
    """Options for ``dobox_runtime`` (see runtime.open_runtime); override to change them."""
    return {}


@pytest.fixture
async def dobox_runtime(
    tmp_path: Path,
    dobox_objects: Mapping[str, type[DurableObject]],
    dobox_runtime_options: RuntimeSettings,
) -> AsyncIterator[TestRuntime]:
    """A test runtime over ``tmp_path / "dobox"``, with the harness's levers."""
    async with open_test_runtime(tmp_path / "dobox", dobox_objects,
                                 **dobox_runtime_options) as runtime:
        yield runtime


@pytest.fixture
def dobox_objects_spec() -> str:
    """``"package.module:OBJECTS"`` for ``dobox_server``: override this fixture."""
    raise pytest.UsageError(
        "dobox_server needs your objects by name: define a fixture named dobox_objects_spec "
        "that returns 'package.module:OBJECTS' (importable from the current directory)"
    )


@pytest.fixture
async def dobox_server(tmp_path: Path, dobox_objects_spec: str) -> AsyncIterator[ServerProcess]:
    """A server process over ``tmp_path / "dobox-server"``, started from the current
    directory (so ``dobox_objects_spec`` is importable)."""
    async with open_server_process(tmp_path / "dobox-server", dobox_objects_spec,
                                   cwd=Path.cwd()) as server:
        yield server


_TRIO_FIXTURES = frozenset({"dobox_runtime", "dobox_server"})


@pytest.hookimpl(tryfirst=True)  # before pytest-trio reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the async tests that use dobox's async fixtures as trio tests (see above)."""
    for item in items:
        if (isinstance(item, pytest.Function) and item.get_closest_marker("trio") is None
                and _TRIO_FIXTURES.intersection(item.fixturenames)
                and inspect.iscoroutinefunction(item.obj)):
            item.add_marker(pytest.mark.trio)
