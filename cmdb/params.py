"""Query parameters of the CMDB API and page -> a ``Query``, the columns to show and the window; strict and bounded.

``<column>=text`` (contains), ``<column>__contains``, ``__eq``, ``__empty=true|false``, ``__gte``, ``__lte``
(number and date columns), ``__has`` (an item of a comma-separated list) and ``__ip`` (an address or a network);
``q`` (global search), ``ordering`` (keys, ``-`` for descending), ``fields``, ``limit``, ``offset`` and ``run``.
Anything else is an error naming what is allowed: a typo must not silently return every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cmdb.query import Column, Filter, Query, QueryError
from cmdb.table import CmdbTable

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
MAX_VALUE_LENGTH = 200
MAX_LIST_LENGTH = 4000
MAX_ORDERING = 10
MAX_RUN_ID = 2**63 - 1
LOOKUPS = ("contains", "eq", "empty", "gte", "lte", "has", "ip", "in")
MAX_IN_VALUES = 200
# Parameters that are not filters. ``format`` is DRF's (``?format=json``) on the rows and the file type on downloads.
RESERVED = ("limit", "offset", "ordering", "q", "fields", "run", "format")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True, slots=True)
class RowsRequest:
    """A parsed request: the query, the columns to return (in order) and the window."""

    query: Query
    columns: list[Column]
    limit: int
    offset: int


def bounded_int(raw: str | None, *, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter clamped to ``low``..``high``; ``QueryError`` when it is not an integer."""
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.lstrip("-").isdigit() and len(text) <= 20):
        raise QueryError(f"{name} must be a whole number.", field=name)
    return max(low, min(high, int(text)))


def run_id(raw: str | None) -> int | None:
    """The ``run`` parameter: a positive export id, or ``None`` for the newest successful export."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not text.isdigit() or len(text) > 19 or not 0 < int(text) <= MAX_RUN_ID:
        raise QueryError("run must be the id of an export (a positive whole number).", field="run")
    return int(text)


def _text(raw: str, name: str, limit: int = MAX_VALUE_LENGTH) -> str:
    if len(raw) > limit:
        raise QueryError(f"{name} is longer than {limit} characters.", field=name)
    if "\x00" in raw:
        raise QueryError(f"{name} contains a NUL character.", field=name)
    return raw


def _keys(raw: str, name: str) -> list[str]:
    return [part.strip() for part in _text(raw, name, MAX_LIST_LENGTH).split(",") if part.strip()]


def rows_request(
    params: Mapping[str, Sequence[str]], *, table: CmdbTable, dataset: str, paged: bool = True
) -> RowsRequest:
    """Parse ``params`` (name -> all its values, like ``QueryDict.lists()``) for ``dataset`` of ``table``."""
    columns = table.columns(dataset)
    by_key = {column.key: column for column in columns}
    allowed_keys = ", ".join(by_key)

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    filters: list[Filter] = []
    any_of: list[tuple[Filter, ...]] = []
    for name, values in params.items():
        if name in RESERVED:
            continue
        key, _, lookup = name.partition("__")
        column = by_key.get(key)
        if column is None:
            raise QueryError(
                f"Unknown parameter {name!r}. Filter with a column ({allowed_keys}), optionally followed by "
                f"__{', __'.join(LOOKUPS)}; other parameters: {', '.join(RESERVED)}.",
                field=name,
            )
        lookup = lookup or "contains"
        if lookup not in LOOKUPS:
            raise QueryError(f"Unknown filter {name!r}; use {key} or {key}__{f', {key}__'.join(LOOKUPS)}.", field=name)
        if lookup == "in":
            if len(values) > MAX_IN_VALUES:
                raise QueryError(f"{name} takes at most {MAX_IN_VALUES} values.", field=name)
            any_of.append(tuple(Filter(column.label, "eq", _text(raw, name)) for raw in values))
            continue
        for raw in values:
            value = _text(raw, name)
            if lookup == "empty":
                flag = value.strip().casefold()
                if flag not in _TRUE + _FALSE:
                    raise QueryError(f"{name} must be true (is empty) or false (is not empty).", field=name)
                filters.append(Filter(column.label, "empty" if flag in _TRUE else "notempty"))
                continue
            condition = Filter(column.label, lookup, value)
            try:
                table.check(condition)  # a bad bound is a 400 even when no row would be compared with it
            except QueryError as exc:
                raise QueryError(str(exc), field=name) from None
            filters.append(condition)
    ordering: list[str] = []
    for item in _keys(one("ordering") or "", "ordering"):
        descending = item.startswith("-")
        key = item[1:] if descending else item
        if key not in by_key:
            raise QueryError(f"Unknown column {key!r} in ordering; choose among: {allowed_keys}.", field="ordering")
        ordering.append(("-" if descending else "") + by_key[key].label)
    if len(ordering) > MAX_ORDERING:
        raise QueryError(f"Sort by at most {MAX_ORDERING} columns.", field="ordering")
    fields = _keys(one("fields") or "", "fields")
    unknown = [key for key in fields if key not in by_key]
    if unknown:
        raise QueryError(
            f"Unknown column(s) {', '.join(unknown)} in fields; choose among: {allowed_keys}.", field="fields"
        )
    chosen = [by_key[key] for key in dict.fromkeys(fields)] if fields else columns
    query = Query(
        dataset=dataset,
        filters=tuple(filters),
        any_of=tuple(any_of),
        search=_text(one("q") or "", "q"),
        ordering=tuple(ordering),
    )
    limit = bounded_int(one("limit"), name="limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT) if paged else 0
    offset = bounded_int(one("offset"), name="offset", default=0, low=0, high=MAX_OFFSET) if paged else 0
    return RowsRequest(query=query, columns=chosen, limit=limit, offset=offset)
