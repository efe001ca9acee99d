"""The OpenAPI schema tells the truth about errors: ``AutoSchema`` documents the error statuses every operation
really answers (401, 403, 404, 400, 413, 429), in the shapes DRF answers them."""

from __future__ import annotations

import re
from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse

from enreach.api import ErrorSerializer

ERROR_400 = OpenApiResponse(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {}, "description": "Field names with their errors, or detail."},
            {"type": "array", "items": {"type": "string"}},
        ]
    },
    description="Invalid input: the fields at fault and why, or a detail.",
)
ERROR = OpenApiResponse(ErrorSerializer, description="An error with a detail.")
ERROR_409 = OpenApiResponse(ErrorSerializer, description="Conflicts with the current state.")


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus the error answers each operation can give.

    Every operation behind authentication may answer 401 (no or bad credentials), 403 (not allowed) and 429 (too
    many failed token authentications); operations with path parameters 404; operations taking a body 400 and 413;
    operations with query parameters 400.
    """

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        method = self.method.upper()
        extra: dict[str, OpenApiResponse] = {}
        if self.view.get_authenticators() and self._requires_auth():
            extra.update({"401": ERROR, "403": ERROR, "429": ERROR})
        if self.path_regex and re.search(r"\{\w+\}", self.path):
            extra["404"] = ERROR
        if method in ("POST", "PUT", "PATCH"):
            extra.update({"400": ERROR_400, "413": ERROR})
        elif self._get_query_parameters_present():
            extra["400"] = ERROR_400
        for code, response in extra.items():
            if code not in responses:
                # Errors are JSON whatever the client asked for (an event stream, a file).
                responses[code] = self._get_response_for_code(
                    response, code, media_types=["application/json"], direction=direction
                )
        return responses

    def _requires_auth(self) -> bool:
        return any(
            getattr(permission, "__class__", type).__name__ != "AllowAny" for permission in self.view.get_permissions()
        )

    def _get_query_parameters_present(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())
