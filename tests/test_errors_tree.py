"""Every dobox error derives from ``DoboxError``, and docs/reference/errors.md draws them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from actors import ObjectAborted
from storage import DoboxError

TREE = Path(__file__).parent.parent / "docs" / "reference" / "errors.md"


def error_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in dobox's packages, but private ones and warnings
    (``PlainMethodWarning`` is documented with the classes it warns about)."""
    found: dict[str, type[BaseException]] = {}
    for package in ("storage", "actors", "runtime", "harness"):
        root = importlib.import_module(package)
        for module_info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if module_info.name.endswith("__main__"):  # runs the command line
                continue
            module = importlib.import_module(module_info.name)
            found.update({
                name: value for name, value in vars(module).items()
                if inspect.isclass(value) and issubclass(value, BaseException)
                and not issubclass(value, Warning)
                and value.__module__ == module.__name__ and not name.startswith("_")
            })
    return found


def test_every_error_derives_from_the_root() -> None:
    classes = error_classes()
    assert len(classes) > 30  # the walk found the packages' errors
    outside = {name for name, cls in classes.items()
               if not issubclass(cls, DoboxError) and cls is not ObjectAborted}
    assert outside == set()


def test_the_tree_names_every_error_under_its_parent() -> None:
    drawing = TREE.read_text().split("```")[1]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.strip().splitlines():
        match = re.match(r"^([│ ├└─]*)(\w+)", line)
        assert match is not None, line
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    classes = error_classes()
    assert set(parents) | {"DoboxError"} == set(classes) - {"ObjectAborted"}
    wrong = {name: parent for name, parent in parents.items()
             if classes[parent] not in classes[name].__bases__}
    assert wrong == {}
