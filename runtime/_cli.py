"""The ``dobox`` command line.

``dobox demo`` shows one object's storage at work on a local data directory. The commands
that host and inspect objects (``serve``, ``ls``, ``inspect``, ``sql``, ``backup``) arrive
with the runtime and the server.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import trio

from storage import ForbiddenSqlError, Storage, open_storage


@click.group()
@click.version_option(package_name="dobox")
def main() -> None:
    """dobox: Durable Objects for Python, on trio."""


@main.command()
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dobox-demo"),
    show_default=True,
    help="Directory that holds the demo object's database.",
)
def demo(data: Path) -> None:
    """Run a visit counter on one object's database; run it again and it remembers."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / "COUNTER" / "demo.sqlite"
    path.parent.mkdir(exist_ok=True)
    with open_storage(path, name="demo", namespace="COUNTER", class_name="Counter") as storage:
        trio.run(_visit, storage)
    click.echo(f"\nThe object's database is {path}. Run `dobox demo` again: it remembers.")


async def _visit(storage: Storage) -> None:
    sql = storage.sql
    sql.exec("CREATE TABLE IF NOT EXISTS visits (at REAL NOT NULL, note TEXT)")

    # KV and SQL writes of one turn commit together, durably (fsync), or not at all.
    visits = await storage.get("visits", 0) + 1
    await storage.put("visits", visits)
    sql.exec("INSERT INTO visits (at, note) VALUES (?, ?)", time.time(), f"visit {visits}")
    await storage.sync()
    click.echo(f"visit number {visits} (stored under the KV key 'visits')")

    # A transaction that raises leaves no trace.
    async def doomed() -> None:
        await storage.put("visits", -1)
        raise RuntimeError("changed my mind")

    try:
        await storage.transaction(doomed)
    except RuntimeError as exc:
        click.echo(f"a transaction raised ({exc}); visits is still {await storage.get('visits')}")

    recent = sql.exec("SELECT note FROM visits ORDER BY at DESC LIMIT 3").to_list()
    click.echo("latest visits: " + ", ".join(row["note"] for row in recent))
    click.echo(f"database size: {sql.database_size:,} bytes")

    try:
        sql.exec("SELECT * FROM _dobox_kv")
    except ForbiddenSqlError as exc:
        click.echo(f"object SQL cannot touch the engine's tables: {exc}")
