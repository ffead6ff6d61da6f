"""The layering docs/layout.md promises, read from the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent / "shared"


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
