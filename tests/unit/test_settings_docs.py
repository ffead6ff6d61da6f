"""The settings are documented where they are declared, and README's table matches the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from standins.processes import ROOT

SETTINGS_PY = ROOT / "shared" / "settings.py"
# Set by the platform (Cloud Functions, the Firebase emulator), not by an operator.
PLATFORM = {"K_SERVICE", "FUNCTIONS_EMULATOR", "GCLOUD_PROJECT"}
# In the table because operators set them, but LiteLLM reads them, not Settings.
LITELLM_READS = {"OPENAI_API_KEY", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"}
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def variables_read_by_settings() -> set[str]:
    """Every string literal of settings.py that is an environment variable's name."""
    tree = ast.parse(SETTINGS_PY.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value)
    }


def variables_in_readme_table(readme: Path = ROOT / "README.md") -> set[str]:
    section = readme.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_variable_settings_reads_is_in_the_readme_table() -> None:
    missing = variables_read_by_settings() - PLATFORM - variables_in_readme_table()
    assert not missing, f"add a row to README's settings table for {sorted(missing)}"


def test_every_variable_in_the_readme_table_is_read_by_settings() -> None:
    stale = variables_in_readme_table() - LITELLM_READS - variables_read_by_settings()
    assert not stale, f"README's settings table lists {sorted(stale)}, which shared/settings.py does not read"


def test_every_settings_field_has_a_docstring_under_its_declaration() -> None:
    undocumented = []
    for cls in ast.walk(ast.parse(SETTINGS_PY.read_text())):
        if not isinstance(cls, ast.ClassDef):
            continue
        for statement, following in zip(cls.body, [*cls.body[1:], None], strict=True):
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                documented = (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                )
                if not documented:
                    undocumented.append(f"{cls.name}.{statement.target.id}")
    assert not undocumented, f"document these fields with a string right under them: {undocumented}"
