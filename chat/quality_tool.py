"""The assistant's ``data_quality`` tool: what the newest data-quality report found ("which servers at AMS1 have an
expired warranty?"). Registered in ``chat.tools`` beside the CMDB look-ups, with the same result conventions."""

from __future__ import annotations

from typing import Any

from quality.rules import BUILTIN_RULE_IDS, KINDS, SEVERITIES
from quality.selectors import quality_findings, quality_rules_of, quality_run_latest

MAX_FINDINGS = 50
NO_REPORT = "No data-quality report yet: one is made after every successful export."

DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "data_quality",
        "description": "Data-quality findings of the latest export: objects missing a serial, primary IP, contacts, "
        "tenant, rack or cluster, duplicate names or serials, expired or soon-expiring warranties, old hardware, "
        "custom-field values outside their allowed set. Without a rule: the count per rule. With filters: the "
        "matching objects (name, site, value, NetBox link). Filters combine (AND).",
        "parameters": {
            "type": "object",
            "properties": {
                "rule": {
                    "type": "string",
                    "description": "A rule id: " + ", ".join(BUILTIN_RULE_IDS) + ", or allowed_<column> (e.g. "
                    "allowed_dtap_state). Use the counts (no arguments) to see every rule of the report.",
                },
                "severity": {"type": "string", "enum": list(SEVERITIES)},
                "site": {"type": "string", "description": "Part of the site name (case-insensitive), e.g. AMS1."},
                "name": {"type": "string", "description": "Part of the object's name (case-insensitive)."},
                "type": {"type": "string", "enum": ["device", "vm"], "description": "Only devices or only VMs."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_FINDINGS},
            },
            "additionalProperties": False,
        },
    },
}


class QualityToolError(ValueError):
    """The model called the tool wrongly; the message goes back to it."""


def data_quality(args: dict[str, Any]) -> dict[str, Any]:
    """The tool's result: counts per rule, and the findings matching the filters when any is given."""
    unknown = set(args) - set(DEFINITION["function"]["parameters"]["properties"])
    if unknown:
        raise QualityToolError(f"Unknown argument(s): {', '.join(sorted(unknown))}.")
    run = quality_run_latest()
    if run is None:
        raise QualityToolError(NO_REPORT)
    rules = quality_rules_of(run=run)
    result: dict[str, Any] = {
        "export": run.pk,
        "finished": run.finished.isoformat() if run.finished else None,
        "rules": [
            {"rule": r.rule, "label": r.label, "severity": r.severity, "count": r.count, "change": r.change}
            | ({"error": r.error} if r.error else {})
            for r in rules
        ],
    }
    rule = str(args.get("rule") or "").strip()
    severity = str(args.get("severity") or "").strip().lower()
    kind = str(args.get("type") or "").strip().lower()
    site = str(args.get("site") or "").strip().casefold()
    name = str(args.get("name") or "").strip().casefold()
    if rule and rule not in {r.rule for r in rules}:
        raise QualityToolError(f"Unknown rule {rule!r}; rules of the report: {', '.join(r.rule for r in rules)}.")
    if severity and severity not in SEVERITIES:
        raise QualityToolError(f'"severity" must be one of {", ".join(SEVERITIES)}.')
    if kind and kind not in KINDS:
        raise QualityToolError('"type" must be "device" or "vm".')
    if not (rule or severity or kind or site or name):
        return result
    try:
        limit = max(1, min(MAX_FINDINGS, int(args.get("limit") or MAX_FINDINGS)))
    except (TypeError, ValueError):
        raise QualityToolError('"limit" must be a number.') from None
    everything = quality_findings(run=run, rule=rule, severity=severity, kind=kind, limit=10**9).rows
    matches = [
        row
        for row in everything
        if (not site or site in row["site"].casefold()) and (not name or name in row["name"].casefold())
    ]
    result.pop("rules")
    result.update(
        total=len(matches),
        returned=min(limit, len(matches)),
        results=[
            {key: row[key] for key in ("name", "kind", "site", "rule", "severity", "value", "url") if row.get(key)}
            for row in matches[:limit]
        ],
    )
    return result
