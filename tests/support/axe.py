"""axe-core (npm, pinned in package-lock.json) run in a Playwright page: the web platform's own
accessibility checks, limited to the WCAG 2.0, 2.1 and 2.2 A and AA rules."""

from __future__ import annotations

from functools import cache

from playwright.sync_api import Page

from standins.processes import ROOT

WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


@cache
def _axe_source() -> str:
    return (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()


def axe_violations(page: Page) -> list[str]:
    """Each violation of the page as it is now: "rule (impact): the elements it found", one line each."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=_axe_source())
    violations = page.evaluate(
        "tags => axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })"
        ".then(result => result.violations.map(v => ({ id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary.replace(/\\s+/g, ' ')) })))",
        WCAG_A_AA,
    )
    return [f"{v['id']} ({v['impact']}): {' | '.join(v['nodes'])}" for v in violations]
