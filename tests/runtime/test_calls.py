"""Stubs and RPC: by-value arguments, errors across the call, ordering, fetch, env."""

from __future__ import annotations

from pathlib import Path

import attrs
import httpx
import pytest
import trio

import runtime._engine._namespace
from actors import (
    DurableObject,
    InvalidArgumentsError,
    InvalidObjectId,
    InvalidObjectName,
    OverloadedError,
    PlainMethodWarning,
    RemoteError,
    UnknownMethodError,
)
from actors._ids import id_from_name
from runtime import RuntimeOptions, RuntimeSettings, open_runtime
from runtime._engine import check_objects
from storage import UnsupportedValueError
from tests.helpers import Counter, committed_view
from tests.runtime.server_objects import Guarded


async def test_increment_persists_and_is_durable_before_the_reply(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        assert await counter.increment(2) == 2
        # The reply came after the commit: a crash now would keep the write.
        path = next(tmp_path.glob("COUNTER/*/*.sqlite"))  # noqa: ASYNC240 - a test's peek
        with committed_view(path) as reader:
            (count,) = reader.execute("SELECT count(*) FROM _dobox_kv").fetchone()
        assert count == 1
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        assert await rt.namespace("COUNTER").get_by_name("a").increment() == 3


async def test_arguments_and_results_cross_by_value(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        mine = ["caller"]
        theirs = await counter.append_inside(mine)
        assert mine == ["caller"]
        assert theirs == ["caller", "inside"]
        assert await counter.echo((1, b"x", None)) == (1, b"x", None)


async def test_unsendable_arguments_fail_at_the_call(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        with pytest.raises(UnsupportedValueError, match=r"arguments of echo\(\)"):
            counter.echo({1, 2})
        assert rt.statistics().activations == 0


async def test_unsendable_result_is_a_remote_type_error(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        with pytest.raises(TypeError, match="cannot cross the call") as info:
            await counter.unsendable()
        assert isinstance(info.value, RemoteError)


async def test_storing_an_unsupported_value_is_a_type_error_that_says_so(
    tmp_path: Path,
) -> None:
    """The error names the value's type and path, keeps its dobox type name, is a TypeError
    on the caller's side, and does not claim the result was the problem."""
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        with pytest.raises(TypeError) as info:
            await counter.store_unsupported()
        error = info.value
        assert isinstance(error, RemoteError)
        assert error.type_name == "UnsupportedValueError"
        assert str(error).startswith("value for key 'stored'['inner'][0] is of type 'complex'")
        assert "cannot cross the call" not in str(error)
        with pytest.raises(TypeError, match=r"unsendable\(\) returned a value that cannot"):
            await counter.unsendable()


async def test_handler_errors_arrive_typed_and_do_not_reset(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        with pytest.raises(ValueError, match=r"^no good$") as info:
            await counter.fail("no good")
        error = info.value
        assert isinstance(error, RemoteError)
        assert (error.remote, error.reset, error.overloaded, error.retryable) == (
            True, False, False, False)
        assert error.type_name == "ValueError"
        assert error.object_id == counter.id.hex
        assert await counter.increment() == 2
        assert rt.statistics().resets == 0
        assert Counter.starts >= 1


async def test_unknown_and_reserved_methods_are_refused(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter, "GUARDED": Guarded}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        for name in ("nope", "on_start", "_private", "ctx"):
            with pytest.raises(UnknownMethodError, match=f"no RPC method '{name}'"):
                getattr(counter, name)
        with pytest.raises(AttributeError):
            counter.nope  # noqa: B018 - the attribute access itself is the call
        guarded = rt.namespace("GUARDED").get_by_name("g")
        for name in ("_secret", "__aenter__", "alarm", "on_start", "__init__", "__class__",
                     "_namespace", "ctx", "env"):
            with pytest.raises(UnknownMethodError,
                               match=r"it has: add, anything, call, id, name, subscribe\)"):
                guarded.call(name)
        with pytest.raises(UnknownMethodError):
            guarded._secret  # noqa: B018 - the attribute access itself is the call
        assert rt.statistics().activations == 0  # refused before anything was queued


async def test_methods_named_like_stub_attributes_are_called_with_call(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"GUARDED": Guarded}) as rt:
        stub = rt.namespace("GUARDED").get_by_name("g")
        assert stub.name == "g"  # the stub's own attribute comes first
        assert await stub.call("name") == "the name method"
        assert await stub.call("subscribe", "news") == "subscribed to news"
        assert await stub.call("call", number="555") == "calling 555"
        assert await stub.add(2, 3) == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param((), {}, "missing a required argument: 'a'", id="too-few"),
        pytest.param((1, 2, 3), {}, "too many positional arguments", id="too-many"),
        pytest.param((1,), {"c": 2}, "unexpected keyword argument 'c'", id="unknown-keyword"),
        pytest.param((1,), {"a": 2}, "multiple values for argument 'a'", id="twice"),
        pytest.param((1, 2, 3), {"scale": 2}, "too many positional", id="keyword-only"),
    ],
)
async def test_arguments_that_do_not_fit_are_refused_before_the_object_runs(
    tmp_path: Path, args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    async with open_runtime(tmp_path, objects={"GUARDED": Guarded}) as rt:
        stub = rt.namespace("GUARDED").get_by_name("g")
        with pytest.raises(InvalidArgumentsError, match=message) as info:
            stub.add(*args, **kwargs)
        assert str(info.value).startswith(
            "Guarded.add(a: int, b: int = 0, *, scale: int = 1) cannot take these arguments")
        assert isinstance(info.value, TypeError)
        assert rt.statistics().activations == 0
        assert await stub.add(1, 2, scale=3) == 9
        assert await stub.anything(1, 2, x=3) == 6


async def test_calls_through_a_stub_are_delivered_in_the_order_made(tmp_path: Path) -> None:
    class Log(DurableObject):
        async def add(self, item: int) -> None:
            log = await self.ctx.storage.get("log", [])
            await self.ctx.storage.put("log", [*log, item])

        async def log(self) -> list[int]:
            return await self.ctx.storage.get("log", [])  # type: ignore[no-any-return]

    async with open_runtime(tmp_path, objects={"LOG": Log}) as rt:
        stub = rt.namespace("LOG").get_by_name("x")
        async with trio.open_nursery() as nursery:
            for item in range(100):
                # trio may start these tasks in any order; the calls are made here, in order.
                nursery.start_soon(stub.add, item)
        assert await stub.log() == list(range(100))


async def test_ids_and_namespaces(tmp_path: Path) -> None:
    class Other(Counter):
        pass

    async with open_runtime(tmp_path, objects={"COUNTER": Counter, "OTHER": Other}) as rt:
        counters, others = rt.namespace("COUNTER"), rt.namespace("OTHER")
        by_name = counters.get_by_name("a")
        await by_name.increment()
        same = counters.get(counters.id_from_string(str(by_name.id)))
        assert await same.value() == 1
        assert await same.whoami() == "a"  # the object knows its name from its file
        assert await others.get_by_name("a").value() == 0  # same name, other namespace
        with pytest.raises(InvalidObjectId, match="not valid for this namespace"):
            others.get(by_name.id)
        with pytest.raises(InvalidObjectId, match="64 hex digits"):
            counters.id_from_string("../../etc/passwd")
        unique = counters.get(counters.new_unique_id())
        assert await unique.whoami() is None
        with pytest.raises(KeyError, match="no namespace 'NOPE'"):
            rt.namespace("NOPE")


async def test_a_namespace_keeps_recent_ids_without_changing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids are cached per name (two HMACs each otherwise), bounded; a cached id is the one
    computed, and a bad name is refused every time."""
    monkeypatch.setattr(runtime._engine._namespace, "MAX_CACHED_IDS", 3)
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counters = rt.namespace("COUNTER")
        names = [f"n{i}" for i in range(10)]
        first = [counters.id_from_name(name) for name in names]
        assert [counters.id_from_name(name) for name in names] == first
        assert first == [id_from_name(counters._key, name) for name in names]
        assert list(counters._ids) == names[-3:]
        for _ in range(2):
            with pytest.raises(InvalidObjectName):
                counters.id_from_name("x" * 2000)
        assert len(counters._ids) == 3


async def test_env_holds_namespaces_and_values(tmp_path: Path) -> None:
    class Reader(DurableObject):
        async def read(self) -> list[object]:
            return [self.env.GREETING, self.env["GREETING"], "READER" in self.env,
                    type(self.env.READER).__name__]

    async with open_runtime(tmp_path, objects={"READER": Reader},
                            env={"GREETING": "hello"}) as rt:
        assert await rt.namespace("READER").get_by_name("r").read() == [
            "hello", "hello", True, "Namespace"]


async def test_fetch_in_process(tmp_path: Path) -> None:
    class Web(DurableObject):
        async def fetch(self, request: httpx.Request) -> httpx.Response:
            body = request.read()
            return httpx.Response(201, headers={"x-path": request.url.path},
                                  content=body.upper())

    async with open_runtime(tmp_path, objects={"WEB": Web, "COUNTER": Counter}) as rt:
        stub = rt.namespace("WEB").get_by_name("w")
        response = await stub.fetch(httpx.Request("POST", "http://do/a/b?x=1", content=b"hi"))
        assert response.status_code == 201
        assert response.headers["x-path"] == "/a/b"
        assert response.read() == b"HI"
        with pytest.raises(UnknownMethodError, match=r"no fetch\(\) handler"):
            rt.namespace("COUNTER").get_by_name("c").fetch(httpx.Request("GET", "http://do/"))


@pytest.mark.parametrize(
    ("objects", "error", "message"),
    [
        pytest.param({}, ValueError, "at least one binding", id="empty"),
        pytest.param({"bad name": Counter}, ValueError, "must be a Python identifier",
                     id="binding"),
        pytest.param({"../x": Counter}, ValueError, "must be a Python identifier",
                     id="traversal"),
        pytest.param({"C": object}, TypeError, "must be a DurableObject subclass",
                     id="not-an-object"),
    ],
)
async def test_bad_runtime_options(
    tmp_path: Path, objects: dict[str, type], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        async with open_runtime(tmp_path, objects=objects):
            pass


async def test_bad_numeric_options(tmp_path: Path) -> None:
    for option, value in [("idle_timeout", 0), ("max_live_objects", 0),
                          ("max_queued_per_object", 1.5), ("event_timeout", -1),
                          ("durability", "fast")]:
        with pytest.raises(ValueError, match=option.split("_")[0]):
            async with open_runtime(tmp_path, objects={"C": Counter}, **{option: value}):
                pass


def test_runtime_settings_name_every_option() -> None:
    assert set(RuntimeSettings.__annotations__) == set(attrs.fields_dict(RuntimeOptions))


def test_bad_options_fail_when_made() -> None:
    with pytest.raises(ValueError, match="idle_connection_timeout must be positive or None"):
        RuntimeOptions(idle_connection_timeout=0)
    with pytest.raises(ValueError, match="alarm_retry_jitter"):
        RuntimeOptions(alarm_retry_jitter=2)


async def test_options_pass_whole_and_keywords_change_them(tmp_path: Path) -> None:
    options = RuntimeOptions(max_queued_per_object=1, durability="normal")
    async with open_runtime(tmp_path, objects={"C": Counter}, options=options) as rt:
        stub = rt.namespace("C").get_by_name("a")
        first, second = stub.increment(), stub.increment()
        assert await first == 1
        with pytest.raises(OverloadedError):
            await second
    async with open_runtime(tmp_path, objects={"C": Counter}, options=options,
                            max_queued_per_object=2) as rt:
        stub = rt.namespace("C").get_by_name("a")
        first, second = stub.increment(), stub.increment()
        assert (await first, await second) == (2, 3)


class WithAPlainHelper(DurableObject):
    async def total(self) -> int:
        return self.subtotal() + 1

    def subtotal(self) -> int:
        return 41


@pytest.mark.filterwarnings("ignore::actors.PlainMethodWarning")
async def test_a_plain_def_is_named_when_bound_and_when_called(tmp_path: Path) -> None:
    """A public plain def is not an RPC method: before, callers only learnt that the class
    had no such method, and nothing said so when it was bound."""
    with pytest.warns(PlainMethodWarning, match=r"WithAPlainHelper\.subtotal is a plain def"):
        check_objects({"HELPED": WithAPlainHelper})
    with pytest.warns(PlainMethodWarning):  # open_runtime binds the class the same way
        async with open_runtime(tmp_path, objects={"HELPED": WithAPlainHelper}) as rt:
            stub = rt.namespace("HELPED").get_by_name("a")
    async with open_runtime(tmp_path, objects={"HELPED": WithAPlainHelper}) as rt:
        stub = rt.namespace("HELPED").get_by_name("a")
        assert await stub.total() == 42
        with pytest.raises(UnknownMethodError, match="is a plain def, and RPC methods "
                                                     "are async def"):
            await stub.subtotal()


async def test_a_typed_namespace_is_the_same_namespace(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        typed = rt.namespace("COUNTER", Counter)
        assert typed is rt.namespace("COUNTER")
        assert rt.namespace("COUNTER", DurableObject) is typed  # a base of the class will do
        assert await typed.get_by_name("a").increment(2) == 2
        with pytest.raises(TypeError, match="namespace 'COUNTER' hosts Counter, not"):
            rt.namespace("COUNTER", WithAPlainHelper)


class Blame(DurableObject):
    async def store_set(self) -> None:
        await self.ctx.storage.put("s", {1, 2})

    async def return_object(self) -> object:
        return object()


async def test_an_error_blames_the_put_or_the_result_whichever_failed(tmp_path: Path) -> None:
    """Before, a put that failed inside a method was reported as the method's result."""
    async with open_runtime(tmp_path, objects={"BLAME": Blame}) as rt:
        stub = rt.namespace("BLAME").get_by_name("a")
        with pytest.raises(TypeError) as put:
            await stub.store_set()
        assert str(put.value).startswith("value for key 's' is of type 'set', which cannot "
                                          "be stored")
        assert "returned" not in str(put.value)
        with pytest.raises(TypeError, match=r"^return_object\(\) returned a value that cannot "
                                            r"cross the call: result is of type 'object'"):
            await stub.return_object()
