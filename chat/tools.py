"""The assistant's grounding tools: look-ups in the CMDB of the latest successful export.

Each tool is a JSON-schema function definition sent to the provider plus a function over the merged rows of the
latest export, answered by the CMDB query layer (``cmdb.table``, the one the CMDB API and page use). Results are
JSON text, capped: at most ``MAX_ROWS`` rows and ``MAX_RESULT_CHARS`` characters, always with the total number of
matches, so a broad question cannot flood the model's context.

Matching rules (documented to the model in the tool descriptions):
- ``name``, ``site``, ``cluster``, ``tenant`` and ``where`` values: case-insensitive substring;
- ``status`` and ``type``: case-insensitive equality (``type`` is ``device`` or ``vm``);
- ``tag``: one of the comma-separated tags, case-insensitive;
- ``ip``: an address matches the address part of any IP column (``10.2.0.4`` finds ``10.2.0.4/24``), a network
  (``10.2.0.0/24``) matches the addresses inside it, anything else is a substring.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from chat import quality_tool
from cmdb.query import Filter, Query
from cmdb.selectors import CmdbPreparing, CmdbUnavailable, cmdb_source
from cmdb.table import RowDicts

MAX_ROWS = 50
MAX_RESULT_CHARS = 12_000
MAX_GROUPS = 50
TYPE_COLUMN = "netbox_type"
IP_COLUMNS = ("IP Address", "IPv4 Address", "IPv6 Address", "OOB IP")
# What a search shows per object: enough to answer most questions; show_object gives every column.
SUMMARY_COLUMNS = ("Name", TYPE_COLUMN, "Status", "Site", "Tenant", "Cluster", "Device", "Role", "Platform",
                   "IP Address", "OOB IP", "Tags")  # fmt: skip
ALIASES = {
    "name": "Name",
    "status": "Status",
    "site": "Site",
    "cluster": "Cluster",
    "tenant": "Tenant",
    "tag": "Tags",
    "tags": "Tags",
    "role": "Role",
    "platform": "Platform",
    "type": TYPE_COLUMN,
    "kind": TYPE_COLUMN,
    "ip": "IP Address",
    "host": "Device",
}
TYPES = {"device": "devices", "devices": "devices", "vm": "vms", "vms": "vms", "virtual machine": "vms",
         "virtual_machine": "vms", "virtual machines": "vms"}  # fmt: skip
NO_EXPORT = "No successful export yet, so the CMDB is empty: an export must run first (Exports page or API)."


class ToolError(Exception):
    """The model called a tool wrongly; the message goes back to it as the tool result."""


_FILTERS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "description": "Part of the name (case-insensitive)."},
    "ip": {"type": "string", "description": "An IP address (10.2.0.4), a network (10.2.0.0/24) or part of one."},
    "site": {"type": "string", "description": "Part of the site name, e.g. FRA1."},
    "cluster": {"type": "string", "description": "Part of the cluster name."},
    "tenant": {"type": "string", "description": "Part of the tenant name."},
    "status": {"type": "string", "description": "Exact status, e.g. Active, Planned, Offline, Decommissioning."},
    "tag": {"type": "string", "description": "A tag the object carries."},
    "type": {"type": "string", "enum": ["device", "vm"], "description": "Only devices or only virtual machines."},
    "where": {
        "type": "object",
        "additionalProperties": {"type": ["string", "null"]},
        "description": 'Other columns, e.g. {"Platform": "RHEL", "OOB IP": null}: a value matches as a '
        "case-insensitive substring; null or an empty string matches an empty cell.",
    },
}

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search_inventory",
            "description": "Find devices and virtual machines in the CMDB (latest export). All filters combine "
            "(AND). Returns the total number of matches and the first matches with their main columns.",
            "parameters": {
                "type": "object",
                "properties": {
                    **_FILTERS,
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "description": "Rows to return."},
                    "columns": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Extra columns to include for each match.",
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "count_inventory",
            "description": "Count devices and virtual machines matching the filters, optionally grouped by a "
            "column (site, status, cluster, tenant, role, platform, type, tag or any column name).",
            "parameters": {
                "type": "object",
                "properties": {**_FILTERS, "group_by": {"type": "string", "description": "Column to group by."}},
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "show_object",
            "description": "Every non-empty column of one device or virtual machine, by its exact name.",
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The exact name (case-insensitive)."},
                    "type": _FILTERS["type"],
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        },
    },
    quality_tool.DEFINITION,
]


def tool_names() -> list[str]:
    return [definition["function"]["name"] for definition in TOOL_DEFINITIONS]


def tool_run(*, name: str, arguments: str) -> str:
    """Run a tool the model called, with its JSON arguments; the result as JSON text (errors included)."""
    runner = _RUNNERS.get(name)
    try:
        if runner is None:
            raise ToolError(f"Unknown tool {name!r}; use one of: {', '.join(tool_names())}.")
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError:
            raise ToolError("The arguments are not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ToolError("The arguments must be a JSON object.")
        try:
            table = cmdb_source().table
        except CmdbUnavailable:
            raise ToolError(NO_EXPORT) from None
        except CmdbPreparing as exc:
            raise ToolError(str(exc)) from None
        result = runner(table.labels, RowDicts(table), parsed)
    except ToolError as exc:
        result = {"error": str(exc)}
    return _capped(result)


# --- the tools ------------------------------------------------------------------------------------------------


def _search(header: list[str], rows: RowDicts, args: dict[str, Any]) -> dict[str, Any]:
    matches, used = _filter(header, rows, args)
    limit = _int(args.get("limit"), default=MAX_ROWS, low=1, high=MAX_ROWS, field="limit")
    extra = [_column(header, c, rows) for c in _strings(args.get("columns"), "columns")]
    summary = [_named(rows, c) for c in SUMMARY_COLUMNS]
    columns = list(dict.fromkeys([c for c in summary if c in header] + used + extra))
    return {
        "total": len(matches),
        "returned": min(limit, len(matches)),
        "results": [_project(rows[row], columns) for row in matches[:limit]],
    }


def _count(header: list[str], rows: RowDicts, args: dict[str, Any]) -> dict[str, Any]:
    matches, _ = _filter(header, rows, args)
    result: dict[str, Any] = {"total": len(matches)}
    if args.get("group_by"):
        column = _column(header, str(args["group_by"]), rows)
        tags = column == _named(rows, "Tags")
        blank = "(none)" if tags else "(empty)"
        counts = rows.table.group_counts(matches, column, split=tags)
        result["group_by"] = column
        result["groups"] = len(counts)
        result["counts"] = [{"value": v or blank, "count": n} for v, n in counts[:MAX_GROUPS]]
        if len(counts) > MAX_GROUPS:
            result["truncated"] = True
    return result


def _show(header: list[str], rows: RowDicts, args: dict[str, Any]) -> dict[str, Any]:
    name = str(args.get("name") or "").strip()
    if not name:
        raise ToolError("Give the name of the device or VM.")
    kind = _type(args.get("type"))
    of_kind = (Filter(TYPE_COLUMN, "eq", kind),) if kind else ()
    found = [rows[row] for row in rows.table.select(Query(filters=(Filter("Name", "eq", name), *of_kind)))]
    if not found:
        similar = rows.table.select(Query(filters=(Filter("Name", "contains", name), *of_kind)))[:10]
        names = [rows.table.cell(row, "Name") for row in similar]
        return {"total": 0, "error": f"No device or VM is named {name!r}.", "similar_names": names}
    return {"total": len(found), "results": [_project(row, [c for c in header if row.get(c)]) for row in found[:5]]}


# A runner gets the merged header, the rows (``RowDicts``: dicts made on demand, ``.table`` for queries) and the
# model's arguments.
_RUNNERS: dict[str, Callable[[list[str], RowDicts, dict[str, Any]], dict[str, Any]]] = {
    "search_inventory": _search,
    "count_inventory": _count,
    "show_object": _show,
    "data_quality": lambda header, rows, args: _data_quality(args),
}


def _data_quality(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return quality_tool.data_quality(args)
    except quality_tool.QualityToolError as exc:
        raise ToolError(str(exc)) from None


# --- matching: filters for the CMDB query layer ---------------------------------------------------------------


def _filter(header: list[str], rows: RowDicts, args: dict[str, Any]) -> tuple[Sequence[int], list[str]]:
    """The rows (indexes, in export order) matching every filter in ``args``, and the columns the filters looked at."""
    filters: list[Filter] = []
    any_of: list[tuple[Filter, ...]] = []
    used: list[str] = []
    for key in ("name", "site", "cluster", "tenant"):
        if args.get(key):
            filters.append(Filter(_named(rows, ALIASES[key]), "contains", str(args[key])))
            used.append(_named(rows, ALIASES[key]))
    if args.get("status"):
        filters.append(Filter(_named(rows, "Status"), "eq", str(args["status"])))
    if args.get("type"):
        filters.append(Filter(TYPE_COLUMN, "eq", _type(args["type"])))
    if args.get("tag"):
        filters.append(Filter(_named(rows, "Tags"), "has", str(args["tag"])))
    if args.get("ip"):
        ip_columns = [c for c in (_named(rows, c) for c in IP_COLUMNS) if c in header]
        any_of.append(tuple(Filter(c, "ip", str(args["ip"]).strip()) for c in ip_columns))
        used += ip_columns
    where = args.get("where") or {}
    if not isinstance(where, dict):
        raise ToolError('"where" must be an object of column name -> value.')
    for raw_column, value in where.items():
        column = _column(header, raw_column, rows)
        used.append(column)
        if value is None or str(value).strip() == "":
            filters.append(Filter(column, "empty"))
        else:
            filters.append(Filter(column, "contains", str(value)))
    unknown = set(args) - set(_FILTERS) - {"limit", "columns", "group_by"}
    if unknown:
        raise ToolError(f"Unknown argument(s): {', '.join(sorted(unknown))}.")
    matches = rows.table.select(Query(filters=tuple(filters), any_of=tuple(any_of)))
    return matches.tolist(), used


def _named(rows: RowDicts, name: str) -> str:
    """A contract column under the header the run's column set gives it (the operator may have renamed it)."""
    for header, contract in rows.table.column_set.contract_sources().items():
        if contract == name:
            return header
    return name


