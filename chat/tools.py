"""The assistant's grounding tools: look-ups in the CMDB of the latest successful export.

Each tool is a JSON-schema function definition sent to the provider plus a pure function over the merged CSV's
rows (``exports.selectors.cmdb_rows_latest``). Results are JSON text, capped: at most ``MAX_ROWS`` rows and
``MAX_RESULT_CHARS`` characters, always with the total number of matches, so a broad question cannot flood the
model's context.

Matching rules (documented to the model in the tool descriptions):
- ``name``, ``site``, ``cluster``, ``tenant`` and ``where`` values: case-insensitive substring;
- ``status`` and ``type``: case-insensitive equality (``type`` is ``device`` or ``vm``);
- ``tag``: one of the comma-separated tags, case-insensitive;
- ``ip``: an address matches the address part of any IP column (``10.2.0.4`` finds ``10.2.0.4/24``), a network
  (``10.2.0.0/24``) matches the addresses inside it, anything else is a substring.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from chat import quality_tool
from exports.selectors import cmdb_rows_latest

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
        header, rows = cmdb_rows_latest()
        if not header:
            raise ToolError(NO_EXPORT)
        result = runner(header, rows, parsed)
    except ToolError as exc:
        result = {"error": str(exc)}
    return _capped(result)


# --- the tools ------------------------------------------------------------------------------------------------


def _search(header: list[str], rows: list[dict[str, str]], args: dict[str, Any]) -> dict[str, Any]:
    matches, used = _filter(header, rows, args)
    limit = _int(args.get("limit"), default=MAX_ROWS, low=1, high=MAX_ROWS, field="limit")
    extra = [_column(header, c) for c in _strings(args.get("columns"), "columns")]
    columns = list(dict.fromkeys([c for c in SUMMARY_COLUMNS if c in header] + used + extra))
    return {
        "total": len(matches),
        "returned": min(limit, len(matches)),
        "results": [_project(row, columns) for row in matches[:limit]],
    }


def _count(header: list[str], rows: list[dict[str, str]], args: dict[str, Any]) -> dict[str, Any]:
    matches, _ = _filter(header, rows, args)
    result: dict[str, Any] = {"total": len(matches)}
    if args.get("group_by"):
        column = _column(header, str(args["group_by"]))
        counts: Counter[str] = Counter()
        for row in matches:
            value = row.get(column, "")
            if column == "Tags":
                counts.update(_tags(value) or ["(none)"])
            else:
                counts[value or "(empty)"] += 1
        result["group_by"] = column
        result["groups"] = len(counts)
        result["counts"] = [{"value": v, "count": n} for v, n in counts.most_common(MAX_GROUPS)]
        if len(counts) > MAX_GROUPS:
            result["truncated"] = True
    return result


def _show(header: list[str], rows: list[dict[str, str]], args: dict[str, Any]) -> dict[str, Any]:
    name = str(args.get("name") or "").strip()
    if not name:
        raise ToolError("Give the name of the device or VM.")
    wanted = name.casefold()
    kind = _type(args.get("type"))
    candidates = [r for r in rows if not kind or r.get(TYPE_COLUMN) == kind]
    found = [r for r in candidates if r.get("Name", "").casefold() == wanted]
    if not found:
        similar = [r["Name"] for r in candidates if wanted in r.get("Name", "").casefold()][:10]
        return {"total": 0, "error": f"No device or VM is named {name!r}.", "similar_names": similar}
    return {"total": len(found), "results": [_project(row, [c for c in header if row.get(c)]) for row in found[:5]]}


_RUNNERS: dict[str, Callable[[list[str], list[dict[str, str]], dict[str, Any]], dict[str, Any]]] = {
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


# --- matching -------------------------------------------------------------------------------------------------

Predicate = Callable[[dict[str, str]], bool]


def _filter(
    header: list[str], rows: list[dict[str, str]], args: dict[str, Any]
) -> tuple[list[dict[str, str]], list[str]]:
    """Rows matching every filter in ``args``, and the columns the filters looked at."""
    predicates: list[Predicate] = []
    used: list[str] = []
    for key in ("name", "site", "cluster", "tenant"):
        if args.get(key):
            predicates.append(_contains(ALIASES[key], str(args[key])))
            used.append(ALIASES[key])
    if args.get("status"):
        wanted = str(args["status"]).strip().casefold()
        predicates.append(lambda row: row.get("Status", "").casefold() == wanted)
    if args.get("type"):
        kind = _type(args["type"])
        predicates.append(lambda row: row.get(TYPE_COLUMN) == kind)
    if args.get("tag"):
        tag = str(args["tag"]).strip().casefold()
        predicates.append(lambda row: tag in {t.casefold() for t in _tags(row.get("Tags", ""))})
    if args.get("ip"):
        predicates.append(_ip_matcher(str(args["ip"]).strip()))
        used += [c for c in IP_COLUMNS if c in header]
    where = args.get("where") or {}
    if not isinstance(where, dict):
        raise ToolError('"where" must be an object of column name -> value.')
    for raw_column, value in where.items():
        column = _column(header, raw_column)
        used.append(column)
        if value is None or str(value).strip() == "":
            predicates.append(_empty(column))
        else:
            predicates.append(_contains(column, str(value)))
    unknown = set(args) - set(_FILTERS) - {"limit", "columns", "group_by"}
    if unknown:
        raise ToolError(f"Unknown argument(s): {', '.join(sorted(unknown))}.")
    return [row for row in rows if all(p(row) for p in predicates)], used


def _empty(column: str) -> Predicate:
    return lambda row: not row.get(column, "").strip()


def _contains(column: str, value: str) -> Predicate:
    needle = value.strip().casefold()
    return lambda row: needle in row.get(column, "").casefold()


def _ip_matcher(value: str) -> Predicate:
    def addresses(row: dict[str, str]) -> Iterable[str]:
        for column in IP_COLUMNS:
            for cell in row.get(column, "").replace(";", ",").split(","):
                if cell.strip():
                    yield cell.strip()

    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            return lambda row: any(_in_network(a, network) for a in addresses(row))
        address = ipaddress.ip_address(value)
        return lambda row: any(a.split("/")[0] == str(address) for a in addresses(row))
    except ValueError:
        needle = value.casefold()
        return lambda row: any(needle in a.casefold() for a in addresses(row))


def _in_network(cell: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(cell.split("/")[0]) in network
    except ValueError:
        return False


def _column(header: list[str], name: str) -> str:
    """A column by its name (any case) or an alias; unknown names are the model's error to fix."""
    key = str(name).strip()
    if key.casefold() in ALIASES:
        return ALIASES[key.casefold()]
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


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


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
