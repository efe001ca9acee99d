"""What a delivery says: the documented JSON body, the e-mail's text and HTML parts, and the chat text.

Built at send time from the event's facts and the delivery's digest (chosen when the event was recorded), so every
attempt of one delivery sends the same content.

The generic webhook body (``payload``)::

    {"id": "<delivery id>", "event": "export.changes", "test": false, "created": "<ISO time of the event>",
     "title": "...", "subscription": 12,
     "run": {"id": 42, "status": "succeeded", "trigger": "schedule", "started": "...", "finished": "...",
             "error": "", "url": "<run page>", "api_url": "<run in the API>"},
     # export.changes
     "counts": {"added": 3, "changed": 20, "removed": 2}, "matched": 25, "total": {"added": ..., ...},
     "changes": [{"kind": "device", "change": "changed", "netbox_id": 7, "name": "srv-7", "url": "<NetBox page>",
                  "fields": {"Status": ["Active", "Offline"]}}],            # the first 50
     "changes_url": "<the run page's changes>",
     # export.failed
     "failure": {"error": "...", "abandoned": false, "never_started": false, "retry_coming": false, ...},
     # publish.failed
     "publications": [{"target": "confluence", "label": "Confluence", "detail": "..."}],
     # export.stale
     "stale": {"hours": 26, "since": "...", "age_hours": 30.5, "last_success": {run...} or null},
     # quality.changed
     "rules": [{"rule": "device_no_serial", "label": "...", "severity": "warning", "previous": 3, "count": 5}],
     "new_findings": 2, "findings": [{"rule", "severity", "kind", "id", "name", "site", "value", "url"}],
     "quality_url": "<the data-quality page>"}
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from exports.models import ExportRun
from integrations.netbox.factory import netbox_object_url, netbox_url
from notifications import selectors
from notifications.models import Delivery, EventKind
from notifications.transports import Message


def absolute(path: str) -> str:
    """``path`` on ``ENREACH_BASE_URL``: links in messages must work outside the app."""
    return settings.ENREACH_BASE_URL.rstrip("/") + path


def run_brief(run: ExportRun | None) -> dict[str, Any] | None:
    """The facts about a run every message carries."""
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "started": run.started.isoformat() if run.started else None,
        "finished": run.finished.isoformat() if run.finished else None,
        "devices": run.devices,
        "vms": run.vms,
        "error": run.error,
        "netbox_url": run.netbox_url,
        # Paths, not reverse(): loading the URLconf would cost the export's process a second or two (this runs in
        # the after-run step; notifications/tests/test_messages.py checks the paths against the URLconf).
        "url": absolute(f"/exports/runs/{run.pk}/"),
        "api_url": absolute(f"/api/exports/runs/{run.pk}/"),
    }


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def message_build(delivery: Delivery) -> Message:
    """The message of one delivery."""
    event = delivery.event
    data = event.data or {}
    payload: dict[str, Any] = {
        "id": str(delivery.pk),
        "event": event.kind,
        "test": delivery.test,
        "created": event.created.isoformat(),
        "subscription": delivery.subscription_id,
        "run": data.get("run"),
    }
    lines: list[str] = []
    links: list[tuple[str, str]] = []
    table: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    run = data.get("run") or {}
    if run:
        links.append((f"Export #{run['id']}", run["url"]))
    if delivery.test:
        title = "Enreach tools: test notification"
        lines.append(
            f"This is a test notification for the channel {data.get('channel', '')!s}"
            + (f", sent by {data['by']}." if data.get("by") else ".")
        )
        lines.append("If you can read it, notifications reach this channel.")
        links.append(("Enreach tools", absolute("/")))
    elif event.kind == EventKind.EXPORT_FAILED:
        failure = {
            k: data.get(k) for k in ("error", "abandoned", "never_started", "attempt", "retry_coming", "retry_run")
        }
        payload["failure"] = failure
        what = "was abandoned" if failure["abandoned"] else "never started" if failure["never_started"] else "failed"
        title = f"Export #{run.get('id')} {what}"
        lines.append(f"Export #{run.get('id')} ({run.get('trigger')}) {what}: {failure['error'] or 'no reason given'}")
        lines.append(
            "A retry is coming by itself."
            if failure["retry_coming"]
            else "No retry is coming: the last good files stay."
        )
    elif event.kind == EventKind.PUBLISH_FAILED:
        payload["publications"] = data.get("publications", [])
        targets = ", ".join(p["label"] for p in payload["publications"])
        title = f"Publishing export #{run.get('id')} failed ({targets})"
        for publication in payload["publications"]:
            lines.append(f"{publication['label']}: {publication['detail'] or 'failed'}")
    elif event.kind == EventKind.EXPORT_STALE:
        stale = {k: data.get(k) for k in ("hours", "since", "age_hours", "last_success")}
        payload["stale"] = stale
        title = f"No successful export for {stale['age_hours']:g} hours"
        last = stale["last_success"]
        lines.append(
            f"The CMDB is older than {stale['hours']:g} hours: "
            + (
                f"the last successful export is #{last['id']}, finished {last['finished']}."
                if last
                else "no export has succeeded yet."
            )
        )
        links.append(("Exports", absolute(reverse("exports:index"))))
    elif event.kind == EventKind.EXPORT_CHANGES:
        digest = delivery.digest or {}
        counts = digest.get("counts", {})
        payload.update(
            counts=counts,
            matched=digest.get("matched", 0),
            total=data.get("counts", {}),
            changes_url=absolute(reverse("exports:run-detail", args=[run.get("id")])) + "#changes" if run else "",
        )
        title = f"Export #{run.get('id')}: {_plural(digest.get('matched', 0), 'change')}"
        lines.append(
            f"{counts.get('added', 0):,} added, {counts.get('changed', 0):,} changed, "
            f"{counts.get('removed', 0):,} removed"
            + (" (matching your filter)." if delivery.subscription and delivery.subscription.filter else ".")
        )
        base = run.get("netbox_url") or netbox_url()
        for item in selectors.change_items(ids=list(digest.get("change_ids", []))):
            entry = {
                "kind": item.kind,
                "change": item.change,
                "netbox_id": item.netbox_id,
                "name": item.name,
                "url": netbox_object_url(kind=item.kind, object_id=item.netbox_id, base=base)
                if item.change != "removed"
                else "",
                "fields": item.fields,
            }
            table.append(entry)
        payload["changes"] = table
        shown = len(table)
        if digest.get("matched", 0) > shown:
            lines.append(f"The first {shown} are listed; the run page has all of them.")
    elif event.kind == EventKind.QUALITY_CHANGED:
        digest = delivery.digest or {}
        rules = digest.get("rules", [])
        base = run.get("netbox_url") or netbox_url()
        findings = [
            dict(row, url=netbox_object_url(kind=row.get("kind", ""), object_id=row.get("id", ""), base=base))
            for row in digest.get("findings", [])
        ]
        payload.update(rules=rules, new_findings=digest.get("new_findings", 0), findings=findings)
        payload["quality_url"] = absolute(reverse("quality:findings"))
        title = f"Data quality: {_plural(digest.get('new_findings', 0), 'new finding')} after export #{run.get('id')}"
        for rule in rules:
            lines.append(f"{rule['label']} ({rule['severity']}): {rule['previous']:,} → {rule['count']:,}")
        links.append(("Data quality", payload["quality_url"]))
    else:  # an event kind this version does not know (written by a newer one)
        title = f"Enreach tools: {event.kind}"
    payload["title"] = title
    if delivery.subscription_id is not None:
        links.append(("Your subscriptions", absolute(reverse("accounts:profile")) + "#notifications"))
    context = {
        "title": title,
        "lines": lines,
        "changes": table,
        "matched": (delivery.digest or {}).get("matched", 0),
        "findings": findings,
        "links": links,
        "event": event,
        "delivery": delivery,
    }
    text = render_to_string("notifications/email/message.txt", context)
    html = render_to_string("notifications/email/message.html", context)
    summary = "\n".join(lines)
    if table:
        summary += "\n" + "\n".join(_change_line(entry) for entry in table[:10])
        more = int((delivery.digest or {}).get("matched", 0)) - min(len(table), 10)
        if more > 0:
            summary += f"\n… and {more:,} more"
    return Message(
        delivery_id=str(delivery.pk),
        event=event.kind,
        title=title,
        text=text,
        html=html,
        summary=summary,
        payload=payload,
        links=links,
    )


def _change_line(entry: dict[str, Any]) -> str:
    fields = "; ".join(f"{column}: {old or '∅'} → {new or '∅'}" for column, (old, new) in entry["fields"].items())
    return f"{entry['change']} {entry['kind']} {entry['name']}" + (f" ({fields})" if fields else "")
