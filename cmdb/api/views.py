"""CMDB API: rows of an export (paged, filtered, sorted), one object, filtered downloads and the saved grid views.

Every view is a thin door over ``cmdb.selectors`` (reads), ``cmdb.downloads`` and ``cmdb.services`` (saved views).
Bad parameters are a 400 naming the parameter and what is allowed; no export to show is a 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.permissions import capability_required
from cmdb import params, selectors, services
from cmdb.api.serializers import (
    CmdbErrorSerializer,
    CmdbFacetSerializer,
    CmdbHistorySerializer,
    CmdbNamedViewSerializer,
    CmdbNamedViewUpdateSerializer,
    CmdbRowSerializer,
    CmdbRowsSerializer,
    CmdbViewSerializer,
)
from cmdb.downloads import csv_chunks, workbook_open
from cmdb.models import CmdbNamedView
from cmdb.query import DATASETS, QueryError

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FILTERS_HELP = (
    "Per-column filters use the column keys listed in `columns`: `<key>=text` (contains, case-insensitive), "
    "`<key>__eq`, `<key>__empty=true|false`, `<key>__gte` / `<key>__lte` (number and date columns; dates as ISO "
    "text at any precision: 2024, 2024-05, 2024-05-31), `<key>__has` (one item of a comma-separated list such as "
    "tags) and `<key>__ip` (an address or a network). Every filter must hold. An unknown parameter is a 400 naming "
    "the allowed ones."
)
ERRORS = {
    400: OpenApiResponse(CmdbErrorSerializer, description="A bad parameter: its name -> what is allowed."),
    401: OpenApiResponse(CmdbErrorSerializer, description="Not signed in."),
    403: OpenApiResponse(CmdbErrorSerializer, description="Missing the export.download capability."),
    404: OpenApiResponse(CmdbErrorSerializer, description="No successful export (or no such run or row)."),
    503: OpenApiResponse(
        CmdbErrorSerializer, description="The export's CMDB table is being prepared (a run from before it was kept)."
    ),
}
DATASET_PARAM = OpenApiParameter("dataset", str, OpenApiParameter.PATH, enum=list(DATASETS))
QUERY_PARAMS = [
    DATASET_PARAM,
    OpenApiParameter("q", str, description="Global search: every word must occur in some column."),
    OpenApiParameter("ordering", str, description="Column keys, comma-separated, `-` first for descending."),
    OpenApiParameter("fields", str, description="Column keys to return, comma-separated, in that order."),
    OpenApiParameter("run", int, description="An export id; default: the newest successful export."),
]
PAGE_PARAMS = [
    OpenApiParameter(
        "limit",
        int,
        description=f"Rows per page (default {params.DEFAULT_LIMIT}, at most "
        f"{params.MAX_LIMIT}; larger values are capped).",
    ),
    OpenApiParameter("offset", int, description="The first row (0-based)."),
]


class BadQuery(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class CmdbPreparing(APIException):
    status_code = 503
    default_detail = "The CMDB table is being prepared; try again in a minute."
    default_code = "preparing"


@contextmanager
def query_errors() -> Iterator[None]:
    """``QueryError`` -> 400 naming the parameter, ``CmdbUnavailable`` -> 404, ``CmdbPreparing`` -> 503."""
    try:
        yield
    except QueryError as exc:
        if exc.field and exc.field != "detail":
            raise ValidationError({exc.field: [str(exc)]}) from exc
        # A parameter without a name (``?=x``) or named ``detail``: the error's own ``detail``, a string as always.
        raise BadQuery(str(exc)) from exc
    except selectors.CmdbUnavailable as exc:
        raise NotFound(str(exc)) from exc
    except selectors.CmdbPreparing as exc:
        raise CmdbPreparing(str(exc)) from exc


class DatasetMixin:
    """Checks the ``dataset`` of the URL once the request is authenticated and allowed."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if kwargs.get("dataset") not in DATASETS:
            raise NotFound(f"Unknown dataset; choose one of: {', '.join(DATASETS)}.")


def _params(request: Request) -> dict[str, list[str]]:
    return {name: request.query_params.getlist(name) for name in request.query_params}


