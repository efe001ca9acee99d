"""Paging of the exports API."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset paging that answers 400 to a limit or offset that is not a number, instead of ignoring it."""

    default_limit = 50
    max_limit = 500

    def get_limit(self, request: Request) -> int:
        return min(self._number(request, self.limit_query_param, self.default_limit, minimum=1), self.max_limit)

    def get_offset(self, request: Request) -> int:
        return self._number(request, self.offset_query_param, 0, minimum=0)

    @staticmethod
    def _number(request: Request, name: str, default: int, *, minimum: int) -> int:
        value = request.query_params.get(name)
        if value is None or value == "":
            return default
        if not value.isdigit() or len(value) > 9 or int(value) < minimum:
            raise ValidationError({name: [f"A whole number of at least {minimum}."]})
        return int(value)
