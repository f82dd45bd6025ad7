"""The ``dobox`` command line.

``dobox demo`` runs two small objects on a local data directory; ``dobox ls``, ``inspect``,
``sql`` and ``backup`` read a data directory without disturbing a runtime that serves it;
``restore`` writes one nobody serves. ``serve`` arrives with the server.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TypeVar

import click
import trio

from actors import DurableObject
from actors._websocket import MAX_MESSAGE_SIZE
from runtime._engine import RuntimeOptions, open_runtime, raise_open_file_limit
from runtime.cluster import ReplicaSettings, ReplicationMode
from runtime.server import DEFAULT_BUSY_POLL, ClusterSettings, DoboxApp
from runtime.server._inspector import check_policy as check_inspector_policy
from storage import Durability, ForbiddenSqlError

from ._backup import backup, object_files, restore
from ._inspect import (
    InspectError,
    find_object,
    kv_pairs,
    list_objects,
    read_only_sql,
    user_tables,
)
from ._load import load_objects

T = TypeVar("T")


@click.group()
@click.version_option(package_name="dobox")
def main() -> None:
    """dobox: Durable Objects for Python, on trio."""


class VisitCounter(DurableObject):
    """Counts visits in its KV storage."""

    async def visit(self) -> int:
        visits: int = await self.ctx.storage.get("visits", 0) + 1
        await self.ctx.storage.put("visits", visits)
        return visits


class ChatRoom(DurableObject):
    """Keeps messages in a SQL table of its own."""

    async def on_start(self) -> None:
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS messages (at REAL NOT NULL, text TEXT NOT NULL)"
        )

    async def post(self, text: str) -> int:
        sql = self.ctx.storage.sql
        sql.exec("INSERT INTO messages (at, text) VALUES (?, ?)", self.ctx.now(), text)
        count: int = sql.exec("SELECT count(*) AS n FROM messages").one()["n"]
        return count

    async def latest(self, limit: int) -> list[str]:
        rows = self.ctx.storage.sql.exec(
            "SELECT text FROM messages ORDER BY at DESC LIMIT ?", limit
        )
        return [row["text"] for row in rows]

    async def peek_at_engine(self) -> str:
        try:
            self.ctx.storage.sql.exec("SELECT * FROM _dobox_kv")
        except ForbiddenSqlError as exc:
            return str(exc)
        return "allowed"  # pragma: no cover - the authorizer refuses it


@main.command()
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dobox-demo"),
    show_default=True,
    help="Directory that holds the demo objects' databases.",
)
def demo(data: Path) -> None:
    """Run a visit counter and a chat room; run it again and they remember."""
    trio.run(_demo, data)
    click.echo(f"\nThe objects' databases are under {data}/. Run `dobox demo` again.")


async def _demo(data: Path) -> None:
    objects = {"COUNTER": VisitCounter, "ROOM": ChatRoom}
    async with open_runtime(data, objects=objects) as rt:
        counter = rt.namespace("COUNTER").get_by_name("demo")
        visit = await counter.visit()
        click.echo(f"visit number {visit} (object COUNTER/demo, id {counter.id})")

        lobby = rt.namespace("ROOM").get_by_name("lobby")
        async with trio.open_nursery() as nursery:  # three callers at once, one at a time inside
            for who in ("ada", "bob", "cy"):
                nursery.start_soon(lobby.post, f"{who} was here on visit {visit}")
        click.echo("latest messages in ROOM/lobby: " + "; ".join(await lobby.latest(3)))
        click.echo(f"object SQL cannot touch the engine's tables: {await lobby.peek_at_engine()}")
        stats = rt.statistics()
        click.echo(f"runtime: {stats.live_objects} live objects, {stats.activations} "
                   f"activations, {stats.commits} commits")


LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}


_DATA = click.argument(
    "data", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
_TENANT = click.option("--tenant", default=None, help="A server tenant's objects.")


@main.command()
@click.argument("objects_spec", metavar="MODULE:OBJECTS")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
              show_default=True, help="Directory of the tenants' object files.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (without --tokens, always 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--tokens", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="TOML file of tenants and their bearer tokens.")
@click.option("--durability", type=click.Choice(["full", "normal", "off"]), default="full",
              show_default=True, help="full: fsync every commit; normal: survive a crash of "
              "the process, not of the machine; off: no syncing.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=70.0,
              show_default=True, help="Seconds without events before an object is evicted "
              "(its accepted WebSockets stay open).")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True),
              default=30.0, show_default=True,
              help="Seconds a request may take before it is answered 504.")
@click.option("--max-queued", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Events waiting per object before more are refused (503, overloaded).")
@click.option("--cluster", "cluster_endpoints", default=None, metavar="URLS",
              help="etcd endpoint(s), comma-separated: join a cluster of dobox nodes "
              "(docs/cluster.md).")
@click.option("--node", "node_name", default=None,
              help="This node's unique name in the cluster (default: host:port).")
@click.option("--advertise", default=None, metavar="URL",
              help="Where the other nodes reach this one (default: http://host:port).")
@click.option("--lease-ttl", type=click.IntRange(min=2), default=5, show_default=True,
              help="Seconds a node's lease lasts without a keep-alive: how soon another "
              "node takes over the objects of one that died.")
@click.option("--replica", metavar="URL",
              help="Replicate each object's file with Litestream to URL/<object>/<claim> "
              "(file:///path, s3://bucket/prefix); the node starts Litestream itself. Each "
              "node then needs its own --data directory.")
@click.option("--replication", type=click.Choice(["async", "sync"]), default="async",
              show_default=True,
              help="sync: acknowledge a commit only once the replica has it; async: after "
              "the local fsync (a lost machine may lose its last second or so).")
@click.option("--busy-poll", type=click.FloatRange(min=0), default=DEFAULT_BUSY_POLL,
              show_default=True, envvar="DOBOX_BUSY_POLL", metavar="SECONDS",
              help="How long the runtime keeps polling for the next request after one came "
              "or went, instead of sleeping: a core spins that long after traffic, and "
              "requests that follow soon skip a thread wake-up (docs/serving.md). 0: never.")
@click.option("--metrics-token", default=None, metavar="TOKEN",
              help="The bearer token GET /metrics wants. Without it, /metrics is open on a "
              "server without --tokens (which listens on 127.0.0.1) and refused on one with.")
@click.option("--inspector/--no-inspector", default=False, show_default=True,
              help="Serve the read-only web inspector at /_dobox/ (docs/inspector.md).")
@click.option("--inspector-token", default=None, metavar="TOKEN",
              help="The token that opens the inspector (a sign-in form, or Authorization: "
              "Bearer). Needed with --tokens; without --tokens the inspector is open on "
              "127.0.0.1, as the whole server is.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log a line per request to stderr.")
@click.option("--log-level", type=click.Choice(list(LOG_LEVELS)), default="warning",
              show_default=True, envvar="DOBOX_LOG_LEVEL",
              help="What dobox logs to stderr: info adds nodes joining, objects restored "
              "and moving; debug adds each activation, eviction, claim and forward.")
def serve(objects_spec: str, data: Path, host: str, port: int, tokens: Path | None,
          durability: Durability, idle_timeout: float, request_timeout: float,
          max_queued: int, cluster_endpoints: str | None, node_name: str | None,
          advertise: str | None, lease_ttl: int, replica: str | None,
          replication: ReplicationMode, busy_poll: float, metrics_token: str | None,
          inspector: bool, inspector_token: str | None, access_log: bool,
          log_level: str) -> None:
    """Serve the objects named by MODULE:OBJECTS (a dict of binding to class) over HTTP.

    Every option can also be set in the environment, as DOBOX_ and its name in capitals
    (DOBOX_PORT=8000, DOBOX_TOKENS=tokens.toml); a flag wins over the environment."""
    import uvicorn  # imported here: the other commands do not need a server

    _log_to_stderr(LOG_LEVELS[log_level])

    try:
        objects = load_objects(objects_spec)
    except (ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    tenant_tokens = _read_tokens(tokens) if tokens is not None else None
    if tenant_tokens is None and host != "127.0.0.1":
        click.echo("without --tokens the server binds to 127.0.0.1 only", err=True)
        host = "127.0.0.1"
    cluster = None
    if cluster_endpoints is not None:
        endpoints = tuple(e.strip() for e in cluster_endpoints.split(",") if e.strip())
        if not endpoints:
            raise click.ClickException("--cluster needs at least one etcd endpoint URL")
        try:
            replica_settings = (ReplicaSettings(replica, replication) if replica is not None
                                else None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        cluster = ClusterSettings(endpoints=endpoints, node=node_name or f"{host}:{port}",
                                  advertise=advertise or f"http://{host}:{port}",
                                  ttl=lease_ttl, replica=replica_settings)
    elif node_name is not None or advertise is not None or replica is not None:
        raise click.ClickException("--node, --advertise and --replica need --cluster")
    if inspector:
        try:
            check_inspector_policy(inspector_token, tenant_tokens=tenant_tokens is not None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    elif inspector_token is not None:
        raise click.ClickException("--inspector-token needs --inspector")
    try:
        app = DoboxApp(data, objects, tokens=tenant_tokens, request_timeout=request_timeout,
                       cluster=cluster, busy_poll=busy_poll, metrics_token=metrics_token,
                       inspector=inspector, inspector_token=inspector_token,
                       runtime_options=RuntimeOptions(durability=durability,
                                                      idle_timeout=idle_timeout,
                                                      max_queued_per_object=max_queued))
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{objects_spec}: {exc}") from exc
    raise_open_file_limit()  # the common soft limit, 1,024, allows a few hundred objects
    config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools",
                            lifespan="on", log_level="warning", access_log=access_log,
                            ws_max_size=MAX_MESSAGE_SIZE)  # larger ones are refused (1009)
    if access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    served = ", ".join(objects)
    where = data.resolve()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # listening: say where, and where the data is
                bound = [s.getsockname()[1] for server in self.servers
                         for s in server.sockets or ()]
                address = f"http://{host}:{bound[0] if bound else port}"
                click.echo(f"dobox serving {served} ({objects_spec}) on {address}, data in "
                           f"{where}; Ctrl-C stops", err=True)
                if inspector:
                    click.echo(f"inspector at {address}/_dobox/", err=True)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # The state changes before the message is written: the message is what a
            # test (or a person) waits for to send the second signal, which may then run
            # this handler again, nested inside the first one's write.
            first = not self.should_exit
            at_once = not first and sig == signal.SIGINT
            super().handle_exit(sig, frame)
            if at_once:
                click.echo("dobox stopping at once: requests in flight are dropped; every "
                           "acknowledged write is on disk", err=True)
            elif first:
                click.echo("dobox stopping: finishing the requests in flight and committing "
                           "(Ctrl-C again to stop at once)", err=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process
            # ends "killed by SIGTERM"; dobox drains, commits and exits 0, as documented.
            previous = {sig: signal.signal(sig, self.handle_exit)
                        for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    logging.getLogger("uvicorn.error").addFilter(_quiet_protocol_noise)
    Server(config).run()


def _read_environment(command: click.Command) -> None:
    """Let each option of ``command`` be set as ``DOBOX_`` and its name in capitals
    (``--max-queued``: ``DOBOX_MAX_QUEUED``), as twelve-factor deployments configure a
    server; a flag on the command line wins."""
    for param in command.params:
        if isinstance(param, click.Option):
            if param.envvar is None:
                param.envvar = "DOBOX_" + param.opts[0].lstrip("-").replace("-", "_").upper()
            param.show_envvar = True


_read_environment(serve)


def _log_to_stderr(level: int) -> None:
    """dobox's loggers to stderr at ``level``, each line with its time and logger (uvicorn
    keeps its own handlers, at warning)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    dobox = logging.getLogger("dobox")
    dobox.addHandler(handler)
    dobox.setLevel(level)
    dobox.propagate = False


