"""The README and docs/ against the repository: the commands they give and the files they link."""

from __future__ import annotations

import re
from pathlib import Path

from standins.processes import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(document: Path) -> set[str]:
    """The ids GitHub gives the document's headings."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines()]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    assert readme_commands() == ["scripts/run", "scripts/test"]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "exec scripts/test", ".ci/run must run the README's test command, nothing else"


def test_every_file_and_heading_the_readme_and_docs_link_to_exists() -> None:
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = document.parent / path if path else document
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{document.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files or headings: {broken}"


def test_the_readme_links_every_page_of_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    unlinked = [page.name for page in DOCUMENTS[1:] if f"(docs/{page.name})" not in readme]
    assert not unlinked, f"the README's Documentation list misses {unlinked}"
