"""The errors callers see: Durable Objects' flags, and builtin types kept across a call."""

from __future__ import annotations

import copy
import pickle

import pytest

from actors import ObjectResetError, OverloadedError, RemoteError
from actors._errors import remote_error_for


@pytest.mark.parametrize(
    ("raised", "builtin"),
    [
        pytest.param(ValueError("bad"), ValueError, id="ValueError"),
        pytest.param(KeyError("missing"), KeyError, id="KeyError"),
        pytest.param(ZeroDivisionError("zero"), ArithmeticError, id="ZeroDivisionError"),
        pytest.param(NotImplementedError("later"), RuntimeError, id="NotImplementedError"),
    ],
)
def test_builtin_exceptions_keep_their_type(raised: Exception, builtin: type) -> None:
    error = remote_error_for(raised, object_id="ab" * 32)
    assert isinstance(error, RemoteError)
    assert isinstance(error, builtin)
    assert error.type_name == type(raised).__name__
    assert (error.remote, error.retryable, error.overloaded, error.reset) == (
        True, False, False, False)
    assert error.object_id == "ab" * 32


def test_message_is_the_original_message() -> None:
    error = remote_error_for(KeyError("missing"), object_id=None)
    assert str(error) == "'missing'"  # str() of the original KeyError


def test_application_exceptions_keep_their_name() -> None:
    class InsufficientFunds(Exception):
        pass

    error = remote_error_for(InsufficientFunds("balance 3 < 5"), object_id=None)
    assert type(error) is RemoteError
    assert error.type_name == "InsufficientFunds"
    assert str(error) == "balance 3 < 5"


def test_flags_of_overload_and_reset() -> None:
    overloaded = OverloadedError("too many", object_id="x")
    assert (overloaded.overloaded, overloaded.remote, overloaded.retryable) == (True, True, False)
    reset = ObjectResetError("reset", object_id="x")
    assert (reset.reset, reset.retryable, reset.remote) == (True, True, True)


@pytest.mark.parametrize("error", [
    remote_error_for(ValueError("bad"), object_id="x"),
    OverloadedError("too many", object_id="x"),
    ObjectResetError("reset", object_id="x"),
])
def test_errors_copy_and_pickle(error: RemoteError) -> None:
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert (clone.type_name, clone.reset, clone.overloaded) == (
            error.type_name, error.reset, error.overloaded)
