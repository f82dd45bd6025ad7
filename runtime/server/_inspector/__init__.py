"""The web inspector (``dobox serve --inspector``): read-only pages under ``/_dobox/`` that
show tenants, namespaces, objects and one object's data, alarm and sockets, a live view of
the server, and read-only SQL. See docs/inspector.md.

Pages are rendered on the server with Jinja2 (HTML escaped by default; every value shown
is data, never markup) and a small script draws the charts. Requests are dispatched
through the explicit table in :meth:`Inspector._route`: nothing from the path selects
Python behaviour by name. Data is gathered in trio (``_data``), never activating an
object.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TypeVar, cast

import attrs
import jinja2

from runtime._engine import Runtime
from storage import ForbiddenSqlError, LimitExceededError

from ._access import PREFIX, Access, check_policy, parse_cookies
from ._data import (
    SQL_ROWS,
    SQL_SECONDS,
    InspectorData,
    InspectorNotFound,
    InspectorUnreadable,
)
from ._live import LiveView
from ._snapshot import Wanted

__all__ = ["PREFIX", "Inspector", "check_policy"]

Scope = Mapping[str, object]
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
InTrio = Callable[..., Awaitable[object]]  # type: ignore[explicit-any]  # forwards arguments
T = TypeVar("T")

_HERE = Path(__file__).parent
STATIC = {
    "inspector.css": ("text/css; charset=utf-8", (_HERE / "static" / "inspector.css")),
    "inspector.js": ("text/javascript; charset=utf-8", (_HERE / "static" / "inspector.js")),
}
"""The files under ``/_dobox/static/``, by name: nothing else is served from there."""

CHARTS = (
    ("requests_per_second", "requests/s"),
    ("commits_per_second", "commits/s"),
    ("commit_milliseconds", "commit latency, ms"),
    ("overloads_per_second", "overloads/s"),
    ("resets_per_second", "resets/s"),
    ("live_objects", "live objects"),
)
MAX_FORM = 64 * 1024
"""Bytes of a posted form (a query or a token)."""

_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
     b"img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     b"base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


@attrs.frozen
class _Answer:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Inspector:
    """The inspector's pages, for one server."""

    def __init__(self, *, data_dir: Path, bindings: Mapping[str, type],
                 open_runtimes: Callable[[], Mapping[str, Runtime]],
                 requests_answered: Callable[[], float], token: str | None,
                 in_trio: InTrio) -> None:
        self.access = Access(token)
        self.data = InspectorData(data_dir, bindings, open_runtimes)
        self.live = LiveView(open_runtimes, requests_answered)
        self._in_trio = in_trio
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self._templates.filters.update(when=_when, size=_size, urlpart=_urlpart,
                                       shown=_shown, truncate_text=_truncate_text)

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     bearer: bytes | None, cookie_header: str | None) -> None:
        """Answer a request whose path starts with ``/_dobox``."""
        method = str(scope["method"])
        parts = _parts(scope)
        signed_in = self.access.allows(bearer, parse_cookies(cookie_header))
        try:
            form = await _read_form(receive) if method == "POST" else {}
            answer = await self._route(method, parts, _query(scope), form, signed_in,
                                       secure=scope.get("scheme") == "https")
        except InspectorNotFound as exc:
            answer = self._message(404, "Not found", str(exc), signed_in)
        except InspectorUnreadable as exc:
            answer = self._message(503, "Cannot read it now", str(exc), signed_in)
        except _FormTooLarge:
            answer = self._message(413, "Too large", f"a form here holds at most "
                                   f"{MAX_FORM // 1024} KiB", signed_in)
        headers = [(b"content-type", answer.content_type.encode()), *_SECURITY_HEADERS,
                   *answer.headers]
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    # -- the route table ----------------------------------------------------------------------

    async def _route(self, method: str, parts: list[str], query: dict[str, str],
                     form: dict[str, str], signed_in: bool, *, secure: bool) -> _Answer:
        match parts:
            case ["static", name] if method == "GET" and name in STATIC:
                content_type, path = STATIC[name]
                return _Answer(200, path.read_bytes(), content_type)
            case ["sign-in"] if method == "GET":
                return self._render(200, "sign_in.html", signed_in=False, error=None)
            case ["sign-in"] if method == "POST":
                return self._sign_in(form.get("token", ""), secure=secure)
            case ["sign-out"] if method == "POST":
                return _Answer(303, b"", headers=((b"location", PREFIX.encode()),
                                                  (b"set-cookie", Access.cleared_cookie())))
        if not signed_in:
            if parts == [] and method == "GET":
                return self._render(200, "sign_in.html", signed_in=False, error=None)
            return self._message(401, "Sign in first", "the inspector needs its token: "
                                 f"sign in at {PREFIX}sign-in", signed_in=False)
        match parts:
            case [] if method == "GET":
                return await self._overview()
            case ["live.json"] if method == "GET":
                return await self._live_json()
            case ["t", tenant] if method == "GET":
                return await self._tenant(tenant)
            case ["t", tenant, namespace] if method == "GET":
                return await self._namespace(tenant, namespace, query.get("q", ""),
                                             _page(query.get("page")))
            case ["t", tenant, namespace, object_id] if method == "GET":
                return await self._object(tenant, namespace, object_id, _wanted(query))
            case ["t", tenant, namespace, object_id, "sql"] if method == "POST":
                return await self._object(tenant, namespace, object_id, _wanted(query),
                                          sql=form.get("sql", ""))
        return self._message(404, "Not found", "no such inspector page", signed_in=True)

    # -- pages ------------------------------------------------------------------------------------

    def _sign_in(self, token: str, *, secure: bool) -> _Answer:
        if self.access.open:
            return _Answer(303, b"", headers=((b"location", PREFIX.encode()),))
        if not self.access.signs_in(token):
            return self._render(401, "sign_in.html", signed_in=False,
                                error="That is not the inspector's token.")
        return _Answer(303, b"", headers=((b"location", PREFIX.encode()),
                                          (b"set-cookie", self.access.cookie(secure=secure))))

    async def _overview(self) -> _Answer:
        tenants = await self._call(self._tenants)
        return self._render(200, "overview.html", crumbs=[("server", None)],
                            tenants=tenants, charts=CHARTS)

    async def _tenants(self) -> list[object]:
        return list(self.data.tenants())

    async def _live_json(self) -> _Answer:
        await self._call(self._sample)
        body = json.dumps({"samples": [attrs.asdict(s) for s in self.live.samples],
                           "busiest": [attrs.asdict(b) for b in self.live.busiest]})
        return _Answer(200, body.encode(), "application/json")

    async def _sample(self) -> None:
        self.live.sample()

    async def _tenant(self, tenant: str) -> _Answer:
        namespaces = await self._call(self.data.namespaces, tenant)
        return self._render(200, "tenant.html", tenant=tenant, namespaces=namespaces,
                            crumbs=[(tenant, None)])

    async def _namespace(self, tenant: str, namespace: str, search: str,
                         page: int) -> _Answer:
        found = await self._call(self.data.objects, tenant, namespace, search, page)

        def page_url(number: int) -> str:
            return "?" + urllib.parse.urlencode({"q": search, "page": number})

        return self._render(200, "namespace.html", tenant=tenant, namespace=namespace,
                            query=search, page=found, page_url=page_url,
                            crumbs=[(tenant, self._url("t", tenant)), (namespace, None)])

    async def _object(self, tenant: str, namespace: str, object_id: str, wanted: Wanted,
                      sql: str | None = None) -> _Answer:
        view = await self._call(self.data.object_view, tenant, namespace, object_id, wanted)
        result = sql_error = None
        status = 200
        if sql is not None and not sql.strip():
            sql_error, status = "give a statement to run", 400
        elif sql is not None:
            try:
                result = await self._call(self.data.query, tenant, namespace, object_id, sql)
            except (ForbiddenSqlError, LimitExceededError, InspectorUnreadable) as exc:
                sql_error, status = str(exc), 400
        here = self._url("t", tenant, namespace, object_id)

        def link(**changes: object) -> str:
            chosen = {"kv": wanted.kv_page, "table": wanted.table,
                      "tpage": wanted.table_page, "coll": wanted.collection,
                      "cpage": wanted.collection_page} | changes
            kept = {k: v for k, v in chosen.items() if v not in (None, 1)}
            return here + ("?" + urllib.parse.urlencode(kept) if kept else "")

        name = view.snapshot.metadata.name
        return self._render(
            status, "object.html", tenant=tenant, namespace=namespace, view=view,
            shown_name=name if name is not None else f"{object_id[:12]}…",
            kv_url=lambda n: link(kv=n) + "#kv",
            table_url=lambda t, n: link(table=t, tpage=n) + "#table",
            table_page_url=lambda n: link(tpage=n) + "#table",
            collection_url=lambda c, n: link(coll=c, cpage=n) + "#collection",
            collection_page_url=lambda n: link(cpage=n) + "#collection",
            sql_url=link().replace(here, here + "sql", 1), sql=sql or "",
            sql_error=sql_error, result=result,
            sql_rows=SQL_ROWS, sql_seconds=f"{SQL_SECONDS:g}",
            crumbs=[(tenant, self._url("t", tenant)),
                    (namespace, self._url("t", tenant, namespace)),
                    (name if name is not None else object_id[:12] + "…", None)])

    # -- helpers --------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:  # type: ignore[explicit-any]  # forwards fn's arguments
        """``await fn(*args)`` in trio (its errors raised here as they are)."""
        return cast(T, await self._in_trio(fn, *args))

    def _url(self, *segments: str) -> str:
        return PREFIX + "".join(_urlpart(s) + "/" for s in segments)

    def _render(self, status: int, template: str, *, signed_in: bool = True,
                crumbs: list[tuple[str, str | None]] | None = None,
                **context: object) -> _Answer:
        page = self._templates.get_template(template).render(
            prefix=PREFIX, crumbs=crumbs or [], signed_in=signed_in and not self.access.open,
            **context)
        return _Answer(status, page.encode())

    def _message(self, status: int, heading: str, message: str, signed_in: bool) -> _Answer:
        return self._render(status, "message.html", signed_in=signed_in, heading=heading,
                            message=message)


