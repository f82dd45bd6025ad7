"""The threads that run durable commits for trio.

A durable commit blocks its thread in fsync, so the runtime sends it to a worker thread
while other objects run. ``trio.to_thread.run_sync`` does that in general: a capacity
limiter, a thread per concurrent call, a copied context, a way for the thread to call back
into trio. A commit needs none of it, and over 1,000 objects, where each write is its own
commit, that machinery cost the runtime's thread about 50 µs a commit and a third of the
throughput (bench/RESULTS.md, 2026-12-05). Here a commit is a job on one queue, taken by
a few long-lived threads, and its outcome goes back with one ``run_sync_soon`` that
reschedules the waiting task.

Like ``trio.to_thread.run_sync`` without ``abandon_on_cancel``, a commit cannot be
abandoned: a cancelled caller waits for it to finish (its writes are on disk or rolled
back, never in between).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import outcome
import trio

COMMIT_THREADS = 8
"""How many commits run at once. Measured on the development machine, 4 to 16 threads gave
the same rate over 1,000 objects; fsyncs of different files overlap in the device."""

_Job = tuple[Callable[[], None], trio.lowlevel.TrioToken, trio.lowlevel.Task]


class CommitThreads:
    """A fixed set of daemon threads, started on first use, shared by every trio run of
    the process (a job carries its run's token)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._started = False
        self._start_lock = threading.Lock()

    async def run(self, commit: Callable[[], None]) -> None:
        """Run ``commit()`` in one of the threads and return (or raise) what it did."""
        if not self._started:
            self._start()
        self._jobs.put((commit, trio.lowlevel.current_trio_token(),
                        trio.lowlevel.current_task()))
        await trio.lowlevel.wait_task_rescheduled(_cannot_abandon)

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            for number in range(self.size):
                threading.Thread(target=self._work, name=f"dobox commit {number + 1}",
                                 daemon=True).start()
            self._started = True

    def _work(self) -> None:
        while True:
            commit, token, task = self._jobs.get()
            result = outcome.capture(commit)
            # The waiting task cannot leave (see _cannot_abandon), so its run is still
            # going and accepts this callback.
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)


def _cannot_abandon(raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


commit_threads = CommitThreads(COMMIT_THREADS)
"""The process's commit threads."""
