"""Data-quality API: a run's report (counts per rule with their trend, and a filtered page of its findings)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import capability_required
from enreach.api import ErrorSerializer
from enreach.schema import ERROR_400
from exports.models import ExportRun
from quality.rules import KINDS, SEVERITIES
from quality.selectors import quality_artifact, quality_findings, quality_rules_of, quality_run_latest

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000


class QualityRuleSerializer(serializers.Serializer):
    """One rule in a run: objects flagged, the change since the previous report, recent counts (oldest first)."""

    rule = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # the rule's label, not the field's
    severity = serializers.ChoiceField(choices=SEVERITIES)
    columns = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField(min_value=0)
    previous = serializers.IntegerField(allow_null=True, help_text="The count in the previous report, if any.")
    change = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True, help_text="Why the rule failed in this run (it flagged nothing).")
    trend = serializers.ListField(child=serializers.IntegerField(min_value=0))


class QualityFindingSerializer(serializers.Serializer):
    """An object a rule flagged, with its page in NetBox (empty when NetBox is not configured)."""

    rule = serializers.CharField()
    severity = serializers.ChoiceField(choices=SEVERITIES)
    kind = serializers.ChoiceField(choices=KINDS)
    id = serializers.CharField(help_text="The NetBox id.")
    name = serializers.CharField(allow_blank=True)
    site = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)


class QualityReportSerializer(serializers.Serializer):
    """A run's data-quality report."""

    run = serializers.IntegerField()
    finished = serializers.DateTimeField(allow_null=True)
    rules = QualityRuleSerializer(many=True)
    total = serializers.IntegerField(help_text="Findings matching the filters.")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    findings = QualityFindingSerializer(many=True)
    file = serializers.CharField(allow_null=True, help_text="Download URL of data_quality.csv (every finding).")


class QualityQuerySerializer(serializers.Serializer):
    """Filters of the findings: exact rule id, severity and kind; site case-insensitive."""

    rule = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    severity = serializers.ChoiceField(choices=SEVERITIES, required=False, default="", allow_blank=True)
    site = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    kind = serializers.ChoiceField(choices=KINDS, required=False, default="", allow_blank=True)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_OFFSET)
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=MAX_LIMIT)


QUERY_PARAMETERS = [
    OpenApiParameter("rule", str, description="A rule id, e.g. warranty_expired."),
    OpenApiParameter("severity", str, enum=list(SEVERITIES)),
    OpenApiParameter("site", str, description="A site name (case-insensitive)."),
    OpenApiParameter("kind", str, enum=list(KINDS)),
    OpenApiParameter("offset", int, description=f"Findings to skip (0 to {MAX_OFFSET:,})."),
    OpenApiParameter("limit", int, description=f"Findings to return (1 to {MAX_LIMIT}, default 100)."),
]
RESPONSES: dict[int, Any] = {
    200: QualityReportSerializer,
    400: ERROR_400,
    404: OpenApiResponse(ErrorSerializer, description="No such successful run, or it has no data-quality report."),
}


def _report(request: Request, run: ExportRun | None) -> Response:
    query = QualityQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    options = query.validated_data
    if run is None:
        raise NotFound("No data-quality report yet: one is made after every successful export.")
    rules = quality_rules_of(run=run)
    if not rules:
        raise NotFound(f"Export #{run.pk} has no data-quality report.")
    findings = quality_findings(run=run, **options)
    artifact = quality_artifact(run=run)
    data = {
        "run": run.pk,
        "finished": run.finished,
        "rules": [rule.as_dict() for rule in rules],
        "total": findings.total,
        "offset": options["offset"],
        "limit": options["limit"],
        "findings": findings.rows,
        "file": f"/api/exports/runs/{run.pk}/artifacts/{artifact.name}" if artifact is not None else None,
    }
    return Response(QualityReportSerializer(data).data)


class RunQualityView(APIView):
    """The data-quality report of one export run."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], parameters=QUERY_PARAMETERS, responses=RESPONSES)
    def get(self, request: Request, pk: int) -> Response:
        run = ExportRun.objects.filter(pk=pk, status=ExportRun.Status.SUCCEEDED).first()
        if run is None:
            # Validate the filters first so junk is a 400 whatever the run.
            QualityQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
            raise NotFound("No such successful export run.")
        return _report(request, run)


class LatestQualityView(APIView):
    """The data-quality report of the newest successful export that has one."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], parameters=QUERY_PARAMETERS, responses=RESPONSES)
    def get(self, request: Request) -> Response:
        return _report(request, quality_run_latest())
