"""Live queries over the real server's WebSocket with the Python client: a snapshot, a
change per committed call, and a resume after a SIGKILL of the server that misses no change
and repeats none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import open_server_process
from runtime import Client, LiveQueryError, WebSocketClosed
from storage import field

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"


async def test_a_live_query_survives_a_server_kill(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as server, \
            Client(server.base_url) as client:
        board = client.namespace("BOARD").get_by_name("team")
        await board.add(1, "first", True)
        async with board.subscribe("notes", field("pinned") == True,  # noqa: E712
                                   order_by="id") as feed:
            snapshot = await feed.__anext__()
            assert snapshot == {"type": "snapshot", "row_version": 1, "resync": False,
                                "records": [{"id": 1, "text": "first", "pinned": True}]}
            await board.add(2, "second", True)
            await board.add(3, "unpinned", False)  # outside the subset
            change = await feed.__anext__()
            assert (change["type"], change["inserted"]) == (
                "change", [{"id": 2, "text": "second", "pinned": True}])

            server.kill()
            await server.restart()
            await board.add(4, "after the kill", True)
            assert await board.remove(1) is True

            seen: list[dict[str, Any]] = []
            present = {1, 2}
            while present != {2, 4}:
                message = await feed.__anext__()
                assert message["type"] == "change"  # resumed, not reloaded
                seen.append(message)
                present |= {r["id"] for r in message["inserted"] + message["updated"]}
                present -= set(message["removed"])
            written = [r["id"] for m in seen for r in m["inserted"] + m["updated"]]
            assert written == [4]  # nothing from before the kill came again
            # A resume lists every changed key no longer in the subset: 3 changed while
            # the connection was down, and was never in it (removing it is a no-op).
            assert sorted(k for m in seen for k in m["removed"]) == [1, 3]


async def test_an_unknown_collection_is_refused(tmp_path: Path) -> None:
    """A collection name from the wire is looked up among the class's declared collections
    only: attributes of the class or of the storage are not collections."""
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as server, \
            Client(server.base_url) as client:
        board = client.namespace("BOARD").get_by_name("team")
        for name in ("nope", "__class__", "__init__", "add", "ctx", "_dobox_collections"):
            with pytest.raises(LiveQueryError, match=f"declares no collection '{name}'"):
                async with board.subscribe(name) as feed:
                    await feed.__anext__()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("not json", "the first message must be the query as JSON", id="json"),
        pytest.param('{"where": ["cmp", "a", "DROP", 1]}', "not a condition", id="where"),
        pytest.param('{"limit": "10"}', '"limit" is an int or null', id="limit"),
        pytest.param('{"order_by": [1]}', '"order_by" is a list of field names', id="order"),
    ],
)
async def test_a_malformed_query_is_refused(tmp_path: Path, query: str, message: str) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as server, \
            Client(server.base_url) as client:
        board = client.namespace("BOARD").get_by_name("team")
        async with board.websocket("/subscribe/notes") as ws:
            await ws.send(query)
            answer = json.loads(await ws.receive())
            assert answer["type"] == "error"
            assert message in answer["message"]
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1008
        assert not (tmp_path / "tenants" / "default" / "BOARD").exists()  # nothing activated
