from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Storage, open_storage


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "object.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[Storage]:
    """A fresh object database with real fsync, closed after the test."""
    storage = open_storage(db_path)
    try:
        yield storage
    finally:
        storage.close()
