"""The packages and roles depend on each other as docs/architecture.md draws them."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

MAY_IMPORT: dict[str, set[str]] = {
    # A room (a package, or one of runtime's roles) and the rooms it may import from; the
    # same table is in docs/architecture.md.
    "storage": set(),
    "actors": {"storage"},
    "runtime._names": {"actors"},
    "runtime._engine": {"actors", "storage"},
    "runtime.client": {"actors", "storage", "runtime._names"},
    "runtime.server": {"actors", "storage", "runtime._names", "runtime._engine",
                       "runtime.cluster"},
    "runtime.cli": {"actors", "storage", "runtime._engine", "runtime.server",
                    "runtime.cluster"},
    "runtime.cluster": {"actors", "storage", "runtime._engine"},
    "runtime": {"actors", "storage", "runtime._engine", "runtime.client", "runtime.server",
                "runtime.cli", "runtime.cluster"},
    "harness": {"actors", "storage", "runtime", "runtime.client", "runtime.server"},
}

ROLE_PACKAGES = ("runtime._engine", "runtime.client", "runtime.server", "runtime.cli",
                 "runtime.cluster")


def room_of(module: str) -> str:
    for role in (*ROLE_PACKAGES, "runtime._names"):
        if module == role or module.startswith(role + "."):
            return role
    return module.split(".")[0]


def modules() -> Iterator[tuple[str, Path]]:
    for package in ("storage", "actors", "runtime", "harness"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports_of(module: str, path: Path) -> Iterator[str]:
    """Every dobox module ``module`` imports, at any depth (TYPE_CHECKING blocks and
    imports inside functions included: a cycle there is a cycle of the design)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = module.split(".")
                if not is_package:
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        mine = room_of(module)
        for target in imports_of(module, path):
            if target.split(".")[0] not in ("storage", "actors", "runtime", "harness"):
                continue
            theirs = room_of(target)
            if theirs != mine and not (mine == "runtime" and target == "runtime"):
                graph.setdefault(mine, set()).add(theirs)
    return graph


def test_rooms_import_only_what_the_table_allows() -> None:
    graph = room_graph()
    wrong = {room: sorted(targets - MAY_IMPORT[room]) for room, targets in graph.items()
             if targets - MAY_IMPORT[room]}
    assert wrong == {}


def test_no_import_cycle_crosses_a_room() -> None:
    graph = room_graph()
    # The table above is acyclic, and the graph is within it; check the graph itself too.
    seen: set[str] = set()
    path: list[str] = []

    def visit(room: str) -> None:
        assert room not in path, f"import cycle: {' -> '.join([*path, room])}"
        if room in seen:
            return
        path.append(room)
        for target in sorted(graph.get(room, ())):
            visit(target)
        path.pop()
        seen.add(room)

    for room in sorted(graph):
        visit(room)


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    program = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True, cwd=ROOT, timeout=120)
    return set(result.stdout.split())


@pytest.mark.parametrize("statement", [
    "from runtime import Client, ClientStub, RemoteWebSocket, LiveQueryError",
    "import runtime.client",
])
def test_the_client_loads_neither_the_engine_nor_the_server(statement: str) -> None:
    loaded = loaded_after(statement)
    assert "runtime.client" in loaded
    heavy = {module for module in loaded
             if room_of(module) in ("runtime._engine", "runtime.server", "runtime.cli")
             or module.split(".")[0] in ("uvicorn", "hypercorn", "prometheus_client")}
    assert heavy == set()


def test_objects_do_not_load_the_runtime() -> None:
    loaded = loaded_after("import actors")
    assert {module for module in loaded if module.split(".")[0] == "runtime"} == set()


def test_the_runtime_still_exports_every_role() -> None:
    loaded = loaded_after("from runtime import open_runtime, serve, Client")
    assert {"runtime._engine", "runtime.server", "runtime.client"} <= loaded
