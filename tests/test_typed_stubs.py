"""Typed stubs: with dobox's mypy plugin, a stub of a namespace made with its class
type-checks as that class's RPC methods (tests/typing/ holds the two programs mypy reads;
they are never run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).parent / "typing"


def mypy(program: str, tmp_path: Path) -> list[str]:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nplugins = dobox.mypy_plugin\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
         str(tmp_path / "cache"), "--no-error-summary", str(PROGRAMS / program)],
        capture_output=True, text=True, timeout=300, check=False)
    assert not result.stderr, result.stderr
    return [line.split(": ", 1)[1] for line in result.stdout.splitlines()]


def test_calls_that_fit_the_class_pass(tmp_path: Path) -> None:
    assert mypy("typed_stubs_pass.py", tmp_path) == []


def test_an_unknown_method_and_a_wrong_type_are_errors(tmp_path: Path) -> None:
    """Without the plugin, all four passed mypy --strict."""
    assert mypy("typed_stubs_fail.py", tmp_path) == [
        'error: Incompatible types in assignment (expression has type "int", variable has '
        'type "str")  [assignment]',
        'error: "Counter" has no RPC method "incremnt" (not a method of it)  [misc]',
        'error: Argument 1 to "increment" of "Counter" has incompatible type "str"; expected '
        '"int"  [arg-type]',
        'error: "Counter" has no RPC method "helper" (a plain def, not async)  [misc]',
    ]
