"""The floor for the workerd bench's round-robin row: a bare ASGI app, served by the same
uvicorn (httptools, uvloop) as ``dobox serve``, that does what that row asks of dobox with
nothing of dobox in between. ``POST /<anything>/<name>/incr`` reads a counter from the
SQLite file of ``<name>``, writes it back plus one and commits durably (WAL,
``synchronous=FULL``), on a pool of commit threads as dobox does; files stay open, one
per name, as live objects' do. It answers ``{"n": N}``.

    DATA=/tmp/floor python -m uvicorn _round_robin_floor_app:app --port 8790 \\
        --loop uvloop --http httptools --no-access-log

``COMMIT_THREADS`` (default 8) sets the pool; ``0`` commits on the event loop's thread.
``LIVE_FILES`` (default 1000) is how many files stay open; the oldest is closed beyond it.
No request is checked or limited: this is a measuring stick, not a server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor

Message = MutableMapping[str, object]

_DATA = os.environ.get("DATA", "round-robin-floor")
_THREADS = int(os.environ.get("COMMIT_THREADS", "8"))
_LIVE = int(os.environ.get("LIVE_FILES", "1000"))
_executor = ThreadPoolExecutor(_THREADS) if _THREADS else None
_connections: dict[str, sqlite3.Connection] = {}
_locks: dict[sqlite3.Connection, threading.Lock] = {}


def _connection(name: str) -> sqlite3.Connection:
    connection = _connections.get(name)
    if connection is None:
        os.makedirs(_DATA, exist_ok=True)
        connection = sqlite3.connect(os.path.join(_DATA, name + ".sqlite"),
                                     isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v INTEGER)")
        _connections[name] = connection
        _locks[connection] = threading.Lock()
        if len(_connections) > _LIVE:
            # Let the oldest file go, as dobox lets an idle object's go (a long run would
            # otherwise run out of file descriptors).
            _close(_connections.pop(next(iter(_connections))))
    return connection


def _close(connection: sqlite3.Connection) -> None:
    with _locks.pop(connection):
        connection.close()


def _increment(connection: sqlite3.Connection) -> int:
    # Two requests for one name rarely meet in a round robin, but they may.
    with _locks[connection]:
        connection.execute("BEGIN IMMEDIATE")
        row = connection.execute("SELECT v FROM kv WHERE k = 'n'").fetchone()
        n = (row[0] if row else 0) + 1
        connection.execute("INSERT OR REPLACE INTO kv(k, v) VALUES ('n', ?)", (n,))
        connection.execute("COMMIT")
        return n


async def app(scope: Message, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    name = str(scope["path"]).rstrip("/").split("/")[-2]
    connection = _connection(name)
    if _executor is None:
        n = _increment(connection)
    else:
        n = await asyncio.get_running_loop().run_in_executor(_executor, _increment, connection)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"n": n}).encode()})
