"""The data-quality findings page: a run's findings, filtered by rule, severity, site and kind, linked to NetBox."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from exports.models import ExportRun
from quality.rules import KINDS, SEVERITIES
from quality.selectors import quality_artifact, quality_findings, quality_rules_of, quality_run_latest

PAGE_SIZE = 100
MAX_PAGE = 100_000
FILTERS = ("rule", "severity", "site", "kind")


@login_required
def quality_findings_page(request: HttpRequest) -> HttpResponse:
    """Findings of the newest report, or of ``?run=<id>``; filters in the query string, 100 per page."""
    if not request.user.has_capability("export.download"):  # type: ignore[union-attr]
        raise PermissionDenied("You need the 'export.download' capability.")
    run_id = request.GET.get("run", "")
    if run_id:
        if not run_id.isdigit() or len(run_id) > 12:
            raise Http404("No such run.")
        run = ExportRun.objects.filter(pk=int(run_id), status=ExportRun.Status.SUCCEEDED).first()
        if run is None:
            raise Http404("No such successful run.")
    else:
        run = quality_run_latest()
    chosen = {name: request.GET.get(name, "")[:200] for name in FILTERS}
    if chosen["severity"] not in ("", *SEVERITIES):
        chosen["severity"] = ""
    if chosen["kind"] not in ("", *KINDS):
        chosen["kind"] = ""
    page_text = request.GET.get("page", "1")
    page = min(int(page_text), MAX_PAGE) if page_text.isdigit() and 0 < len(page_text) < 7 else 1
    page = max(page, 1)
    context: dict[str, object] = {"run": run, "chosen": chosen, "severities": SEVERITIES, "kinds": KINDS}
    if run is not None:
        findings = quality_findings(run=run, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, **chosen)
        rules = quality_rules_of(run=run)
        pages = max(1, -(-findings.total // PAGE_SIZE))
        query = {name: value for name, value in chosen.items() if value}
        if run_id:
            query["run"] = run_id

        def link(number: int) -> str:
            return "?" + urlencode({**query, "page": number})

        labels = {rule.rule: rule.label for rule in rules}
        for row in findings.rows:
            row["label"] = labels.get(row["rule"], row["rule"])
        context.update(
            findings=findings,
            rules=rules,
            page=page,
            pages=pages,
            previous_link=link(page - 1) if page > 1 else "",
            next_link=link(page + 1) if page < pages else "",
            artifact=quality_artifact(run=run),
        )
    return render(request, "quality/findings.html", context)