def _source(request: Request) -> selectors.CmdbSource:
    return selectors.cmdb_source(run_id=params.run_id(request.query_params.get("run")))


@extend_schema(tags=["cmdb"])
class CmdbRowsView(DatasetMixin, APIView):
    """Rows of the devices, VMs or merged dataset of an export."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(
        operation_id="cmdb_rows_list",
        parameters=[*QUERY_PARAMS, *PAGE_PARAMS],
        responses={200: CmdbRowsSerializer, **ERRORS},
        description=FILTERS_HELP,
    )
    def get(self, request: Request, dataset: str) -> Response:
        with query_errors():
            source = _source(request)
            parsed = params.rows_request(_params(request), table=source.table, dataset=dataset)
            page = selectors.cmdb_page(
                table=source.table, query=parsed.query, columns=parsed.columns, offset=parsed.offset,
                limit=parsed.limit,
            )  # fmt: skip
        return Response(
            {
                "count": page.count,
                "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in page.columns],
                "results": page.results,
                "export": selectors.cmdb_freshness(source.run),
            }
        )


@extend_schema(tags=["cmdb"])
class CmdbRowView(DatasetMixin, APIView):
    """One device or VM: every column of the dataset, and its page in NetBox."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(
        parameters=[
            DATASET_PARAM,
            OpenApiParameter(
                "id", str, OpenApiParameter.PATH, description="devices-<NetBox id>, vms-<NetBox id> or a NetBox id."
            ),
            OpenApiParameter("run", int, description="An export id; default: the newest successful export."),
        ],
        responses={200: CmdbRowSerializer, **ERRORS},
        operation_id="cmdb_row_retrieve",
    )
    def get(self, request: Request, dataset: str, id: str) -> Response:
        with query_errors():
            if len(id) > 40:
                raise QueryError("Not a row id.", field="id")
            source = _source(request)
            row = selectors.cmdb_row(table=source.table, dataset=dataset, identifier=id)
        if row is None:
            raise NotFound(f"No row {id!r} in the {dataset} of export #{source.run.pk}.")
        columns = source.table.columns(dataset)
        return Response(
            {
                "row_id": row["row_id"],
                "netbox_url": selectors.cmdb_netbox_link(row_id=row["row_id"]),
                "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in columns],
                "row": row,
                "export": selectors.cmdb_freshness(source.run),
            }
        )


@extend_schema(tags=["cmdb"])
class CmdbDownloadView(DatasetMixin, APIView):
    """The filtered, sorted rows with the chosen columns as a CSV (streamed) or the CMDB workbook."""

    permission_classes = [capability_required("export.download")]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # ``format`` is the file type here, not DRF's renderer override; errors are JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        parameters=[*QUERY_PARAMS, OpenApiParameter("format", str, enum=list(FORMATS), description="Default csv.")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, CONTENT_TYPES["xlsx"]): OpenApiTypes.BINARY,
            **ERRORS,
        },
        description=FILTERS_HELP,
    )
    def get(self, request: Request, dataset: str) -> StreamingHttpResponse | FileResponse:
        kind = request.query_params.get("format") or "csv"
        if kind not in FORMATS:
            raise ValidationError({"format": [f"Choose one of: {', '.join(FORMATS)}."]})
        with query_errors():
            source = _source(request)
            parsed = params.rows_request(_params(request), table=source.table, dataset=dataset, paged=False)
            rows = selectors.cmdb_rows_all(table=source.table, query=parsed.query)
        filename = f"cmdb-{dataset}-export{source.run.pk}.{kind}"
        if kind == "xlsx":
            handle = workbook_open(
                table=source.table,
                rows=rows,
                columns=parsed.columns,
                timestamp=source.run.finished or source.run.created,
            )
            return FileResponse(handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES["xlsx"])
        chunks = csv_chunks(
            table=source.table, rows=rows, columns=parsed.columns, excel_safe=settings.EXPORT_CSV_EXCEL_SAFE
        )
        response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES["csv"])
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


