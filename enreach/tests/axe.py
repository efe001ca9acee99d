"""axe-core in a Playwright page: the WCAG 2 A and AA rules, violations counted per element.

axe-core comes from the test environment, never a CDN: the ``axe.min.js`` bundled in the PyPI package
``axe-playwright-python`` (requirements-dev.txt, installed by the Makefile). It is evaluated through the DevTools
protocol, which the pages' Content-Security-Policy (self only, no inline script) does not govern.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

RULES = ("wcag2a", "wcag2aa")
BLOCKING = ("critical", "serious")


@cache
def axe_source() -> str:
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


def axe_version() -> str:
    head = axe_source()[:200]
    return head.split("axe v", 1)[1].split()[0] if "axe v" in head else "?"


def axe_violations(page: Any, *, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """axe's violations of the WCAG 2 A and AA rules on the page as it is now (``exclude``: CSS selectors)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length ? { include: [document], exclude: exclude.map(s => [s]) } : document;
            const result = await window.axe.run(context, {
                runOnly: { type: "tag", values: tags }, resultTypes: ["violations"],
            });
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({ target: n.target.join(" "), html: n.html.slice(0, 160),
                                           summary: (n.failureSummary || "").slice(0, 300) })),
            }));
        }""",
        [list(RULES), list(exclude)],
    )


def blocking_count(violations: list[dict[str, Any]]) -> dict[str, int]:
    """The number of violating elements per impact, critical and serious only."""
    counts = dict.fromkeys(BLOCKING, 0)
    for violation in violations:
        if violation["impact"] in counts:
            counts[violation["impact"]] += len(violation["nodes"])
    return counts


def describe(violations: list[dict[str, Any]], limit: int = 4) -> str:
    """Blocking violations, readable: rule (impact): the first few elements and why."""
    lines = []
    for violation in violations:
        if violation["impact"] not in BLOCKING:
            continue
        lines.append(f"  {violation['id']} ({violation['impact']}, {len(violation['nodes'])}): {violation['help']}")
        for node in violation["nodes"][:limit]:
            lines.append(f"    {node['target']}: {node['summary'].splitlines()[-1] if node['summary'] else ''}")
    return "\n".join(lines)
