"""docs/tutorial.md runs as written: its files, then its commands in a shell, with their
output as the page shows it.

The one exception is the page's first block (making a directory and a virtual environment
and installing dobox into it): this test runs in the environment it already has, with its
``bin`` directory first on ``PATH``. The server is started where the page starts it, in
the background, and stopped with SIGINT where the page says to press Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
FILE_LABEL = re.compile(r"^`([\w.]+)`[ :]")


def steps(text: str) -> list[tuple[str, str, str, str]]:
    """Each fenced block: its language, its body, the paragraph before it, its section."""
    found = []
    for match in BLOCK.finditer(text):
        before = text[:match.start()].rstrip("\n")
        paragraph = before.split("\n\n")[-1]
        section = re.findall(r"^## (.*)$", before, re.MULTILINE)[-1]
        found.append((match.group(1), match.group(2), paragraph, section))
    return found


def matches(expected: str, actual: str) -> bool:
    """Whether an output line matches the page's, where ``...`` stands for anything."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


@pytest.mark.timeout(300)
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    project = tmp_path / "notebook"
    project.mkdir()
    environment = {k: v for k, v in os.environ.items()
                   if k != "PYTHONPATH" and not k.startswith("DOBOX_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    server: subprocess.Popen[bytes] | None = None
    pending: list[str] | None = None  # the output lines of the last shell block
    try:
        for number, (language, body, paragraph, section) in enumerate(steps(
                TUTORIAL.read_text())):
            if number == 0:
                assert language == "sh"
                assert "pip install" in body
                continue
            label = FILE_LABEL.match(paragraph)
            if label is not None:
                (project / label.group(1)).write_text(body)
                continue
            if language == "text":
                assert pending is not None, "an output block follows a shell block"
                expected = body.rstrip("\n").splitlines()
                assert len(pending) == len(expected), (pending, expected)
                for want, got in zip(expected, pending, strict=True):
                    assert matches(want, got), (want, got)
                pending = None
                continue
            assert language == "sh", language
            if section.startswith("6.") and server is not None:  # "Stop the server with Ctrl-C"
                server.send_signal(signal.SIGINT)
                assert server.wait(timeout=60) == 0
                assert server.stderr is not None
                server.stderr.close()
                server = None
            pending = []
            for command in body.rstrip("\n").splitlines():
                if command.startswith("dobox serve "):
                    server = subprocess.Popen(["bash", "-c", command], cwd=project,
                                              env=environment, stderr=subprocess.PIPE)
                    assert server.stderr is not None
                    line = server.stderr.readline().decode()
                    assert "Ctrl-C stops" in line, line
                    continue
                result = subprocess.run(["bash", "-c", command], cwd=project,
                                        env=environment, capture_output=True, text=True,
                                        timeout=120, check=False)
                assert result.returncode == 0, (command, result.stdout, result.stderr)
                pending += result.stdout.splitlines()
        assert pending is None, "every shell block's output was checked"
    finally:
        if server is not None:
            server.kill()
            server.wait()
            assert server.stderr is not None
            server.stderr.close()
