"""A real browser against a real server: headless Chromium (the system's, which `.ci/run`
installs) driven by Playwright, and `dobox serve --inspector` as a subprocess.

Screenshots go to ``.artifacts/screenshots/`` (or ``$DOBOX_ARTIFACTS/screenshots``), kept
after the run for a person to look at; docs/inspector.md shows some of them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from playwright.sync_api import Browser, Page, sync_playwright

from runtime import open_runtime
from tests.runtime.inspector_objects import OBJECTS

ROOT = Path(__file__).parent.parent.parent
ARTIFACTS = Path(os.environ.get("DOBOX_ARTIFACTS", ROOT / ".artifacts")) / "screenshots"
SPEC = "tests.runtime.inspector_objects:OBJECTS"
MANY = 10_000


def chromium() -> str:
    """The system's Chromium: ``$DOBOX_CHROMIUM``, or ``chromium`` on the PATH."""
    found = os.environ.get("DOBOX_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if found is None:
        pytest.fail("the browser tests need Chromium: apt-get install chromium (.ci/run "
                    "installs it), or set DOBOX_CHROMIUM to its path")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API keeps an asyncio loop running on
    # this thread while it is started, and later tests run asyncio.run() here.
    # As root (CI's containers), Chromium's sandbox cannot start.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield opened
    finally:
        context.close()
    assert dialogs == [], "a page ran a script that opened a dialog"


def screenshot(page: Page, name: str) -> Path:
    """Save the page as ``<name>.png`` among the artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Served:
    """A ``dobox serve`` subprocess, stopped when its ``with`` block ends."""

    def __init__(self, data: Path, options: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", SPEC, "--data", str(data), "--port",
             str(self.port), "--inspector", *options], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base_url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dobox serve did not start")
            time.sleep(0.05)

    def call(self, name: str, method: str, *args: object, tenant: str = "default") -> object:
        answer = httpx.post(f"{self.base_url}/{tenant}/SHOP/{name}/rpc/{method}",
                            json={"args": list(args), "kwargs": {}}, timeout=30)
        answer.raise_for_status()
        return answer.json()["result"]

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_objects(data: Path, count: int) -> None:
    """``count`` objects named shop-00000... of the default tenant, made in process (the
    files a server would make for the same names), each with one KV pair."""
    async def make() -> None:
        async with open_runtime(data / "tenants" / "default", OBJECTS, id_scope="default/",
                                durability="off", idle_connection_timeout=0.001) as rt:
            namespace = rt.namespace("SHOP")

            async def worker(first: int) -> None:
                for i in range(first, count, 16):
                    await namespace.get_by_name(f"shop-{i:05d}").stock("n", i)

            async with trio.open_nursery() as nursery:
                for first in range(16):
                    nursery.start_soon(worker, first)

    trio.run(make)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over 10,000 objects (made once per module, about 20 s)."""
    data = tmp_path_factory.mktemp("many")
    make_objects(data, MANY)
    with Served(data, []) as served:
        yield served


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path, []) as served:
        yield served
