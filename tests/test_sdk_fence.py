"""singer-sdk's private members and internal layouts are used in `sdk_compat.py` only.

Scans every module of the package with `ast` (not a list of names): an attribute or an
import that names a private member of the installed singer-sdk, the SDK's state layout
keys, its `state_manager`, or a `super(Tap, ...)` call, anywhere but `sdk_compat.py`,
fails with the file and line.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import singer_sdk

PACKAGE = Path(__file__).resolve().parents[1] / "tap_voluum"
DOOR = PACKAGE / "sdk_compat.py"
# The SDK's state layout (`singer_sdk.helpers._state`): bookmarks, partitions, markers.
STATE_LAYOUT = frozenset(
    {
        "bookmarks",
        "partitions",
        "replication_key",
        "replication_key_value",
        "progress_markers",
        "starting_replication_value",
        "replication_key_signpost",
    }
)
SDK_INTERNALS = frozenset({"state_manager"})


@cache
def sdk_private_names() -> frozenset[str]:
    """Every `_name` the installed singer-sdk defines (methods, attributes, functions)."""
    names: set[str] = set()
    for path in Path(singer_sdk.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


def trespasses(path: Path) -> list[str]:
    """Where a module reaches into singer-sdk's internals."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = sdk_private_names()
    found: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and (node.attr in private or node.attr in SDK_INTERNALS):
            found.append(f"{path.name}:{line}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            parts = (node.module or "").split(".")
            names = [a.name for a in node.names]
            if any(p.startswith("_") for p in parts) or any(n in private for n in names):
                found.append(f"{path.name}:{line}: from {node.module} import {names}")
        elif isinstance(node, ast.Constant) and node.value in STATE_LAYOUT:
            found.append(f"{path.name}:{line}: state key {node.value!r}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "super"
            and node.args
        ):
            found.append(f"{path.name}:{line}: super({ast.unparse(node.args[0])}, ...)")
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != DOOR)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sdk_internals_outside_the_door(path: Path) -> None:
    found = trespasses(path)
    assert not found, "SDK internals outside sdk_compat.py:\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(stream, cls, Tap):\n"
        "    stream._write_state_message()\n"
        "    stream.state_manager.is_flushed = False\n"
        "    state = {'replication_key_value': 1}\n"
        "    super(Tap, cls).invoke()\n"
        "from singer_sdk.helpers._state import increment_state\n",
        encoding="utf-8",
    )
    found = trespasses(sample)
    assert len(found) == 5, found


def test_the_door_is_where_the_internals_are() -> None:
    assert trespasses(DOOR), "sdk_compat.py uses no SDK internals: the scan is broken"
