"""dobox serve: the real server (uvicorn, the runtime as trio's guest) on a loopback port."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from actors._ids import id_from_name, namespace_key
from harness import ServerProcess, open_server_process
from runtime._engine import ALARM_INDEX_NAME
from runtime.cli import main
from tests.helpers import damage_table, fill_disk, immutable, small_filesystem

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
        pytest.param("/default/__class__/a/rpc/increment", None, 404, "NotFound",
                     id="namespace-dunder"),
        pytest.param("/default/objects/a/rpc/increment", None, 404, "NotFound",
                     id="namespace-app-attribute"),
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


async def test_rpc_by_another_method_than_post_says_rpc_takes_post(
    server: ServerProcess
) -> None:
    """An object without fetch() answers .../rpc/<method> only to POST, and says so; one
    with fetch() gets the request, as any other path of its own."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.get("/default/COUNTER/a/rpc/increment")
        forwarded = await client.get("/default/WEB/a/rpc/increment")
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
    error = answer.json()["error"]
    assert error["type"] == "MethodNotAllowed"
    assert error["message"].startswith("RPC takes POST, not GET: POST .../rpc/increment")
    assert (forwarded.status_code, forwarded.json()["path"]) == (201, "/rpc/increment")


STUB_INTERNALS = ["__init__", "__setattr__", "__delattr__", "__init_subclass__",
                  "__getattribute__", "__class__", "__reduce__", "__aenter__", "_namespace",
                  "fetch", "websocket", "_secret", "alarm", "on_start", "ctx", "env", "nope"]


