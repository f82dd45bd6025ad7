"""The ``dobox`` command line.

``dobox demo`` runs two small objects on a local data directory. The commands that serve and
inspect objects (``serve``, ``ls``, ``inspect``, ``sql``, ``backup``) arrive with the server.
"""

from __future__ import annotations

from pathlib import Path

import click
import trio

from actors import DurableObject
from storage import ForbiddenSqlError

from ._runtime import open_runtime


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
