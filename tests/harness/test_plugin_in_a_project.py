"""The pytest plugin in a user's project, which has no ``trio_mode = true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = '''
import pytest
from dobox import DurableObject

class Counter(DurableObject):
    async def increment(self) -> int:
        n = await self.ctx.storage.get("n", 0) + 1
        await self.ctx.storage.put("n", n)
        return n

@pytest.fixture
def dobox_objects():
    return {"COUNTER": Counter}
'''

TESTS = '''
async def test_counts(dobox_runtime):
    counter = dobox_runtime.namespace("COUNTER").get_by_name("a")
    assert await counter.increment() == 1
    await dobox_runtime.restart()
    assert await counter.increment() == 2
'''


def test_async_tests_using_the_fixtures_run_without_trio_mode(tmp_path: Path) -> None:
    """Before: pytest's "async def functions are not natively supported" (skipped, then a
    failure), unless the project had set trio_mode."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's project: no trio_mode
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_counter.py").write_text(TESTS)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
