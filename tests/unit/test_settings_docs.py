"""The settings are documented where they are declared, and docs/settings.md's table matches the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from standins.processes import ROOT

SETTINGS_PY = ROOT / "shared" / "settings.py"
SETTINGS_MD = ROOT / "docs" / "settings.md"
# Set by the platform (Cloud Functions, the Firebase emulator), not by an operator.
PLATFORM = {"K_SERVICE", "FUNCTIONS_EMULATOR", "GCLOUD_PROJECT"}
# In the table because operators set them, but LiteLLM reads them, not Settings.
LITELLM_READS = {
    "OPENAI_API_KEY",
    "OPENAI_API_BASE",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "VERTEXAI_PROJECT",
    "VERTEXAI_LOCATION",
}
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def variables_read_by_settings() -> set[str]:
    """Every string literal of settings.py that is an environment variable's name."""
    tree = ast.parse(SETTINGS_PY.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value)
    }


def variables_in_table(document: Path, header: str) -> set[str]:
    """The variable names in the first cells of the table under ``header`` (its first line)."""
    text = document.read_text()
    assert header in text, f"{document.relative_to(ROOT)} has no table headed {header!r}"
    rows = text.split(header, 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # past the header's rule
    names: set[str] = set()
    for row in rows:
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    return names


def variables_in_settings_table() -> set[str]:
    return variables_in_table(SETTINGS_MD, "| variable | meaning | default |")


def test_every_variable_settings_reads_is_in_the_settings_table() -> None:
    missing = variables_read_by_settings() - PLATFORM - variables_in_settings_table()
    assert not missing, f"add a row to docs/settings.md's table for {sorted(missing)}"


def test_every_variable_in_the_settings_table_is_read_by_settings() -> None:
    stale = variables_in_settings_table() - LITELLM_READS - variables_read_by_settings()
    assert not stale, f"docs/settings.md's table lists {sorted(stale)}, which shared/settings.py does not read"


def test_what_the_readme_says_a_deployer_must_set_is_a_setting_deploy_sh_or_setup_reads() -> None:
    deploy_sh = (ROOT / "deploy.sh").read_text()
    setup = (ROOT / "scripts" / "setup").read_text()
    names = variables_in_table(ROOT / "README.md", "| setting | where | why |")
    assert {"CHAT_MODELS", "LAGO_API_KEY", "PROJECT_ID"} <= names, names
    unknown = {
        name
        for name in names - variables_in_settings_table()
        if not re.search(rf"\b{name}\b", deploy_sh) and f"${{{name}" not in setup
    }
    assert not unknown, f"the README asks deployers to set {sorted(unknown)}, which nothing reads"


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
