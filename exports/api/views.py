"""Export API: request runs, follow them, download their files."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import AuditContext
from accounts.models import AuditEntry
from accounts.permissions import capability_required
from enreach.api import ErrorSerializer
from exports import selectors
from exports.api.pagination import StrictLimitOffsetPagination
from exports.api.serializers import (
    ColumnSetPreviewSerializer,
    ColumnSetProblemsSerializer,
    ColumnSetResponseSerializer,
    ColumnSetSerializer,
    ExportChangePageSerializer,
    ExportChangeQuerySerializer,
    ExportChangeSerializer,
    ExportRunDetailSerializer,
    ExportRunRequestSerializer,
    ExportRunSerializer,
    QueueUnavailableSerializer,
)
from exports.column_sets import column_set_current, column_set_preview, column_set_replace
from exports.columns import ColumnSetInvalid
from exports.errors import ExportThrottled
from exports.models import ExportArtifact, ExportChange, ExportRun
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request
from integrations.exceptions import IntegrationError

CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# A download is a CSV or a workbook (or, for another suffix, bytes).
DOWNLOAD_RESPONSES = {
    (200, "text/csv"): OpenApiTypes.BINARY,
    (200, CONTENT_TYPES[".xlsx"]): OpenApiTypes.BINARY,
    (200, "application/octet-stream"): OpenApiTypes.BINARY,
}


def artifact_response(artifact: ExportArtifact | None) -> FileResponse:
    """Stream an artifact as a download, or 404 when it is unknown or its file is gone."""
    if artifact is None:
        raise Http404("No such file.")
    path = selectors.artifact_path(artifact)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise Http404("The file is no longer on disk (pruned).") from None
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    response = FileResponse(handle, as_attachment=True, filename=artifact.name, content_type=content_type)
    # gunicorn writes files in blocks of this size (not sendfile(): see gunicorn.conf.py), so its access log counts
    # the bytes really sent; 256 KiB keeps that to a few hundred writes for the largest workbook.
    response.block_size = 256 * 1024
    return response


@extend_schema(tags=["exports"])
class ExportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Export runs. Reading needs ``export.download``; requesting a run needs ``export.run``."""

    permission_classes = [capability_required("export.download", unsafe="export.run")]
    serializer_class = ExportRunSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        status_filter = self.request.query_params.get("status")
        if status_filter and status_filter not in ExportRun.Status.values:
            raise ValidationError({"status": [f"Choose one of: {', '.join(ExportRun.Status.values)}."]})
        return selectors.export_run_list(status=status_filter)

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ExportRunDetailSerializer if self.action == "retrieve" else ExportRunSerializer

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=ExportRun.Status.values)],
    )
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=ExportRunRequestSerializer,
        responses={
            202: ExportRunSerializer,
            409: OpenApiResponse(description="An export is already active."),
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many exports started recently, by this user or by everyone (EXPORT_START_LIMIT_*); "
                "Retry-After says when to try again.",
            ),
            503: OpenApiResponse(
                QueueUnavailableSerializer, description="The task queue is unreachable; the run is recorded failed."
            ),
        },
    )
    def create(self, request: Request) -> Response:
        """Request an export. 202 with the queued run, or 409 with the run that is already queued or running; 429 when
        too many exports were started recently."""
        options = ExportRunRequestSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        try:
            run, created = export_run_request(
                trigger=ExportRun.Trigger.API, user=request.user, **options.validated_data
            )
        except ExportThrottled as exc:  # DRF's Throttled would append its own "Expected available in …" sentence
            return Response(
                {"detail": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(exc.wait)}
            )
        if not created:
            return Response(
                {"detail": f"Export #{run.pk} is already {run.status}.", "id": run.pk, "run": self._data(run)},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            export_run_enqueue(run=run)
        except QueueUnavailable as exc:
            return Response(
                {"detail": str(exc), "id": run.pk, "reason": "queue_unavailable"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response(self._data(run), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=ExportChange.Kind.values, description="device or vm"),
            OpenApiParameter("change", str, enum=ExportChange.Change.values),
            OpenApiParameter("q", str, description="Part of a name or of a changed column's name (at most 200)."),
            OpenApiParameter("limit", int, description="Objects per page (default 50, at most 500)."),
            OpenApiParameter("offset", int, description="Objects to skip."),
        ],
        responses={
            200: ExportChangePageSerializer,
            400: OpenApiResponse(description="A filter or paging parameter is invalid."),
            404: OpenApiResponse(ErrorSerializer, description="No such run."),
        },
    )
    @action(detail=True, methods=["get"], pagination_class=StrictLimitOffsetPagination)
    def changes(self, request: Request, pk: str) -> Response:
        """What a run added, changed and removed: one entry per device or VM, with each changed column old → new.

        Empty for a first export and for one from another NetBox than the previous run's (``compared`` is false).
        """
        run = self.get_object()
        query = ExportChangeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        items = selectors.export_change_list(run=run, **query.validated_data)
        page = self.paginate_queryset(items)
        return self.get_paginated_response(ExportChangeSerializer(page, many=True).data)

    def _data(self, run: ExportRun) -> dict:  # type: ignore[type-arg]
        run = selectors.export_run_list().get(pk=run.pk)
        return ExportRunSerializer(run, context=self.get_serializer_context()).data


class RunArtifactView(APIView):
    """Download a file of a given run."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], responses=DOWNLOAD_RESPONSES)
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        return artifact_response(selectors.artifact_get(run_id=pk, name=name))


class LatestArtifactView(APIView):
    """Download a file of the newest successful export."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], responses=DOWNLOAD_RESPONSES)
    def get(self, request: Request, name: str) -> FileResponse:
        return artifact_response(selectors.artifact_latest(name=name))


def _columns_problem(exc: ColumnSetInvalid) -> Response:
    return Response(
        {"detail": "The column set cannot be used: " + "; ".join(exc.problems), "problems": exc.problems},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _netbox_unavailable(exc: IntegrationError) -> Response:
    return Response(
        {"detail": f"The custom fields could not be checked against NetBox: {exc}"},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ColumnSetInvalid(['the body is an object: {"devices": [...], "vms": [...]}'])
    return dict(request.data)


COLUMN_ERRORS = {
    400: OpenApiResponse(ColumnSetProblemsSerializer, description="A column that cannot be used, named."),
    503: OpenApiResponse(ErrorSerializer, description="NetBox could not say which custom fields it has."),
}


@extend_schema(tags=["exports"])
class ColumnSetView(APIView):
    """The CMDB column sets of devices and VMs. Reading needs ``export.download``; replacing ``columns.manage``."""

    permission_classes = [capability_required("export.download", unsafe="columns.manage")]

    @extend_schema(responses={200: ColumnSetResponseSerializer})
    def get(self, request: Request) -> Response:
        return Response(column_set_current().as_dict())

    @extend_schema(
        request=ColumnSetSerializer,
        responses={200: ColumnSetResponseSerializer, **COLUMN_ERRORS},
        description="Replace the column set of each dataset given (all or nothing); audited.",
    )
    def put(self, request: Request) -> Response:
        try:
            column_set = column_set_replace(
                data=_body(request), by=AuditContext.from_request(request, source=AuditEntry.Source.API)
            )
        except ColumnSetInvalid as exc:
            return _columns_problem(exc)
        except IntegrationError as exc:
            return _netbox_unavailable(exc)
        return Response(column_set.as_dict())


@extend_schema(tags=["exports"])
class ColumnSetPreviewView(APIView):
    """The first 20 rows of each dataset with a proposed column set, from the stored snapshots (``columns.manage``)."""

    permission_classes = [capability_required("columns.manage")]

    @extend_schema(request=ColumnSetSerializer, responses={200: ColumnSetPreviewSerializer, **COLUMN_ERRORS})
    def post(self, request: Request) -> Response:
        try:
            return Response(column_set_preview(data=_body(request)))
        except ColumnSetInvalid as exc:
            return _columns_problem(exc)
        except IntegrationError as exc:
            return _netbox_unavailable(exc)
