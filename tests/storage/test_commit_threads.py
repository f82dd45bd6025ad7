"""The threads that run durable commits: results and errors come back to the caller, a
cancelled caller waits for its commit, and more commits than threads all finish."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio
import trio.testing

from storage import open_storage
from storage._commit_threads import CommitThreads


async def test_a_commit_runs_in_another_thread_and_its_error_comes_back() -> None:
    threads = CommitThreads(2)
    ran_in: list[threading.Thread] = []
    await threads.run(lambda: ran_in.append(threading.current_thread()))
    assert len(ran_in) == 1
    assert ran_in[0] is not threading.current_thread()

    def fails() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await threads.run(fails)


async def test_a_cancelled_caller_waits_for_its_commit() -> None:
    """A commit cannot stop halfway: the caller's cancellation takes effect after it."""
    threads = CommitThreads(1)
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def commit() -> None:
        started.set()
        release.wait(10)
        finished.append(True)

    scope = trio.CancelScope()
    returned: list[list[bool]] = []  # what had finished when the caller got its answer

    async def caller() -> None:
        with scope:
            await threads.run(commit)
        returned.append(list(finished))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.to_thread.run_sync(started.wait)
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()  # the cancellation was delivered
        assert returned == []  # and the caller still waits
        release.set()
    assert returned == [[True]]


async def test_more_commits_than_threads_all_finish() -> None:
    threads = CommitThreads(2)
    done: list[int] = []
    async with trio.open_nursery() as nursery:
        for number in range(50):
            nursery.start_soon(threads.run, lambda n=number: done.append(n))
    assert sorted(done) == list(range(50))


async def test_a_storage_commit_from_a_thread_lands(tmp_path: Path) -> None:
    """What ``commit_in_thread`` committed is there when the file is opened again."""
    with open_storage(tmp_path / "a.sqlite3") as storage:
        storage.sql.exec("CREATE TABLE t (x)")
        storage.sql.exec("INSERT INTO t VALUES (1)")
        await storage.commit_in_thread()
    with open_storage(tmp_path / "a.sqlite3") as storage:
        assert storage.sql.exec("SELECT x FROM t").one()["x"] == 1
