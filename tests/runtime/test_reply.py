"""An event's reply, as the server's bridge uses it (``when_done``, then ``outcome``)."""

from __future__ import annotations

import gc
import weakref

import pytest

from runtime._engine._event import Reply
from storage import encode_value


class _Callback:
    """A callback that, like the bridge's, refers back to the reply it waits for."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.outcomes: list[object] = []

    def __call__(self) -> None:
        try:
            self.outcomes.append(self.reply.outcome())
        except KeyError as error:  # a callback must not raise
            self.outcomes.append(type(error))


@pytest.mark.parametrize("settle", ["result", "error"])
def test_a_reply_lets_go_of_its_callback_once_it_has_called_it(settle: str) -> None:
    # The bridge's callback holds the call that holds this reply: if the reply kept the
    # callback, every request would leave a reference cycle for the garbage collector.
    reply = Reply()
    callback = _Callback(reply)
    reply.when_done(callback)
    if settle == "result":
        reply.set_result(encode_value(7))
        assert callback.outcomes == [7]
    else:
        reply.fail(KeyError("gone"))
        assert callback.outcomes == [KeyError]
    collected = weakref.ref(callback)
    del callback
    was_enabled = gc.isenabled()
    gc.disable()  # freed by reference counting alone, not found later as a cycle
    try:
        assert collected() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_callback_given_after_the_outcome_runs_at_once() -> None:
    reply = Reply()
    reply.set_result(encode_value("done"))
    callback = _Callback(reply)
    reply.when_done(callback)
    assert callback.outcomes == ["done"]
