"""dobox serve --inspector: every page and its access control, read-only SQL, escaping,
and that looking never wakes an object, over the real server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner
from markupsafe import escape

from actors._ids import id_from_name, namespace_key
from harness import ServerProcess, open_server_process
from runtime import Client
from runtime.cli import main

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.runtime.inspector_objects:OBJECTS"
ADMIN = "inspector-token-0123456789"
PAGE = "/_dobox/t/default/SHOP/"


def object_id(name: str, tenant: str = "default") -> str:
    return id_from_name(namespace_key(f"{tenant}/SHOP"), name).hex


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT,
                                   options=["--inspector", "--idle-timeout", "1"]) as running:
        yield running


async def get(server: ServerProcess, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.get(path, headers=headers)


async def metric(server: ServerProcess, name: str) -> float:
    text = (await get(server, "/metrics")).text
    found = re.search(rf'^{name}{{tenant="default"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_the_inspector_is_off_unless_asked_for(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as server:
        answer = await get(server, "/_dobox/")
        assert answer.status_code == 404
        assert "start the server with --inspector" in answer.json()["error"]["message"]


async def test_every_page_from_the_server_to_an_object(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        shop = client.namespace("SHOP").get_by_name("corner")
        await shop.stock("price", {"apples": [1, 2], "open": True})
        await shop.make_table("sales", "one sale")
        await shop.add_item("a1", "apple")
        await shop.schedule(3600)

    overview = await get(server, "/_dobox/")
    assert overview.status_code == 200
    assert 'href="/_dobox/t/default/"' in overview.text
    assert 'data-live="/_dobox/live.json"' in overview.text

    tenant = await get(server, "/_dobox/t/default/")
    assert tenant.status_code == 200
    assert re.search(r">SHOP</a></td><td>Shop</td><td class=\"n\">1</td>", tenant.text)

    listing = await get(server, PAGE)
    assert listing.status_code == 200
    assert ">corner</a>" in listing.text
    assert "1 of 1 objects" in listing.text

    page = await get(server, f"{PAGE}{object_id('corner')}/?table=sales&coll=items")
    assert page.status_code == 200
    text = page.text
    assert "<h1>corner" in text
    assert '<dt>apples</dt><dd><ol class="list"><li><span class="num">1</span>' in text
    assert "CREATE TABLE &#34;sales&#34; (v TEXT)" in text or 'CREATE TABLE "sales"' in text
    assert "<td>one sale</td>" in text
    assert '<td class="key">a1</td>' in text
    assert '<span class="str">apple</span>' in text
    assert re.search(r"due \d{4}-\d\d-\d\d [\d:]+ UTC, not retried", text)
    assert "<dt>schema version</dt><dd>1</dd>" in text
    assert "through the running runtime" in text


async def test_objects_are_paged_and_found_by_name_among_many(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        namespace = client.namespace("SHOP")
        async with trio.open_nursery() as nursery:
            for i in range(120):
                nursery.start_soon(namespace.get_by_name(f"shop-{i:03d}").stock, "n", i)
    first = await get(server, PAGE)
    assert "120 of 120 objects" in first.text
    assert "page 1 of 3" in first.text
    assert ">shop-000</a>" in first.text
    assert ">shop-050</a>" not in first.text
    third = await get(server, PAGE + "?page=3")
    assert ">shop-119</a>" in third.text
    assert "page 3 of 3" in third.text
    beyond = await get(server, PAGE + "?page=99")
    assert "page 3 of 3" in beyond.text
    for nonsense in ("abc", "-1", "1e9", "9" * 30):
        assert "page 1 of 3" in (await get(server, PAGE + "?page=" + nonsense)).text
    found = await get(server, PAGE + "?q=SHOP-07")
    assert "10 of 120 objects match" in found.text
    assert ">shop-070</a>" in found.text
    assert ">shop-080</a>" not in found.text
    by_id = await get(server, PAGE + "?q=" + object_id("shop-042")[:10])
    assert ">shop-042</a>" in by_id.text


async def test_kv_pairs_are_paged(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        await client.namespace("SHOP").get_by_name("big").stock_many(120)
    url = f"{PAGE}{object_id('big')}/"
    first = (await get(server, url)).text
    assert ">key-0000</td>" in first
    assert ">key-0050</td>" not in first
    assert "120 keys" in first
    second = (await get(server, url + "?kv=2")).text
    assert ">key-0050</td>" in second
    assert ">key-0000</td>" not in second


async def test_a_page_view_leaves_a_hibernating_object_hibernating(
    server: ServerProcess,
) -> None:
    async with Client(server.base_url) as client:
        room = client.namespace("SHOP").get_by_name("room")
        async with room.websocket("/?tag=<b>lobby</b>&user=ada") as ws:
            await ws.send("hello")
            assert await ws.receive() == "hello"
            with trio.fail_after(20):  # the server's idle timer runs in real time
                while await metric(server, "dobox_live_objects") != 0:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            activations = await metric(server, "dobox_activations_total")

            page = await get(server, f"{PAGE}{object_id('room')}/")
            listing = await get(server, PAGE)

            assert page.status_code == 200
            assert "from its file" in page.text
            assert '<span class="tag">&lt;b&gt;lobby&lt;/b&gt;</span>' in page.text
            assert '<dt>user</dt><dd><span class="str">ada</span>' in page.text
            assert '<span class="state asleep">not in memory</span>' in listing.text
            assert await metric(server, "dobox_live_objects") == 0
            assert await metric(server, "dobox_activations_total") == activations
            assert await metric(server, "dobox_websockets") == 1


async def test_read_only_sql_reads_and_refuses_the_rest(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        shop = client.namespace("SHOP").get_by_name("ledger")
        await shop.make_table("sales", "first")
        url = f"{PAGE}{object_id('ledger')}/sql"
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            read = await http.post(url, data={"sql": "SELECT v, length(v) AS n FROM sales"})
            assert read.status_code == 200
            assert "<th>n</th>" in read.text
            assert "<td>first</td><td>5</td>" in read.text
            refused = await http.post(url, data={"sql": "DELETE FROM sales"})
            assert refused.status_code == 400
            assert "dobox only reads object files" in refused.text
            empty = await http.post(url, data={"sql": "  "})
            assert empty.status_code == 400
            assert "give a statement to run" in empty.text
            huge = await http.post(url, data={"sql": "SELECT 1 -- " + "x" * 70_000})
            assert huge.status_code == 413
            wrong = await http.post(url, data={"sql": "SELEC 1"})
            assert wrong.status_code == 400
            assert "syntax error" in wrong.text
        await shop.make_table("sales", "second")  # the object writes on, its table intact
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            count = await http.post(url, data={"sql": "SELECT count(*) AS c FROM sales"})
        assert "<td>2</td>" in count.text


async def test_the_live_view_counts_requests(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/_dobox/live.json")).json()["samples"] == []
        await trio.sleep(0.6)  # the live view samples at most twice a second
        quiet = (await http.get("/_dobox/live.json")).json()["samples"][-1]
        assert quiet["requests_per_second"] == 0  # the inspector's own are not counted
        async with Client(server.base_url) as client:
            shop = client.namespace("SHOP").get_by_name("busy")
            for _ in range(20):
                await shop.stock("n", 1)
        await trio.sleep(0.6)  # the live view samples at most twice a second
        sample = (await http.get("/_dobox/live.json")).json()["samples"][-1]
    assert sample["requests_per_second"] > 0
    assert sample["commits_per_second"] > 0
    assert sample["live_objects"] >= 1


@pytest.mark.parametrize("path", [
    "/_dobox/t/nobody/", "/_dobox/t/default/NOPE/", "/_dobox/t/default/SHOP/not-an-id/",
    "/_dobox/t/default/SHOP/" + "0" * 64 + "/", "/_dobox/t/..%2F..%2Fetc/",
    "/_dobox/t/default/..%2F..%2F/", "/_dobox/static/..%2F__init__.py", "/_dobox/nothing",
    "/_dobox/t/%ff/",
])
async def test_paths_outside_the_pages_are_not_found(server: ServerProcess,
                                                     path: str) -> None:
    assert (await get(server, path)).status_code == 404


# -- access --------------------------------------------------------------------------------

@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "acme-token"\n'
                      '[tenants.other]\ntoken = "other-token"\n')
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT, tokens=tokens,
                                   options=["--inspector", "--inspector-token", ADMIN]
                                   ) as running:
        yield running


async def test_only_the_inspector_token_opens_it(guarded: ServerProcess) -> None:
    async with Client(guarded.base_url, tenant="acme", token="acme-token") as client:
        await client.namespace("SHOP").get_by_name("mine").stock("k", "v")
    acme_object = f"/_dobox/t/acme/SHOP/{object_id('mine', 'acme')}/"
    async with httpx.AsyncClient(base_url=guarded.base_url) as http:
        home = await http.get("/_dobox/")
        assert home.status_code == 200
        assert 'name="token"' in home.text
        for token in (None, "acme-token", "other-token", ADMIN + "x"):
            headers = {} if token is None else {"authorization": f"Bearer {token}"}
            for path in ("/_dobox/t/acme/", "/_dobox/t/acme/SHOP/", acme_object,
                         "/_dobox/live.json"):
                assert (await http.get(path, headers=headers)).status_code == 401
            query = await http.post(acme_object + "sql", data={"sql": "SELECT 1"},
                                    headers=headers)
            assert query.status_code == 401
            assert "<td>1</td>" not in query.text
        admin = {"authorization": f"Bearer {ADMIN}"}
        assert (await http.get(acme_object, headers=admin)).status_code == 200
        # Another tenant's path to this object finds nothing there.
        other = acme_object.replace("/t/acme/", "/t/other/")
        assert (await http.get(other, headers=admin)).status_code == 404


async def test_a_browser_signs_in_and_out(guarded: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as http:
        wrong = await http.post("/_dobox/sign-in", data={"token": "acme-token"})
        assert wrong.status_code == 401
        assert "not the inspector&#39;s token" in wrong.text
        assert "set-cookie" not in wrong.headers
        right = await http.post("/_dobox/sign-in", data={"token": ADMIN})
        assert right.status_code == 303
        assert right.headers["location"] == "/_dobox/"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert ADMIN not in cookie  # a digest of the token, not the token
        assert (await http.get("/_dobox/live.json")).status_code == 200
        out = await http.post("/_dobox/sign-out")
        assert out.status_code == 303
        assert (await http.get("/_dobox/live.json")).status_code == 401


def test_a_server_with_tenant_tokens_needs_an_inspector_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "acme-token"\n')
    result = CliRunner().invoke(main, ["serve", OBJECTS, "--data", str(tmp_path / "d"),
                                       "--tokens", str(tokens), "--inspector"])
    assert result.exit_code != 0
    assert "needs its own token (--inspector-token)" in result.output
    short = CliRunner().invoke(main, ["serve", OBJECTS, "--data", str(tmp_path / "d"),
                                      "--inspector", "--inspector-token", "short"])
    assert "at least 16 characters" in short.output


# -- escaping ------------------------------------------------------------------------------

NASTY = "<script>alert('x')</script>\"&"


def shown_as_text(page: str) -> bool:
    """The text is on the page, escaped, and nowhere as markup."""
    return "<script>alert" not in page and str(escape(NASTY)) in page


async def test_an_object_name_renders_as_text(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        await client.namespace("SHOP").get_by_name(NASTY).stock("k", 1)
    listing = (await get(server, PAGE)).text
    assert shown_as_text(listing)
    page = (await get(server, f"{PAGE}{object_id(NASTY)}/")).text
    assert shown_as_text(page)


@pytest.mark.parametrize("kind", ["kv key", "kv value", "table name", "table row",
                                  "record", "sql result"])
async def test_data_renders_as_text(server: ServerProcess, kind: str) -> None:
    async with Client(server.base_url) as client:
        shop = client.namespace("SHOP").get_by_name("escapes")
        if kind == "kv key":
            await shop.stock(NASTY, 1)
        elif kind == "kv value":
            await shop.stock("k", {"nested": [NASTY]})
        elif kind in ("table name", "table row", "sql result"):
            await shop.make_table(NASTY if kind == "table name" else "t", NASTY)
        else:
            await shop.add_item(NASTY, NASTY)
    url = f"{PAGE}{object_id('escapes')}/"
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        if kind == "sql result":
            page = (await http.post(url + "sql", data={"sql": "SELECT v FROM t"})).text
        else:
            query = {"table": NASTY if kind == "table name" else "t", "coll": "items"}
            page = (await http.get(url, params=query)).text
    assert shown_as_text(page)


async def test_pages_forbid_scripts_from_anywhere_else(server: ServerProcess) -> None:
    answer = await get(server, "/_dobox/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_the_script_and_style_are_served_and_nothing_else(server: ServerProcess) -> None:
    script = await get(server, "/_dobox/static/inspector.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "function draw" in script.text
    style = await get(server, "/_dobox/static/inspector.css")
    assert style.headers["content-type"].startswith("text/css")
    assert (await get(server, "/_dobox/static/sign_in.html")).status_code == 404
