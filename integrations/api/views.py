"""Integration status for pages and API clients."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import capability_required
from integrations.exceptions import IntegrationError
from integrations.services import netbox_status_cached


class NetboxStatusView(APIView):
    """NetBox's version and object counts (cached for ``CACHE_TTL_NETBOX`` seconds); 503 when unreachable."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(tags=["integrations"], responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        try:
            return Response(netbox_status_cached())
        except IntegrationError as exc:
            return Response({"detail": str(exc)}, status=503)
