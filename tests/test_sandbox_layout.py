"""Layout rules of the code: file sizes, the sandbox's independence, and its truth oracle's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tap_voluum.client import DENIED_ENDPOINTS
from tests.test_imports import find_circle
from voluum_sandbox.auth import ACCESS_KEY_DENY_LIST

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tap_voluum"
SANDBOX = ROOT / "sandbox" / "voluum_sandbox"
MAX_LINES = 500
# The report engine: query parsing, its columns, aggregation, rendering and cache, its dimension
# tables and its local-window arithmetic. The truth oracle must reach none of them.
ENGINE_MODULES = frozenset(
    {"columns", "conversion_report", "dimensions", "query", "reports", "timezones"}
)
TRUTH_MODULE = "truth"


def sandbox_imports(module: str) -> set[str]:
    """Names of the sandbox modules that `voluum_sandbox/<module>.py` imports (any branch).

    Raises when an import leaves the sandbox package for the rest of ``tap_voluum``.
    """
    tree = ast.parse((SANDBOX / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                raise AssertionError(f"{module}.py: relative import above the sandbox")
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:  # from . import x
                    found.update(alias.name for alias in node.names)
                continue
            targets = [node.module or ""]
        else:
            continue
        for target in targets:
            if target == "voluum_sandbox" or target.startswith("voluum_sandbox."):
                rest = target.removeprefix("voluum_sandbox").lstrip(".")
                if rest:
                    found.add(rest.split(".")[0])
            elif target == "tap_voluum" or target.startswith("tap_voluum."):
                raise AssertionError(f"{module}.py imports {target} (outside the sandbox)")
    return found


def sandbox_modules() -> list[str]:
    return sorted(p.stem for p in SANDBOX.glob("*.py"))


def test_sandbox_deny_list_matches_the_taps() -> None:
    sandbox = {tuple(entry.split(" ", 1)) for entry in ACCESS_KEY_DENY_LIST}
    assert len(sandbox) == len(ACCESS_KEY_DENY_LIST)
    assert sandbox == set(DENIED_ENDPOINTS)


@pytest.mark.parametrize(
    "path",
    sorted([*PACKAGE.rglob("*.py"), *SANDBOX.rglob("*.py")]),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_python_file_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines"


@pytest.mark.parametrize("module", sandbox_modules())
def test_sandbox_imports_nothing_from_the_rest_of_the_tap(module: str) -> None:
    unknown = sandbox_imports(module) - set(sandbox_modules())
    assert not unknown, f"{module}.py imports unknown sandbox modules {sorted(unknown)}"


def test_truth_does_not_import_the_report_engine() -> None:
    modules = set(sandbox_modules())
    assert not ENGINE_MODULES - modules, "ENGINE_MODULES names a module that no longer exists"
    assert TRUTH_MODULE in modules
    direct = sandbox_imports(TRUTH_MODULE)
    assert not direct & ENGINE_MODULES, f"truth.py imports {sorted(direct & ENGINE_MODULES)}"
    # Nor through a module it imports.
    seen: set[str] = set()
    todo = list(direct)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(sandbox_imports(module))
    assert not seen & ENGINE_MODULES, f"truth.py reaches {sorted(seen & ENGINE_MODULES)}"


def import_cycle() -> list[str] | None:
    """A cycle of the sandbox's module import graph (every import, ``TYPE_CHECKING`` ones too)."""
    return find_circle({m: sandbox_imports(m) for m in sandbox_modules()})


def test_sandbox_import_graph_has_no_cycle() -> None:
    cycle = import_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
