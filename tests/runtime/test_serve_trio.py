"""runtime.serve: the same HTTP app inside a trio program, on hypercorn's trio worker."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from runtime import open_runtime, serve
from tests.helpers import Counter
from tests.runtime.server_objects import OBJECTS


async def test_serve_inside_a_trio_program(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(partial(serve, OBJECTS, tmp_path, port=0))
        async with httpx.AsyncClient(base_url=address) as client:
            answer = await client.post("/default/COUNTER/a/rpc/increment", json={"args": [5]})
            assert answer.json() == {"result": 5}
            failed = await client.post("/default/COUNTER/a/rpc/fail", json={"args": ["x"]})
            assert (failed.status_code, failed.json()["error"]["type"]) == (500, "ValueError")
            fetched = await client.get("/default/WEB/w/p?q=1")
            assert fetched.json()["path"] == "/p"
        nursery.cancel_scope.cancel()  # the runtime drains and commits
    async with open_runtime(tmp_path / "tenants" / "default", objects={"COUNTER": Counter},
                            id_scope="default/") as runtime:
        assert await runtime.namespace("COUNTER").get_by_name("a").value() == 5


async def test_serve_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        await serve(OBJECTS, tmp_path, host="0.0.0.0", port=0)
