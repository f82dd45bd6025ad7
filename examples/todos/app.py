"""A per-tenant todo list with a live view of what is left to do.

    dobox serve examples.todos.app:OBJECTS --data ./todo-data

    # add and finish todos over RPC
    curl -X POST localhost:8787/default/TODOS/home/rpc/add -d '{"args": ["buy milk"]}'
    # and watch the open ones live (Python; any WebSocket client can speak the protocol in
    # docs/reference/collections.md)
    async with Client("http://127.0.0.1:8787") as client:
        todos = client.namespace("TODOS").get_by_name("home")
        async with todos.subscribe("todos", field("done") == False, order_by="created") as feed:
            async for message in feed:
                print(message)

Each list is one object; with a tokens file (``--tokens``) each tenant has its own lists.
Records are ``Todo`` instances (validated on every write); the open todos are an indexed
subset that the live query follows commit by commit.
"""

from __future__ import annotations

import uuid

import attrs

from dobox import DurableObject, collection, field


def _title(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
        raise ValueError(f"'{attribute.name}' must be 1 to 200 characters, not {value!r}")


@attrs.define
class Todo:
    id: str
    title: str = attrs.field(validator=_title)
    created: float = 0.0
    done: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


class TodoList(DurableObject):
    todos = collection("todos", record_type=Todo, indexes=[field("done")])

    async def add(self, title: str) -> dict[str, object]:
        todo = self.todos.insert(Todo(uuid.uuid4().hex, title, self.ctx.now()))
        return attrs.asdict(todo)

    async def set_done(self, todo_id: str, done: bool = True) -> dict[str, object]:
        return attrs.asdict(self.todos.update(todo_id, {"done": done}))

    async def remove(self, todo_id: str) -> bool:
        return self.todos.delete(todo_id)

    async def open_todos(self) -> list[dict[str, object]]:
        page = self.todos.load_subset(field("done") == False, order_by="created")  # noqa: E712
        return [attrs.asdict(todo) for todo in page.records]


OBJECTS = {"TODOS": TodoList}
