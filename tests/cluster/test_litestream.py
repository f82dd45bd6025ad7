"""The node's Litestream daemon, alone (the replica tests use it through nodes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio._core._thread_cache

from runtime.cluster import Litestream


async def test_the_daemon_outlives_trios_idle_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux signals the daemon when the thread that started it exits. Started from one of
    trio's worker threads, it died when that thread went idle (10 s): here they go idle
    after 50 ms, and the daemon must still register and sync a file after that."""
    monkeypatch.setattr(trio._core._thread_cache, "IDLE_TIMEOUT", 0.05)
    database = tmp_path / "object.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")
    connection.close()
    litestream = Litestream()
    async with trio.open_nursery() as nursery:
        await nursery.start(litestream.run)
        await trio.sleep(0.5)  # real time: the OS threads' idle timeout is not trio's clock
        await litestream.register(database, (tmp_path / "replica").as_uri())
        assert await litestream.sync(database) >= 1
        await litestream.unregister(database)
        nursery.cancel_scope.cancel()
    restored = tmp_path / "restored.sqlite"
    assert await litestream.restore((tmp_path / "replica").as_uri(), restored)
    with sqlite3.connect(restored) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
    connection.close()