@extend_schema(tags=["cmdb"])
class CmdbViewStateView(DatasetMixin, APIView):
    """The signed-in user's saved grid view of a dataset (columns, widths, sort, filters, search, density)."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(parameters=[DATASET_PARAM], responses={200: CmdbViewSerializer, **ERRORS})
    def get(self, request: Request, dataset: str) -> Response:
        return Response(services.cmdb_view_get(user=cast(User, request.user), dataset=dataset))

    @extend_schema(
        parameters=[DATASET_PARAM], request=CmdbViewSerializer, responses={200: CmdbViewSerializer, **ERRORS}
    )
    def put(self, request: Request, dataset: str) -> Response:
        data = CmdbViewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            view = services.cmdb_view_save(
                user=cast(User, request.user), dataset=dataset, view=dict(data.validated_data)
            )
        except services.CmdbViewInvalid as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        return Response(view)

    @extend_schema(parameters=[DATASET_PARAM], responses={200: CmdbViewSerializer, **ERRORS})
    def delete(self, request: Request, dataset: str) -> Response:
        return Response(services.cmdb_view_reset(user=cast(User, request.user), dataset=dataset))


FACET_DEFAULT_LIMIT, FACET_MAX_LIMIT = 50, 1000


@extend_schema(tags=["cmdb"])
class CmdbFacetsView(DatasetMixin, APIView):
    """A column's values and their row counts under every other filter: what a pick-from-values filter offers."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(
        operation_id="cmdb_facets_retrieve",
        parameters=[
            DATASET_PARAM,
            OpenApiParameter("column", str, required=True, description="The column key to count values of."),
            OpenApiParameter(
                "limit",
                int,
                description=f"Values to return, most frequent first (default {FACET_DEFAULT_LIMIT}, "
                f"at most {FACET_MAX_LIMIT}).",
            ),
            OpenApiParameter("q", str, description="Global search, as for the rows."),
            OpenApiParameter("run", int, description="An export id; default: the newest successful export."),
        ],
        responses={200: CmdbFacetSerializer, **ERRORS},
        description="Takes the rows' filter parameters too; the filters on `column` itself are left out of its "
        "counts, so the values already picked keep the others beside them. " + FILTERS_HELP,
    )
    def get(self, request: Request, dataset: str) -> Response:
        raw = _params(request)
        key = (raw.pop("column", None) or [""])[-1].strip()
        with query_errors():
            limit = params.bounded_int(
                request.query_params.get("limit"), name="limit", default=FACET_DEFAULT_LIMIT, low=1,
                high=FACET_MAX_LIMIT,
            )  # fmt: skip
            source = _source(request)
            columns = {column.key: column for column in source.table.columns(dataset)}
            if key not in columns:
                raise QueryError(f"Name the column to count: one of {', '.join(columns)}.", field="column")
            parsed = params.rows_request(raw, table=source.table, dataset=dataset, paged=False)
            facet = selectors.cmdb_facet(table=source.table, query=parsed.query, column=columns[key], limit=limit)
        return Response(facet)


@extend_schema(tags=["cmdb"])
class CmdbRowHistoryView(DatasetMixin, APIView):
    """One device or VM: every column in the newest export and what each export changed (added, old → new,
    removed), from the changes stored with the runs."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(
        operation_id="cmdb_row_history",
        parameters=[
            DATASET_PARAM,
            OpenApiParameter(
                "id", str, OpenApiParameter.PATH, description="devices-<NetBox id>, vms-<NetBox id> or a NetBox id."
            ),
        ],
        responses={200: CmdbHistorySerializer, **ERRORS},
    )
    def get(self, request: Request, dataset: str, id: str) -> Response:
        with query_errors():
            if len(id) > 40:
                raise QueryError("Not a row id.", field="id")
            history = selectors.cmdb_row_history(dataset=dataset, identifier=id)
        if history is None:
            raise NotFound(f"Neither the newest export nor any stored change knows {id!r} in the {dataset}.")
        return Response(history_payload(history))


def history_payload(history: selectors.CmdbHistory) -> dict[str, Any]:
    """The history as the API (and the page's JSON) shows it."""
    return {
        "row_id": history.row_id,
        "kind": history.kind,
        "netbox_id": history.netbox_id,
        "name": history.name,
        "netbox_url": history.netbox_url,
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in history.columns],
        "row": history.row,
        "timeline": history.timeline,
        "export": selectors.cmdb_freshness(history.source.run) if history.source else None,
    }