def _quiet_protocol_noise(record: logging.LogRecord) -> bool:
    """Keep uvicorn's log about what went wrong, not about what a client sent.

    uvicorn's WebSocket protocols log an error whenever an app refuses an upgrade with an
    HTTP response (the ASGI "websocket.http.response" extension), though the response went
    out as sent; dobox refuses upgrades that way, so the line would only mislead. And a text
    frame that is not UTF-8 is logged with a traceback of uvicorn's own, though the socket
    is closed with 1007 as it should be: one line is enough for a client's mistake.
    """
    message = record.getMessage()
    if message == "ASGI callable returned without completing handshake.":
        return False
    if message.startswith("Invalid UTF-8 sequence received from client"):
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        tenants = tomllib.loads(path.read_text()).get("tenants", {})
        tokens = {name: str(entry["token"]) for name, entry in tenants.items()}
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise click.ClickException(
            f"{path}: expected [tenants.NAME] tables each with a token = \"...\" ({exc})"
        ) from exc
    if not tokens:
        raise click.ClickException(f"{path} names no tenants")
    return tokens


@main.command(name="ls")
@_DATA
@_TENANT
@click.option("--namespace", default=None, help="Only this binding's objects.")
def list_command(data: Path, tenant: str | None, namespace: str | None) -> None:
    """List the objects in DATA: namespace, id, name, class, schema version, size, alarm.

    A server's data directory (one with tenants/) without --tenant: every tenant's objects,
    each line starting with its tenant."""
    objects = _inspecting(lambda: list_objects(data, tenant=tenant, namespace=namespace))
    for info in objects:
        prefix = f"{info.tenant}\t" if info.tenant is not None and tenant is None else ""
        if info.in_use:
            click.echo(f"{prefix}{info.namespace}\t{info.id}\t(in use by a running dobox)\t"
                       f"-\t-\t{info.size}\t-")
            continue
        alarm = "-" if info.alarm is None else f"{info.alarm:.3f}"
        click.echo(f"{prefix}{info.namespace}\t{info.id}\t{info.name or '-'}\t"
                   f"{info.class_name or '-'}\tv{info.schema_version}\t{info.size}\t{alarm}")
    tenants = {info.tenant for info in objects if info.tenant is not None}
    across = f" in {len(tenants)} tenants" if tenant is None and tenants else ""
    click.echo(f"{len(objects)} objects{across}", err=True)