def _column(header: list[str], name: str, rows: RowDicts | None = None) -> str:
    """A column by its name (any case) or an alias (a renamed contract column's alias names it under its header);
    unknown names are the model's error to fix."""
    key = str(name).strip()
    if key.casefold() in ALIASES:
        alias = ALIASES[key.casefold()]
        return _named(rows, alias) if rows is not None else alias
    for column in header:
        if column.casefold() == key.casefold():
            return column
    raise ToolError(f"Unknown column {key!r}. Columns: {', '.join(header)}.")


def _type(value: Any) -> str:
    if not value:
        return ""
    kind = TYPES.get(str(value).strip().casefold())
    if kind is None:
        raise ToolError('"type" must be "device" or "vm".')
    return kind


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ToolError(f'"{field}" must be a list of column names.')
    return value


def _int(value: Any, *, default: int, low: int, high: int, field: str) -> int:
    if value is None:
        return default
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        raise ToolError(f'"{field}" must be a number.') from None


def _project(row: dict[str, str], columns: list[str]) -> dict[str, str]:
    projected = {c: row[c] for c in columns if row.get(c)}
    if TYPE_COLUMN in projected:
        projected["type"] = "vm" if projected.pop(TYPE_COLUMN) == "vms" else "device"
    return projected


def _capped(result: dict[str, Any]) -> str:
    """JSON text of at most ``MAX_RESULT_CHARS``: rows are dropped from the end until it fits."""
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    results = result.get("results")
    while len(text) > MAX_RESULT_CHARS and isinstance(results, list) and results:
        keep = max(0, min(len(results) - 1, len(results) * MAX_RESULT_CHARS // len(text)))
        results = results[:keep]
        result = {**result, "results": results, "returned": len(results), "truncated": True}
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    return text[:MAX_RESULT_CHARS]
