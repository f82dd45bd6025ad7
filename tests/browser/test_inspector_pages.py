"""The inspector in a real browser: an operator finds one object among 10,000 by name and
reads its data and alarm; pages; a chart that moves while a load runs; signing in; and
markup in names that stays text."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from .conftest import Served, screenshot

TIMEOUT = 30_000
"""Milliseconds a page may take to show what it should (the machine may be busy)."""


def test_find_one_object_among_ten_thousand_and_read_it(page: Page, many: Served) -> None:
    many.call("shop-07777", "schedule", 3600)
    page.goto(many.base_url + "/_dobox/")
    expect(page.get_by_role("heading", name="Server")).to_be_visible()
    screenshot(page, "overview")

    page.get_by_role("link", name="default", exact=True).click()
    expect(page.get_by_role("heading", name="Tenant default")).to_be_visible()
    page.get_by_role("link", name="SHOP", exact=True).click()
    expect(page.locator("p.count")).to_have_text("10,000 of 10,000 objects.",
                                                 timeout=TIMEOUT)
    expect(page.locator("nav.pager span")).to_have_text("page 1 of 200")
    screenshot(page, "objects")

    page.get_by_role("link", name="next →").click()
    expect(page.locator("nav.pager span")).to_have_text("page 2 of 200")
    expect(page.get_by_role("link", name="shop-00050", exact=True)).to_be_visible()

    page.get_by_role("searchbox").fill("shop-07777")
    page.get_by_role("searchbox").press("Enter")
    expect(page.locator("p.count")).to_have_text(
        "1 of 10,000 objects match “shop-07777”.")
    screenshot(page, "search")

    page.get_by_role("link", name="shop-07777", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("shop-07777")
    kv = page.locator("table.kv")
    expect(kv.locator("td.key")).to_have_text(["fail_alarm", "n"])
    expect(kv.locator("tr", has_text="n").locator(".num")).to_have_text("7777")
    expect(page.locator("dd.alarm")).to_contain_text("not retried")
    expect(page.locator("dd.alarm")).to_contain_text("due ")
    screenshot(page, "object")


def test_an_object_with_a_table_records_and_a_retried_alarm(page: Page, fresh: Served) -> None:
    fresh.call("corner", "stock", "price", {"apples": 3, "pears": [1, 2]})
    fresh.call("corner", "make_table", "sales", "one basket")
    fresh.call("corner", "add_item", "a1", "apple")
    fresh.call("corner", "add_item", "p1", "pear")
    fresh.call("corner", "schedule", 0.05, True)  # its handler raises: it is retried
    page.goto(fresh.base_url + "/_dobox/t/default/SHOP/")
    page.get_by_role("link", name="corner", exact=True).click()
    alarm = page.locator("dd.alarm")
    for _ in range(60):  # the retry is recorded by the server in its own time
        if "retry 1" in alarm.inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(alarm).to_contain_text("retry 1")

    page.get_by_role("link", name="sales", exact=True).click()
    expect(page.locator("table.rows td")).to_have_text(["one basket"])
    page.get_by_role("link", name="items", exact=True).click()
    expect(page.locator("table.records td.key")).to_have_text(["a1", "p1"])
    page.get_by_role("textbox", name="Query").fill("SELECT v, length(v) AS n FROM sales")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("table.result td")).to_have_text(["one basket", "10"])
    expect(page.locator("table.records td.key")).to_have_text(["a1", "p1"])  # still shown
    screenshot(page, "object-details")

    page.get_by_role("textbox", name="Query").fill("DELETE FROM sales")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#sql .error")).to_contain_text("dobox only reads object files")


def test_the_charts_move_while_a_load_runs(page: Page, fresh: Served) -> None:
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=fresh.base_url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                http.post(f"/default/SHOP/load-{i % 20}/rpc/stock",
                          json={"args": ["n", i], "kwargs": {}}).raise_for_status()
                i += 1

    loader = threading.Thread(target=load)
    loader.start()
    try:
        fresh.call("load-0", "count")  # the load has begun: its tenant is listed
        page.goto(fresh.base_url + "/_dobox/")
        requests = page.locator('[data-series="requests_per_second"]')
        page.wait_for_function(
            """() => {
                const chart = document.querySelector('[data-series="requests_per_second"]');
                return Number(chart.getAttribute('data-points')) >= 5 &&
                       parseFloat(chart.querySelector('output').textContent) > 0;
            }""", timeout=TIMEOUT)
        expect(requests.locator("polyline")).not_to_have_attribute("points", "")
        expect(page.locator("table.busiest tbody tr").first).to_contain_text("load-")
        screenshot(page, "live")
    finally:
        stop.set()
        loader.join()


def test_signing_in_with_the_inspectors_token(page: Page, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "acme-token"\n')
    with Served(tmp_path / "data", ["--tokens", str(tokens), "--inspector-token",
                                    "inspector-token-0123456789"]) as served:
        page.goto(served.base_url + "/_dobox/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        screenshot(page, "sign-in")
        page.get_by_label("Inspector token").fill("acme-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("That is not the inspector's token.")
        page.get_by_label("Inspector token").fill("inspector-token-0123456789")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Server")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_markup_in_a_name_stays_text(page: Page, fresh: Served) -> None:
    name = "<img src=x onerror=alert(1)>"
    fresh.call(name, "stock", "<b>key</b>", "<script>alert(2)</script>")
    page.goto(fresh.base_url + "/_dobox/t/default/SHOP/")
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.locator("table.kv td.key")).to_have_text(["<b>key</b>"])
    expect(page.locator("table.kv .str")).to_have_text(["<script>alert(2)</script>"])
    # The page fixture fails the test if any script opened a dialog.