@main.command()
@_DATA
@click.argument("object_id", metavar="OBJECT")
@_TENANT
def inspect(data: Path, object_id: str, tenant: str | None) -> None:
    """Show an object's metadata, KV pairs and tables (read-only). OBJECT is its id or
    NAMESPACE/name."""
    info = _inspecting(lambda: find_object(data, object_id, tenant=tenant))
    click.echo(f"object {info.namespace}/{info.id}")
    click.echo(f"  name {info.name!r}, class {info.class_name}, schema version "
               f"{info.schema_version}, {info.size} bytes, alarm {info.alarm}")
    click.echo("KV:")
    for key, value in _inspecting(lambda: list(kv_pairs(info))):
        click.echo(f"  {key!r}: {value!r}")
    click.echo("tables:")
    for name, rows in _inspecting(lambda: user_tables(info)):
        click.echo(f"  {name}: {rows} rows")


@main.command()
@_DATA
@click.argument("object_id", metavar="OBJECT")
@click.argument("query")
@_TENANT
def sql(data: Path, object_id: str, query: str, tenant: str | None) -> None:
    """Run a read-only SQL QUERY on an object's database (OBJECT: its id or NAMESPACE/name);
    rows as tab-separated lines."""
    info = _inspecting(lambda: find_object(data, object_id, tenant=tenant))
    columns, rows = _inspecting(lambda: read_only_sql(info, query))
    if columns:
        click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("NULL" if v is None else str(v) for v in row))


