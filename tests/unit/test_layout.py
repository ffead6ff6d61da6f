"""The layering docs/layout.md promises, read from the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
# The HTTP layer: plumbing, then the endpoints. Everything else in shared/ sits below it.
HTTP_LAYER = {"serving", "routes"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


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


def test_the_http_layer_imports_neither_litellm_nor_lago_code() -> None:
    for name in HTTP_LAYER:
        imports = imported_modules(SHARED / f"{name}.py")
        forbidden = {module for module in imports if "litellm" in module or "lago" in module}
        assert not forbidden, f"{name} is HTTP in, HTTP out; it imports {sorted(forbidden)}"


def test_engines_sit_below_the_http_layer() -> None:
    for path in sorted(SHARED.glob("*.py")):
        if path.stem in HTTP_LAYER or path.stem == "__init__":
            continue
        imports = imported_modules(path)
        upward = {module for module in imports if module.lstrip(".") in HTTP_LAYER or module == "flask"}
        assert not upward, f"{path.stem} is below the HTTP layer; it imports {sorted(upward)}"
