"""Export API: request runs, follow them, download their files."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import capability_required
from exports import selectors
from exports.api.serializers import ExportRunDetailSerializer, ExportRunRequestSerializer, ExportRunSerializer
from exports.models import ExportArtifact, ExportRun
from exports.services import export_run_enqueue, export_run_request

CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
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
    return FileResponse(handle, as_attachment=True, filename=artifact.name, content_type=content_type)


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
        responses={202: ExportRunSerializer, 409: OpenApiResponse(description="An export is already active.")},
    )
    def create(self, request: Request) -> Response:
        """Request an export. 202 with the queued run, or 409 with the run that is already queued or running."""
        options = ExportRunRequestSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        run, created = export_run_request(trigger=ExportRun.Trigger.API, user=request.user, **options.validated_data)
        if not created:
            return Response(
                {"detail": f"Export #{run.pk} is already {run.status}.", "id": run.pk, "run": self._data(run)},
                status=status.HTTP_409_CONFLICT,
            )
        export_run_enqueue(run=run)
        return Response(self._data(run), status=status.HTTP_202_ACCEPTED)

    def _data(self, run: ExportRun) -> dict:  # type: ignore[type-arg]
        run = selectors.export_run_list().get(pk=run.pk)
        return ExportRunSerializer(run, context=self.get_serializer_context()).data


class RunArtifactView(APIView):
    """Download a file of a given run."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        return artifact_response(selectors.artifact_get(run_id=pk, name=name))


class LatestArtifactView(APIView):
    """Download a file of the newest successful export."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["exports"], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, name: str) -> FileResponse:
        return artifact_response(selectors.artifact_latest(name=name))