@main.command(name="backup")
@_DATA
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
def backup_command(data: Path, destination: Path) -> None:
    """Copy every object of DATA into DESTINATION (each consistent; a served object must
    have been idle for 10 s)."""
    total = len(_inspecting(lambda: list(object_files(data))))
    with _progress(total, "backing up") as step:
        count = _inspecting(lambda: backup(data, destination, progress=lambda _: step()))
    click.echo(f"backed up {count} objects to {destination}")


@main.command(name="restore")
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace objects that exist in DATA.")
def restore_command(backup_dir: Path, data: Path, overwrite: bool) -> None:
    """Copy the objects of BACKUP_DIR into DATA, which nobody may be serving."""
    total = len(_inspecting(lambda: list(object_files(backup_dir))))
    with _progress(total, "restoring") as step:
        count = _inspecting(lambda: restore(backup_dir, data, overwrite=overwrite,
                                            progress=lambda _: step()))
    click.echo(f"restored {count} objects into {data}")


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A function to call once per object done: a progress bar on a terminal; elsewhere (a
    log, a pipe, CI), where a bar shows nothing until the end, a line at each tenth."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield lambda: bar.update(1)
        return
    done = 0
    click.echo(f"{label}: {total} objects", err=True)

    def step() -> None:
        nonlocal done
        done += 1
        if done * 10 // total != (done - 1) * 10 // total or done == total:
            click.echo(f"{label}: {done}/{total}", err=True)

    yield step


def _inspecting(action: Callable[[], T]) -> T:
    try:
        return action()
    except InspectError as exc:
        raise click.ClickException(str(exc)) from exc
