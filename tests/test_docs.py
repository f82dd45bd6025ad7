"""Every public name is documented, and the docs' examples run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import actors
import harness
import runtime
import storage

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize(
    ("package", "page"),
    [(storage, "reference/storage.md"), (actors, "reference/actors.md"),
     (runtime, "reference/runtime.md"), (harness, "testing.md")],
    ids=["storage", "actors", "runtime", "harness"],
)
def test_every_public_name_is_in_its_reference(package: object, page: str) -> None:
    reference = (DOCS / page).read_text()
    missing = [name for name in package.__all__  # type: ignore[attr-defined]
               if not re.search(rf"`[^`]*\b{name}\b[^`]*`", reference)]
    assert missing == []


@pytest.mark.parametrize("page", ["how-to/schema-changes.md"])
def test_python_examples_run(page: str, tmp_path: Path) -> None:
    """The page's Python blocks, run in order as one program, on a file made for it."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    setup = (
        "from storage import open_storage\n"
        "with open_storage('copy-of-room.sqlite') as s:\n"
        "    s.apply_schema(1, policy='throw')\n"
        "    s.sql.exec('CREATE TABLE messages (text TEXT)')\n"
        "    s.kv.put('title', 'lobby')\n"
    )
    program = setup + "\n".join(blocks)
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    check = subprocess.run(
        [sys.executable, "-c",
         "from storage import open_storage\n"
         "with open_storage('copy-of-room.sqlite') as s:\n"
         "    print(s.metadata.schema_version, s.kv.list())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )
    assert check.stdout.strip() == "3 {'name': 'lobby'}"


def test_the_testing_guide_runs_as_written(tmp_path: Path) -> None:
    """docs/testing.md's two files, saved as they are, pass under pytest."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "testing.md").read_text(), re.DOTALL)
    application, tests = blocks
    (tmp_path / "counter.py").write_text(application)
    (tmp_path / "test_counter.py").write_text(tests)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-o", "trio_mode=true", "-p", "no:cacheprovider",
         "test_counter.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
