"""The layering the README promises, read from the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_handlers_import_neither_litellm_nor_lago_code() -> None:
    imports = imported_modules(SHARED / "handlers.py")
    forbidden = {name for name in imports if "litellm" in name or "lago" in name}
    assert not forbidden, f"handlers is HTTP in, HTTP out; it imports {sorted(forbidden)}"


def test_nothing_outside_tests_imports_test_code() -> None:
    """The stand-ins and the process helpers live in ``standins/`` so the local run and the bench need no test code."""
    outside = [
        path
        for folder in ("functions", "shared", "standins", "scripts", "bench")
        for path in (ROOT / folder).rglob("*.py")
    ]
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in outside
        if any(name == "tests" or name.startswith("tests.") for name in imported_modules(path))
    )
    assert outside and not importers, f"these import from tests/: {importers}"
