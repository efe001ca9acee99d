"""The data-quality findings page: a run's findings, filtered by rule, severity, site and kind, linked to NetBox."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from exports.models import ExportRun
from quality.rules import FINDING_COLUMNS, KINDS, SEVERITIES
from quality.selectors import (
    finding_ordering,
    quality_artifact,
    quality_findings,
    quality_rules_of,
    quality_run_latest,
)

PAGE_SIZE = 100
MAX_PAGE = 100_000
FILTERS = ("rule", "severity", "site", "kind")
# The findings table's columns: (ordering key, header, hidden at phone width).
HEADERS = (
    ("name", "Name", False),
    ("rule", "Rule", False),
    ("severity", "Severity", True),
    ("kind", "Kind", True),
    ("site", "Site", False),
    ("value", "Value", False),
)


def _chosen(request: HttpRequest) -> tuple[ExportRun | None, str, dict[str, str]]:
    """The run (the newest report's, or ``?run=<id>``), its id as asked and the filters and ordering chosen."""
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
    chosen["ordering"] = finding_ordering(request.GET.get("ordering", ""))
    return run, run_id, chosen


@login_required
def quality_findings_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The findings the page shows (same filters, same order) as CSV, every page of them."""
    run, _, chosen = _chosen(request)
    if run is None:
        raise Http404("No data-quality report yet.")
    findings = quality_findings(run=run, offset=0, limit=None, **chosen)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FINDING_COLUMNS)
        for row in findings.rows:
            writer.writerow([row.get(column, "") for column in FINDING_COLUMNS])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="data_quality-export{run.pk}-filtered.csv"'
    return response


@login_required
def quality_findings_page(request: HttpRequest) -> HttpResponse:
    """Findings of the newest report, or of ``?run=<id>``; filters and the ordering in the query string, 100 per
    page; errors first unless another column is chosen."""
    run, run_id, chosen = _chosen(request)
    page_text = request.GET.get("page", "1")
    page = min(int(page_text), MAX_PAGE) if page_text.isdigit() and 0 < len(page_text) < 7 else 1
    page = max(page, 1)
    context: dict[str, object] = {"run": run, "chosen": chosen, "severities": SEVERITIES, "kinds": KINDS}
    if run is not None:
        findings = quality_findings(run=run, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, **chosen)
        rules = quality_rules_of(run=run)
        pages = max(1, -(-findings.total // PAGE_SIZE))
        query = {name: value for name, value in chosen.items() if value and value != "severity"}
        if run_id:
            query["run"] = run_id

        def link(number: int) -> str:
            return "?" + urlencode({**query, "page": number})

        def sort_link(column: str) -> dict[str, str]:
            """The header's link: ascending, or descending when already ascending; and its aria-sort."""
            current = chosen["ordering"]
            target = f"-{column}" if current == column else column
            state = "ascending" if current == column else "descending" if current == f"-{column}" else "none"
            others = {name: value for name, value in query.items() if name != "ordering"}
            return {"href": "?" + urlencode({**others, "ordering": target}), "sort": state}

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
            headers=[
                {"column": column, "label": label, "narrow": narrow, **sort_link(column)}
                for column, label, narrow in HEADERS
            ],
            csv_link="findings.csv?" + urlencode(query) if query else "findings.csv",
        )
    return render(request, "quality/findings.html", context)