async def test_rpc_reaches_only_the_method_table(server: ServerProcess, tmp_path: Path) -> None:
    """No attribute of a Python object is callable from the wire: only the class's RPC
    methods, by the namespace's table; everything else is a 404 that activates nothing."""
    for method in STUB_INTERNALS:
        answer = await rpc(server, f"/default/GUARDED/g/rpc/{method}",
                           {"args": ["_namespace"], "kwargs": {}})
        assert answer.status_code == 404, (method, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "UnknownMethodError"
        assert error["message"].startswith(f"Guarded has no RPC method {method!r}")
        assert error["message"].endswith("(it has: add, anything, call, id, name, subscribe)")
    assert not (tmp_path / "tenants" / "default" / "GUARDED").exists()  # nothing activated
    for method, args, result in [("name", [], "the name method"), ("id", [], "the id method"),
                                 ("subscribe", ["news"], "subscribed to news"),
                                 ("call", ["555"], "calling 555")]:
        answer = await rpc(server, f"/default/GUARDED/g/rpc/{method}", {"args": args})
        assert answer.json() == {"result": result}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"args": []}, "missing a required argument: 'a'", id="too-few"),
        pytest.param({"args": [1, 2, 3]}, "too many positional arguments", id="too-many"),
        pytest.param({"args": [1], "kwargs": {"c": 1}}, "unexpected keyword argument 'c'",
                     id="unknown-keyword"),
        pytest.param({"args": [1], "kwargs": {"self": 1}}, "unexpected keyword argument",
                     id="self"),
    ],
)
async def test_arguments_that_do_not_fit_are_the_callers_error(
    server: ServerProcess, tmp_path: Path, body: object, message: str
) -> None:
    answer = await rpc(server, "/default/GUARDED/g/rpc/add", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "InvalidArgumentsError"
    assert error["message"].startswith(
        "Guarded.add(a: int, b: int = 0, *, scale: int = 1) cannot take")
    assert message in error["message"]
    assert not (tmp_path / "tenants" / "default" / "GUARDED").exists()  # checked, not run
    assert (await rpc(server, "/default/GUARDED/g/rpc/add", {"args": [1, 2]})).json() == {
        "result": 3}


async def raw_request(server: ServerProcess, target: str) -> tuple[int, dict[str, object]]:
    """POST ``target`` byte for byte (no client-side normalization of dots or escapes)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(f"POST {target} HTTP/1.0\r\nhost: x\r\ncontent-length: 0\r\n"
                              "connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("target", "status", "error_type"),
    [
        *(pytest.param(f"/default/COUNTER/{name}/rpc/increment", 400, "InvalidPath", id=name)
          for name in ("..", ".", "%2e%2e", "%2E%2E", "%2e", ".%2E")),
        *(pytest.param(f"/default/COUNTER/{name}/rpc/increment", 400, "InvalidPath", id=name)
          for name in ("%ff", "%fe", "%c0%ae", "%ed%a0%80")),
        pytest.param("/default/COUNTER/a/../b/rpc/increment", 400, "InvalidPath", id="rest-dots"),
        pytest.param("/default/WEB/a/x/%2e%2e/y", 400, "InvalidPath", id="fetch-dots"),
        pytest.param("/default/COUNTER/a/rpc/%ff", 400, "InvalidPath", id="method-utf8"),
        pytest.param("/default/COUNTER//rpc/increment", 400, "InvalidObjectName", id="empty"),
        pytest.param("/default/COUNTER/" + "n" * 1025 + "/rpc/increment", 414,
                     "InvalidObjectName", id="too-long"),
        pytest.param("/default/COUNTER/" + "%C3%A9" * 513 + "/rpc/increment", 414,
                     "InvalidObjectName", id="too-long-in-bytes"),
        pytest.param("/default/COUNTER/" + "n" * 20_000 + "/rpc/increment", 414,
                     "InvalidObjectName", id="20000"),
    ],
)
async def test_paths_are_canonical(server: ServerProcess, tmp_path: Path, target: str,
                                   status: int, error_type: str) -> None:
    """Dot segments, bytes that are not UTF-8 and names over the limit are refused, and the
    refusal creates no file."""
    answer_status, body = await raw_request(server, target)
    assert (answer_status, body["error"]["type"]) == (status, error_type), body  # type: ignore[index]
    assert not (tmp_path / "tenants").exists()  # not even the tenant's runtime was started


async def test_names_at_the_limit_and_encoded_slashes(server: ServerProcess) -> None:
    longest = "é" * 512  # 1,024 bytes of UTF-8
    path = f"/default/COUNTER/{longest}/rpc/whoami"
    assert (await rpc(server, path)).json() == {"result": longest}
    assert (await rpc(server, "/default/COUNTER/a%2Fb/rpc/whoami")).json() == {"result": "a/b"}
    assert (await rpc(server, "/default/COUNTER/...%20/rpc/whoami")).json() == {
        "result": "... "}
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        answer = await client.get("/default/WEB/lobby/a%2Fb/c")  # forwarded as sent
    assert answer.json()["path"] == "/a/b/c"
    assert answer.status_code == 201


async def test_a_damaged_file_is_a_permanent_fault_named_without_paths(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A read that meets damaged pages is answered 500 DatabaseCorruptError, not retryable,
    without claiming lost writes and without the server's file paths; so is every later
    call; other objects are untouched."""
    for _ in range(3):
        await rpc(server, "/default/COUNTER/damaged/rpc/increment")
    await rpc(server, "/default/COUNTER/healthy/rpc/increment")
    assert await server.terminate() == 0
    (path,) = (tmp_path / "tenants/default/COUNTER").glob(
        f"*/{server_id('COUNTER', 'damaged')}.sqlite")
    damaged = damage_table(path, "_dobox_kv")
    await server.restart()
    for _ in range(2):  # the same answer each time: a retry meets the same file
        answer = await rpc(server, "/default/COUNTER/damaged/rpc/value")
        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert error["type"] == "DatabaseCorruptError"
        assert (error["remote"], error["retryable"], error["reset"]) == (True, False, True)
        assert "default/COUNTER/damaged is not a SQLite database or is damaged" in (
            error["message"])
        assert str(tmp_path) not in answer.text
        assert "could not be committed" not in answer.text
    assert path.read_bytes() == damaged  # left as it was
    assert (await rpc(server, "/default/COUNTER/healthy/rpc/value")).json() == {"result": 1}


async def test_one_objects_unwritable_files_fail_it_alone(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Made immutable under a running server, an object's files fail that object's writes
    with an I/O error; they cannot take the process down (SQLite's WAL index is kept in
    memory: with a memory-mapped -shm that cannot grow, this was a SIGBUS for the whole
    server), and the object recovers once its files are writable again."""
    bulk = "/default/BULK/b/rpc/write"
    assert (await rpc(server, bulk, {"args": [10]})).json() == {"result": 10}
    (db,) = (tmp_path / "tenants/default/BULK").glob("*/*.sqlite")
    shm, wal = Path(f"{db}-shm"), Path(f"{db}-wal")
    assert not shm.exists()  # noqa: ASYNC240  # the WAL index lives in the server's memory
    shm.touch()  # noqa: ASYNC240  # a stale one, left by an older server: never mapped
    with immutable(shm):
        answer = await rpc(server, bulk, {"args": [12_000]})  # ~48 MB: a large WAL index
        assert answer.json() == {"result": 12_010}, answer.text
        with immutable(wal):
            answer = await rpc(server, bulk, {"args": [12_000]})
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert (error["type"], error["reset"], error["retryable"]) == (
                "StorageIOError", True, True)
            assert (await rpc(server, "/default/COUNTER/a/rpc/increment")).json() == {
                "result": 1}  # the neighbours never noticed
    assert server.running
    assert (await rpc(server, bulk, {"args": [1]})).json() == {"result": 12_011}


async def test_a_tenant_whose_data_cannot_be_opened_is_told_without_paths(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "t-acme"\n[tenants.globex]\ntoken = "t-globex"\n')
    data = tmp_path / "data"
    (data / "tenants").mkdir(parents=True)
    (data / "tenants" / "acme").write_text("a file where the tenant's directory goes")
    async with open_server_process(data, OBJECTS, cwd=ROOT, tokens=tokens) as server:
        answer = await rpc(server, "/acme/COUNTER/c/rpc/increment",
                           headers={"authorization": "Bearer t-acme"})
        assert answer.status_code == 500
        assert answer.json()["error"]["message"] == (
            "the data of tenant acme cannot be opened (the server's log says why); retry "
            "later")
        assert str(tmp_path) not in answer.text
        other = await rpc(server, "/globex/COUNTER/c/rpc/increment",
                          headers={"authorization": "Bearer t-globex"})
        assert other.json() == {"result": 1}


async def test_a_full_disk_is_said_and_recovered_from_over_http(tmp_path: Path) -> None:
    """On a full disk, a cold object and a warm one answer 503 StorageFullError, retryable,
    saying the disk is full; once space is freed both are served, nothing committed lost."""
    with small_filesystem(tmp_path / "disk", "8m") as disk:
        async with open_server_process(disk / "data", OBJECTS, cwd=ROOT) as server:
            assert (await rpc(server, "/default/COUNTER/warm/rpc/increment")).json() == {
                "result": 1}
            filler = fill_disk(disk)
            for name in ("cold", "warm"):
                answer = await rpc(server, f"/default/COUNTER/{name}/rpc/increment")
                assert answer.status_code == 503, answer.text
                error = answer.json()["error"]
                assert (error["type"], error["retryable"]) == ("StorageFullError", True)
                assert "the disk is full" in error["message"]
                assert str(tmp_path) not in answer.text
            filler.unlink()  # free the space
            assert (await rpc(server, "/default/COUNTER/warm/rpc/increment")).json() == {
                "result": 2}
            assert (await rpc(server, "/default/COUNTER/cold/rpc/increment")).json() == {
                "result": 1}


def server_id(binding: str, name: str, tenant: str = "default") -> str:
    """The id the server gives ``name`` (its file is named after it)."""
    return id_from_name(namespace_key(f"{tenant}/{binding}"), name).hex


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
                                  headers=[("x-test", "yes"), ("x-repeated", "1"),
                                           ("x-repeated", "2")])
        plain = await client.get("/default/WEB/lobby/a/b")
    assert answer.status_code == 201
    assert answer.json() == {"method": "PUT", "path": "/a/b", "url": "http://dobox/a/b?x=1",
                             "query": "x=1", "header": "yes", "body": "hello",
                             "repeated": ["1", "2"]}
    assert plain.json()["url"] == "http://dobox/a/b"  # no query string: no "?"
    # Headers come back as the object set them: two cookies stay two (not one joined line).
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert answer.headers["content-type"] == "application/json"


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
    assert 'dobox_inline_commits_total{tenant="default"}' in text


async def test_sigterm_lets_in_flight_requests_finish(
    server: ServerProcess, tmp_path: Path
) -> None:
    """SIGTERM while a call is running and a write waits behind it: the server stops
    listening, both are answered, the write is durable, and the server exits 0."""
    answers: dict[str, httpx.Response] = {}
    release = tmp_path / "release"
    exit_codes: list[int] = []

    async def call(label: str, path: str, body: object) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            answers[label] = await client.post(path, json=body)

    async def terminate() -> None:
        exit_codes.append(await server.terminate())

    async def held(probe: httpx.AsyncClient, count: int) -> None:
        with trio.fail_after(30):  # until the server holds them (its state, not a timer)
            while f'dobox_queued_events{{tenant="default"}} {count}.0' not in (  # noqa: ASYNC110
                    await probe.get("/metrics")).text:
                await trio.sleep(0.01)

    async with trio.open_nursery() as nursery, \
            httpx.AsyncClient(base_url=server.base_url) as probe:
        nursery.start_soon(call, "slow", "/default/HOLDER/h/rpc/hold_until",
                           {"args": [str(release)]})
        await held(probe, 1)  # the running call first: the write must queue behind it
        nursery.start_soon(call, "write", "/default/HOLDER/h/rpc/increment", {"args": [5]})
        await held(probe, 2)
        nursery.start_soon(terminate)
        with trio.fail_after(30):  # until it stopped listening: it is shutting down
            while True:
                try:
                    await probe.get("/healthz")
                except httpx.TransportError:
                    break
                await trio.sleep(0.01)
        release.touch()  # the running call may finish now
    assert exit_codes == [0]
    assert answers["slow"].json() == {"result": "released"}
    assert answers["write"].json() == {"result": 5}
    await server.restart()
    assert (await rpc(server, "/default/HOLDER/h/rpc/increment", {"args": [0]})).json() == {
        "result": 5}


async def test_timeouts_overload_and_resets_answer_with_their_statuses(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT, options=[
            "--request-timeout", "1", "--max-queued", "1"]) as server:
        # The first request opens the tenant (a trio task per request); the next ones find
        # it open (no task: the bridge's time limit is an asyncio timer then). Both limit.
        for name in ("first", "slow"):
            slow = await rpc(server, f"/default/COUNTER/{name}/rpc/sleep", {"args": [1.5]})
            assert slow.status_code == 504
            assert slow.json()["error"]["type"] == "Timeout"
        async with httpx.AsyncClient(base_url=server.base_url) as probe:
            with trio.fail_after(20):  # until the objects have finished what their callers left
                while 'dobox_queued_events{tenant="default"} 0.0' not in (  # noqa: ASYNC110
                        await probe.get("/metrics")).text:
                    await trio.sleep(0.01)
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


async def test_a_low_open_file_limit_costs_idle_objects_not_requests(tmp_path: Path) -> None:
    """Under ulimit -n 128 (soft and hard), hundreds of objects are served one after the
    other (idle ones are evicted to make room); when every open object is busy, a new one
    is refused at once with 503 overloaded naming the limit, and nothing fails otherwise."""
    release = tmp_path / "release"
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT,
                                   max_open_files=128) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            for i in range(200):
                answer = await client.post(f"/default/COUNTER/o{i}/rpc/increment",
                                           json={"args": []})
                assert answer.json() == {"result": 1}, answer.text
        answers: list[httpx.Response] = []

        async def hold(i: int) -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
                answers.append(await client.post(f"/default/HOLDER/h{i}/rpc/hold_until",
                                                 json={"args": [str(release)]}))

        async with trio.open_nursery() as nursery:
            for i in range(30):  # more busy objects than 128 descriptors can hold open
                nursery.start_soon(hold, i)
            with trio.fail_after(30):
                while not answers:  # noqa: ASYNC110  # the refusals come first, at once
                    await trio.sleep(0.01)
            release.touch()  # the held calls may finish
        refused = [a for a in answers if a.status_code == 503]
        assert refused, [a.text for a in answers]
        assert {a.status_code for a in answers} == {200, 503}
        for answer in refused:
            error = answer.json()["error"]
            assert error["overloaded"] is True
            assert "this process's limit of 128 open files allows (ulimit -n)" in error["message"]
            assert answer.headers["retry-after"] == "1"
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.post("/default/COUNTER/o0/rpc/value", json={})).json() == {
                "result": 1}


async def open_tenants(server: ServerProcess) -> float:
    async with httpx.AsyncClient(base_url=server.base_url,
                                 headers={"authorization": "Bearer metrics"}) as client:
        text = (await client.get("/metrics")).text
    return float(text.split("\ndobox_tenants_open ")[1].split()[0])


async def test_an_idle_tenant_is_closed_and_opens_again(tmp_path: Path) -> None:
    """A tenant with nothing live closes its runtime (no file of it stays open); its next
    request opens it again with its data; a pending alarm reopens it when due."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("".join(f'[tenants.t{i}]\ntoken = "token-{i}"\n' for i in range(5)))
    data = tmp_path / "data"
    async with open_server_process(data, OBJECTS, cwd=ROOT, tokens=tokens,
                                   options=["--idle-timeout", "0.3", "--metrics-token",
                                            "metrics"]) as server, \
            httpx.AsyncClient(base_url=server.base_url) as client:
        for i in range(5):
            answer = await client.post(f"/t{i}/COUNTER/c/rpc/increment", json={},
                                       headers={"authorization": f"Bearer token-{i}"})
            assert answer.json() == {"result": 1}
        await client.post("/t0/REMINDER/r/rpc/remind_in", json={"args": [4]},
                          headers={"authorization": "Bearer token-0"})
        assert await open_tenants(server) == 5
        with trio.fail_after(20):  # the server's idle timer is real time
            while await open_tenants(server):  # noqa: ASYNC110  # another process's state
                await trio.sleep(0.05)
        assert server.pid is not None
        held = [os.readlink(f"/proc/{server.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{server.pid}/fd")]
        assert not [f for f in held if f.startswith(str(data))]
        with trio.fail_after(30):  # t0's alarm opens it again, unasked
            while not await open_tenants(server):  # noqa: ASYNC110  # as above
                await trio.sleep(0.05)
        with trio.fail_after(30):  # the alarm event is on its way: t0 is open from here
            while (await client.post("/t0/REMINDER/r/rpc/fired", json={}, headers={  # noqa: ASYNC110
                    "authorization": "Bearer token-0"})).json() != {"result": 1}:
                await trio.sleep(0.05)  # as above
        answer = await client.post("/t1/COUNTER/c/rpc/increment", json={},
                                   headers={"authorization": "Bearer token-1"})
        assert answer.json() == {"result": 2}  # opened again, its data intact


async def test_an_object_that_calls_itself_over_http_gets_its_answer(
    server: ServerProcess,
) -> None:
    """Its fetch awaits a request to the server for the same object: that request runs
    while the first waits (under a strict gate it would wait for the request timeout)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        with trio.fail_after(20):
            answer = await http.get("/default/AGENT/me/self",
                                    params={"base": server.base_url})
    assert (answer.status_code, answer.text) == (200, "it said: hello")


async def test_the_server_says_where_it_listens_and_logs_each_500(tmp_path: Path) -> None:
    """Before, dobox serve printed nothing: not where it listened, not a 500 of an object's
    code (its caller got the error; the operator saw nothing)."""
    log = tmp_path / "server.log"
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT, log=log,
                                   options=["--access-log"]) as server:
        assert (await rpc(server, "/default/COUNTER/a/rpc/fail", {"args": ["boom"]})
                ).status_code == 500
        assert (await rpc(server, "/default/COUNTER/a/rpc/increment")).status_code == 200
    text = log.read_text()
    port = server.base_url.rsplit(":", 1)[1]
    assert "dobox serving COUNTER, " in text
    assert (f"on http://127.0.0.1:{port}, data in {(tmp_path / 'data').resolve()}; "
            "Ctrl-C stops") in text
    assert "500 for POST /default/COUNTER/a/rpc/fail: ValueError: boom" in text
    assert '"POST /default/COUNTER/a/rpc/increment HTTP/1.1" 200' in text  # the access log


def test_every_serve_option_can_come_from_the_environment() -> None:
    result = CliRunner().invoke(main, ["serve", "tests.runtime.server_objects:OBJECTS"],
                                env={"DOBOX_PORT": "80000"})
    assert result.exit_code == 2
    assert "Invalid value for '--port' (env var: 'DOBOX_PORT')" in result.output


async def test_metrics_behind_tokens_need_their_own(tmp_path: Path) -> None:
    """/metrics names every tenant: on a server with tenant tokens it was open to anyone."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "s3cret-acme"\n')
    async with open_server_process(tmp_path / "a", OBJECTS, cwd=ROOT, tokens=tokens) as server, \
            httpx.AsyncClient(base_url=server.base_url) as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 403
        assert "needs its own: start it with --metrics-token" in refused.text
    async with open_server_process(tmp_path / "b", OBJECTS, cwd=ROOT, tokens=tokens,
                                   options=["--metrics-token", "m-token"]) as server, \
            httpx.AsyncClient(base_url=server.base_url) as client:
        assert (await client.get("/metrics")).status_code == 401
        tenant = {"authorization": "Bearer s3cret-acme"}
        assert (await client.get("/metrics", headers=tenant)).status_code == 403
        scraper = {"authorization": "Bearer m-token"}
        answer = await client.get("/metrics", headers=scraper)
        assert answer.status_code == 200
        assert "dobox_requests_total" in answer.text


async def activations(server: ServerProcess) -> float:
    """The default tenant's activations in /metrics (reading them opens no tenant)."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for line in (await http.get("/metrics")).text.splitlines():
            if line.startswith('dobox_activations_total{tenant="default"}'):
                return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("index", ["kept", "lost"])
async def test_alarms_fire_after_a_restart_without_a_request(tmp_path: Path, index: str) -> None:
    """Before, a tenant's alarms waited for its next request after the server restarted.
    "lost": the alarm index is gone, as after a restore: opening the tenant rebuilds it."""
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT) as server:
        assert (await rpc(server, "/default/REMINDER/r/rpc/remind_in", {"args": [2]})
                ).status_code == 200
        server.kill()  # SIGKILL: nothing of the runtime's state survives but its files
        if index == "lost":
            tenant = tmp_path / "data" / "tenants" / "default"
            for stale in tenant.glob(f"{ALARM_INDEX_NAME}*"):
                stale.unlink()
        await server.restart()
        with trio.fail_after(30):  # the alarm opens the tenant and its object, unasked
            while not await activations(server):  # noqa: ASYNC110  # another process's state
                await trio.sleep(0.05)
        with trio.fail_after(30):  # the alarm event is on its way
            while (await rpc(server, "/default/REMINDER/r/rpc/fired")).json() != {  # noqa: ASYNC110
                    "result": 1}:
                await trio.sleep(0.05)  # as above
