"""dobox serve: the real server (uvicorn, the runtime as trio's guest) on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from harness import ServerProcess, open_server_process

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as running:
        yield running


async def rpc(server: ServerProcess, path: str, body: object = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        return await client.post(path, json={"args": [], "kwargs": {}} if body is None
                                  else body, headers=headers)


async def test_rpc_calls_and_durable_state(server: ServerProcess) -> None:
    answer = await rpc(server, "/default/COUNTER/a/rpc/increment", {"args": [2]})
    assert (answer.status_code, answer.json()) == (200, {"result": 2})
    assert (await rpc(server, "/default/COUNTER/a/rpc/increment")).json() == {"result": 3}
    echoed = await rpc(server, "/default/COUNTER/a/rpc/echo", {"args": [[1, "x"]]})
    assert echoed.json() == {"result": [1, "x"]}
    assert await server.terminate() == 0  # SIGTERM: drained, committed, exit 0
    await server.restart()
    assert (await rpc(server, "/default/COUNTER/a/rpc/value")).json() == {"result": 3}


@pytest.mark.parametrize(
    ("path", "body", "status", "error_type"),
    [
        pytest.param("/default/NOPE/a/rpc/increment", None, 404, "NotFound", id="namespace"),
        pytest.param("/other/COUNTER/a/rpc/increment", None, 404, "NotFound", id="tenant"),
        pytest.param("/default/COUNTER/a/rpc/nope", None, 404, "UnknownMethodError",
                     id="method"),
        pytest.param("/default/COUNTER/a/rpc/fail", {"args": ["no good"]}, 500, "ValueError",
                     id="remote-error"),
        pytest.param("/default/COUNTER/a/rpc/increment", {"args": "x"}, 400, "MalformedJSON",
                     id="args-not-a-list"),
        pytest.param("/default/COUNTER/a/rpc/increment", [1], 400, "MalformedJSON",
                     id="body-not-an-object"),
        pytest.param("/default", None, 404, "NotFound", id="short-path"),
    ],
)
async def test_errors_are_json_with_fitting_statuses(
    server: ServerProcess, path: str, body: object, status: int, error_type: str
) -> None:
    answer = await rpc(server, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == error_type
    assert set(error) == {"type", "message", "remote", "retryable", "overloaded", "reset"}
    assert error["remote"] is (status == 500)


async def test_malformed_json_and_oversized_bodies(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.post("/default/COUNTER/a/rpc/increment", content=b"{nope")
        assert (answer.status_code, answer.json()["error"]["type"]) == (400, "MalformedJSON")
        answer = await client.post("/default/COUNTER/a/rpc/increment", content=b"x" * (2 << 20))
        assert answer.status_code == 413
    # Nothing was activated or written by the refused requests.
    assert (await rpc(server, "/default/COUNTER/a/rpc/value")).json() == {"result": 0}


async def test_fetch_forwarding_keeps_path_query_headers_and_body(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.put("/default/WEB/lobby/a/b?x=1", content=b"hello",
                                  headers={"x-test": "yes"})
    assert answer.status_code == 201
    assert answer.json() == {"method": "PUT", "path": "/a/b", "query": "x=1",
                             "header": "yes", "body": "hello"}


async def test_tenants_and_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "s3cret-acme"\n'
                      '[tenants.globex]\ntoken = "s3cret-globex"\n')
    data = tmp_path / "data"
    async with open_server_process(data, OBJECTS, cwd=ROOT, tokens=tokens) as server:
        acme = {"authorization": "Bearer s3cret-acme"}
        globex = {"authorization": "Bearer s3cret-globex"}
        path = "/acme/COUNTER/shared-name/rpc/increment"
        assert (await rpc(server, path, headers=acme)).json() == {"result": 1}
        same_name = await rpc(server, "/globex/COUNTER/shared-name/rpc/increment",
                              headers=globex)
        assert same_name.json() == {"result": 1}  # same name, another tenant's object
        assert (await rpc(server, path)).status_code == 401
        assert (await rpc(server, path, headers=globex)).status_code == 403
        wrong = {"authorization": "Bearer wrong"}
        assert (await rpc(server, path, headers=wrong)).status_code == 403
        for sneaky in ("/acme%2F..%2Fglobex/COUNTER/x/rpc/value",
                       "/../globex/COUNTER/x/rpc/value",
                       "/" + "a" * 300 + "/COUNTER/x/rpc/value"):
            assert (await rpc(server, sneaky, headers=acme)).status_code in (403, 404)
        assert (await rpc(server, path, headers=acme)).json() == {"result": 2}
    # Refused requests created nothing: only the two tenants have directories.
    assert sorted(p.name for p in (data / "tenants").iterdir()) == ["acme", "globex"]


async def test_metrics_in_prometheus_text_format(server: ServerProcess) -> None:
    for _ in range(3):
        await rpc(server, "/default/COUNTER/a/rpc/increment")
    await rpc(server, "/default/COUNTER/a/rpc/fail", {"args": ["x"]})
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        text = (await client.get("/metrics")).text
    assert 'dobox_requests_total{route="rpc",status="200"} 3.0' in text
    assert 'dobox_requests_total{route="rpc",status="500"} 1.0' in text
    assert 'dobox_errors_total{type="ValueError"} 1.0' in text
    assert 'dobox_live_objects{tenant="default"} 1.0' in text
    assert 'dobox_activations_total{tenant="default"} 1.0' in text
    assert 'dobox_commit_seconds_count{tenant="default"} 3.0' in text


async def test_sigterm_lets_in_flight_requests_finish(server: ServerProcess) -> None:
    """SIGTERM while a call is running and a write waits behind it: both are answered,
    the write is durable, and the server exits 0; nothing new is admitted meanwhile."""
    answers: dict[str, httpx.Response] = {}

    async def call(label: str, path: str, body: object) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            answers[label] = await client.post(path, json=body)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "slow", "/default/COUNTER/a/rpc/sleep", {"args": [1.5]})
        nursery.start_soon(call, "write", "/default/COUNTER/a/rpc/increment", {"args": [5]})
        with trio.fail_after(20):  # until the server holds both (its state, not a timer)
            async with httpx.AsyncClient(base_url=server.base_url) as probe:
                while 'dobox_queued_events{tenant="default"} 2.0' not in (  # noqa: ASYNC110
                        await probe.get("/metrics")).text:
                    await trio.sleep(0.01)
        assert await server.terminate() == 0
    assert answers["slow"].status_code == 200
    assert answers["write"].json() == {"result": 5}
    await server.restart()
    assert (await rpc(server, "/default/COUNTER/a/rpc/value")).json() == {"result": 5}


async def test_timeouts_overload_and_resets_answer_with_their_statuses(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT, options=[
            "--request-timeout", "1", "--max-queued", "1"]) as server:
        slow = await rpc(server, "/default/COUNTER/slow/rpc/sleep", {"args": [3]})
        assert slow.status_code == 504
        assert slow.json()["error"]["type"] == "Timeout"
        answers: dict[str, httpx.Response] = {}

        async def call(label: str, path: str, body: object) -> None:
            answers[label] = await rpc(server, path, body)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "busy", "/default/COUNTER/busy/rpc/sleep", {"args": [0.5]})
            with trio.fail_after(20):  # until the object holds the call (its state)
                async with httpx.AsyncClient(base_url=server.base_url) as probe:
                    while 'dobox_queued_events{tenant="default"} 1.0' not in (  # noqa: ASYNC110
                            await probe.get("/metrics")).text:
                        await trio.sleep(0.01)
            await call("refused", "/default/COUNTER/busy/rpc/value", None)
        refused = answers["refused"]
        assert (refused.status_code, refused.headers["retry-after"]) == (503, "1")
        assert refused.json()["error"]["overloaded"] is True
        assert answers["busy"].status_code == 200
        reset = await rpc(server, "/default/COUNTER/r/rpc/abort")
        assert reset.status_code == 503
        error = reset.json()["error"]
        assert (error["type"], error["reset"], error["retryable"]) == (
            "ObjectResetError", True, True)