# -- reading the request ------------------------------------------------------------------------

def _parts(scope: Scope) -> list[str]:
    """The path's segments after ``/_dobox/``, percent-decoded, without empty ones."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])
    path = path.split("?", 1)[0]
    rest = path[len(PREFIX):] if path.startswith(PREFIX) else ""
    try:
        return [urllib.parse.unquote(part, errors="strict") for part in rest.split("/") if part]
    except UnicodeDecodeError:  # not UTF-8 once decoded: no page has such a path
        return ["?"]


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else ""
    return {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}


class _FormTooLarge(Exception):
    """A posted form over :data:`MAX_FORM` (answered 413)."""


async def _read_form(receive: Receive) -> dict[str, str]:
    body = b""
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        body += chunk if isinstance(chunk, bytes) else b""
        if len(body) > MAX_FORM:
            raise _FormTooLarge
        if not message.get("more_body"):
            break
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items()}


def _page(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() and len(text) < 9 else 1


def _wanted(query: dict[str, str]) -> Wanted:
    return Wanted(kv_page=_page(query.get("kv")), table=query.get("table"),
                  table_page=_page(query.get("tpage")), collection=query.get("coll"),
                  collection_page=_page(query.get("cpage")))


# -- template filters ---------------------------------------------------------------------------

def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    amount = count / 1024
    for unit in ("KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def _urlpart(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _shown(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes> {value[:32].hex()}{'…' if len(value) > 32 else ''}"
    return repr(value) if not isinstance(value, str) else value


def _truncate_text(text: str) -> str:
    return text if len(text) <= 500 else text[:500] + "…"
