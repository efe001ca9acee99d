"""Publishing API: publish a successful run to Confluence and/or back it up again, at /api/exports/runs/{id}/publish/
beside the runs (the URL and the schema it always had)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import capability_required
from exports.models import ExportRun
from publishing.api.serializers import ExportPublicationSerializer, ExportPublishRequestSerializer
from publishing.services import PublishError, export_run_publish_again


@extend_schema(tags=["exports"])
class ExportRunPublishViewSet(viewsets.GenericViewSet):
    """The publish verb of an export run. Publishing needs ``export.run``."""

    permission_classes = [capability_required("export.download", unsafe="export.run")]
    queryset = ExportRun.objects.all()
    serializer_class = ExportPublicationSerializer
    lookup_value_regex = r"\d+"

    @extend_schema(
        request=ExportPublishRequestSerializer,
        responses={
            202: ExportPublicationSerializer(many=True),
            409: OpenApiResponse(description="The run did not succeed: nothing to publish."),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def publish(self, request: Request, pk: str) -> Response:
        """Publish a successful run to Confluence and/or back it up again; 202 with one outcome per target.

        Failures of Confluence or the backup target are in the outcomes (``status: failed``), not HTTP errors.
        """
        run = self.get_object()
        options = ExportPublishRequestSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        try:
            publications = export_run_publish_again(
                run=run, targets=options.validated_data["targets"], force=options.validated_data["force"]
            )
        except PublishError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ExportPublicationSerializer(publications, many=True).data, status=status.HTTP_202_ACCEPTED)
