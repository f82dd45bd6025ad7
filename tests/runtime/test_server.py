"""dobox serve: the real server (uvicorn, the runtime as trio's guest) on a loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, data: Path, tokens: Path | None = None) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "runtime", "serve", OBJECTS, "--data", str(data),
                   "--port", str(self.port)]
        if tokens is not None:
            command += ["--tokens", str(tokens)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base}/healthz").text == "ok":
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def rpc(server: Server, path: str, body: object = None, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.base}{path}", json={"args": [], "kwargs": {}} if body is None
                      else body, **kwargs)  # type: ignore[arg-type]


def test_rpc_calls_and_durable_state(server: Server, tmp_path: Path) -> None:
    answer = rpc(server, "/default/COUNTER/a/rpc/increment", {"args": [2]})
    assert (answer.status_code, answer.json()) == (200, {"result": 2})
    assert rpc(server, "/default/COUNTER/a/rpc/increment").json() == {"result": 3}
    assert rpc(server, "/default/COUNTER/a/rpc/echo", {"args": [[1, "x"]]}).json() == {
        "result": [1, "x"]}
    assert server.stop() == 0  # SIGTERM: drained, committed, exit 0
    again = Server(tmp_path)
    try:
        assert rpc(again, "/default/COUNTER/a/rpc/value").json() == {"result": 3}
    finally:
        again.stop()


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
def test_errors_are_json_with_fitting_statuses(
    server: Server, path: str, body: object, status: int, error_type: str
) -> None:
    answer = rpc(server, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == error_type
    assert set(error) == {"type", "message", "remote", "retryable", "overloaded", "reset"}
    assert error["remote"] is (status == 500)


def test_malformed_json_and_oversized_bodies(server: Server) -> None:
    answer = httpx.post(f"{server.base}/default/COUNTER/a/rpc/increment", content=b"{nope")
    assert (answer.status_code, answer.json()["error"]["type"]) == (400, "MalformedJSON")
    answer = httpx.post(f"{server.base}/default/COUNTER/a/rpc/increment",
                        content=b"x" * (2 << 20))
    assert answer.status_code == 413
    # Nothing was activated or written by the refused requests.
    assert rpc(server, "/default/COUNTER/a/rpc/value").json() == {"result": 0}


def test_fetch_forwarding_keeps_path_query_headers_and_body(server: Server) -> None:
    answer = httpx.put(f"{server.base}/default/WEB/lobby/a/b?x=1", content=b"hello",
                       headers={"x-test": "yes"})
    assert answer.status_code == 201
    assert answer.json() == {"method": "PUT", "path": "/a/b", "query": "x=1",
                             "header": "yes", "body": "hello"}


def test_tenants_and_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "s3cret-acme"\n'
                      '[tenants.globex]\ntoken = "s3cret-globex"\n')
    server = Server(tmp_path / "data", tokens)
    try:
        acme = {"authorization": "Bearer s3cret-acme"}
        globex = {"authorization": "Bearer s3cret-globex"}
        path = "/acme/COUNTER/shared-name/rpc/increment"
        assert rpc(server, path, headers=acme).json() == {"result": 1}
        assert rpc(server, "/globex/COUNTER/shared-name/rpc/increment",
                   headers=globex).json() == {"result": 1}  # same name, another object
        assert rpc(server, path).status_code == 401
        assert rpc(server, path, headers=globex).status_code == 403
        assert rpc(server, path, headers={"authorization": "Bearer wrong"}).status_code == 403
        for sneaky in ("/acme%2F..%2Fglobex/COUNTER/x/rpc/value",
                       "/../globex/COUNTER/x/rpc/value",
                       "/" + "a" * 300 + "/COUNTER/x/rpc/value"):
            assert rpc(server, sneaky, headers=acme).status_code in (403, 404)
        assert rpc(server, path, headers=acme).json() == {"result": 2}
        # Refused requests created nothing: only the two tenants have directories.
        tenants = sorted(p.name for p in (tmp_path / "data" / "tenants").iterdir())
        assert tenants == ["acme", "globex"]
    finally:
        server.stop()


def test_metrics_in_prometheus_text_format(server: Server) -> None:
    for _ in range(3):
        rpc(server, "/default/COUNTER/a/rpc/increment")
    rpc(server, "/default/COUNTER/a/rpc/fail", {"args": ["x"]})
    text = httpx.get(f"{server.base}/metrics").text
    assert 'dobox_requests_total{route="rpc",status="200"} 3.0' in text
    assert 'dobox_requests_total{route="rpc",status="500"} 1.0' in text
    assert 'dobox_errors_total{type="ValueError"} 1.0' in text
    assert 'dobox_live_objects{tenant="default"} 1.0' in text
    assert 'dobox_activations_total{tenant="default"} 1.0' in text
    assert 'dobox_commit_seconds_count{tenant="default"} 3.0' in text