def named_view_payload(named: CmdbNamedView, user: User) -> dict[str, Any]:
    return {
        "id": named.pk,
        "name": named.name,
        "dataset": named.dataset,
        "shared": named.shared,
        "view": named.state,
        "owner": str(named.owner),
        "mine": named.owner_id == user.pk,
        "can_edit": selectors.cmdb_named_view_can_edit(user=user, view=named),
        "url": f"/cmdb/?view={named.pk}",
        "created": named.created,
        "updated": named.updated,
    }


@contextmanager
def named_view_errors() -> Iterator[None]:
    try:
        yield
    except services.CmdbViewInvalid as exc:
        raise ValidationError({exc.field: [str(exc)]}) from exc
    except services.CmdbNamedViewDenied as exc:
        raise PermissionDenied(str(exc)) from exc


@extend_schema(tags=["cmdb"])
class CmdbNamedViewsView(APIView):
    """Named grid views: one's own and those shared by anyone; create one from the current view."""

    permission_classes = [capability_required("export.download")]

    @extend_schema(
        operation_id="cmdb_named_views_list",
        parameters=[OpenApiParameter("dataset", str, enum=list(DATASETS), description="Only this dataset's views.")],
        responses={200: CmdbNamedViewSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        dataset = request.query_params.get("dataset") or None
        if dataset is not None and dataset not in DATASETS:
            raise ValidationError({"dataset": [f"Choose one of: {', '.join(DATASETS)}."]})
        user = cast(User, request.user)
        return Response([named_view_payload(v, user) for v in selectors.cmdb_named_views(user=user, dataset=dataset)])

    @extend_schema(
        operation_id="cmdb_named_views_create",
        request=CmdbNamedViewSerializer,
        responses={201: CmdbNamedViewSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = CmdbNamedViewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = cast(User, request.user)
        with named_view_errors():
            named = services.cmdb_named_view_create(
                owner=user,
                name=data.validated_data["name"],
                dataset=data.validated_data["dataset"],
                shared=data.validated_data.get("shared", False),
                view=dict(data.validated_data["view"]),
            )
        return Response(named_view_payload(named, user), status=status.HTTP_201_CREATED)


@extend_schema(tags=["cmdb"])
class CmdbNamedViewDetailView(APIView):
    """One named view. Anyone who sees it may read it; only its owner or an admin changes or deletes it."""

    permission_classes = [capability_required("export.download")]

    def _get(self, request: Request, pk: int) -> CmdbNamedView:
        named = selectors.cmdb_named_view_get(user=cast(User, request.user), pk=pk)
        if named is None:
            raise NotFound("No such view (or it is somebody else's and not shared).")
        return named

    @extend_schema(operation_id="cmdb_named_view_retrieve", responses={200: CmdbNamedViewSerializer, **ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(named_view_payload(self._get(request, pk), cast(User, request.user)))

    @extend_schema(
        operation_id="cmdb_named_view_update",
        request=CmdbNamedViewUpdateSerializer,
        responses={200: CmdbNamedViewSerializer, **ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        named = self._get(request, pk)
        data = CmdbNamedViewUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = cast(User, request.user)
        with named_view_errors():
            named = services.cmdb_named_view_update(
                user=user,
                named=named,
                name=data.validated_data.get("name"),
                shared=data.validated_data.get("shared"),
                view=dict(data.validated_data["view"]) if "view" in data.validated_data else None,
            )
        return Response(named_view_payload(named, user))

    @extend_schema(operation_id="cmdb_named_view_destroy", responses={204: None, **ERRORS})
    def delete(self, request: Request, pk: int) -> Response:
        named = self._get(request, pk)
        with named_view_errors():
            services.cmdb_named_view_delete(user=cast(User, request.user), named=named)
        return Response(status=status.HTTP_204_NO_CONTENT)
