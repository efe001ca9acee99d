"""What an answer rests on: the export run the tools read and every CMDB look-up the assistant made.

Captured around the tool dispatcher (``chat.tools.tool_run``), from the JSON text a tool returns, so it works for
any tool: a result's ``total`` is the number of rows matched, and its rows are the first list of objects under one
of ``ROW_KEYS``. Each row is linked to its object in NetBox (``<NetBox URL>/dcim/devices/<id>/`` or
``…/virtualization/virtual-machines/<id>/``) by its ``ID`` and type when the tool returned them, else by finding
the row of the same name (and type) in the CMDB table the tools read (``cmdb.selectors.cmdb_source``: the run's
mapped table file, no copy of the rows).

The stored shape (``ChatMessage.grounding``)::

    {"export": {"id": 12, "finished": "2026-…"} | null,
     "lookups": [{"tool", "arguments": {...}, "total": int | null, "returned": int, "truncated": bool,
                  "error": str, "rows": [{"name", "type", "netbox_id", "netbox_url", "columns": {...}}]}]}
"""

from __future__ import annotations

import json
from typing import Any

from cmdb.selectors import CmdbPreparing, CmdbUnavailable, cmdb_source
from cmdb.table import CmdbTable
from exports.models import ExportRun
from exports.selectors import export_run_last_success
from integrations.netbox.factory import netbox_object_url, netbox_url

ROW_KEYS = ("results", "rows", "items", "objects", "issues")
MAX_ROWS = 50
MAX_CELL_CHARS = 500
TYPE_COLUMN = "netbox_type"
_TYPES = {"device": "device", "devices": "device", "dcim.device": "device", "vm": "vm", "vms": "vm",
          "virtual machine": "vm", "virtual_machine": "vm", "virtualization.virtualmachine": "vm"}  # fmt: skip


def grounding_export() -> dict[str, Any] | None:
    """The export run whose CMDB the tools read now, as stored on an answer; None when there is none."""
    run = export_run_last_success()
    return export_summary(run) if run else None


def export_summary(run: ExportRun) -> dict[str, Any]:
    return {"id": run.pk, "finished": run.finished.isoformat() if run.finished else None}


def lookup_record(*, tool: str, arguments: str, result: str) -> dict[str, Any]:
    """One look-up as stored: the tool, its arguments, how many rows matched and the rows, each linked to NetBox."""
    try:
        parsed_arguments: Any = json.loads(arguments or "{}")
    except ValueError:
        parsed_arguments = {"_raw": str(arguments)[:MAX_CELL_CHARS]}
    if not isinstance(parsed_arguments, dict):
        parsed_arguments = {"_raw": parsed_arguments}
    try:
        parsed: Any = json.loads(result)
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    rows = _rows(parsed)
    total = parsed.get("total")
    record: dict[str, Any] = {
        "tool": tool,
        "arguments": parsed_arguments,
        "total": total if isinstance(total, int) else (len(rows) if rows else None),
        "returned": len(rows),
        "truncated": bool(parsed.get("truncated")) or len(rows) > MAX_ROWS,
        "error": str(parsed.get("error") or "")[:MAX_CELL_CHARS],
        "rows": _linked(rows[:MAX_ROWS]),
    }
    if isinstance(parsed.get("counts"), list):
        record["groups"] = [
            {"value": str(group.get("value", "")), "count": group.get("count")}
            for group in parsed["counts"][:MAX_ROWS]
            if isinstance(group, dict)
        ]
        record["group_by"] = str(parsed.get("group_by") or "")
    return record


def _rows(parsed: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ROW_KEYS:
        value = parsed.get(key)
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            return value
    return []


def _kind(value: Any) -> str:
    return _TYPES.get(str(value or "").strip().casefold(), "")


def _linked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = netbox_url()
    table: CmdbTable | None = None
    looked = False
    linked = []
    for row in rows:
        name = str(row.get("Name") or row.get("name") or "")
        kind = _kind(row.get("type") or row.get(TYPE_COLUMN) or row.get("kind"))
        netbox_id = _int(row.get("ID") if "ID" in row else row.get("id"))
        if netbox_id is None and name:
            if not looked:
                table, looked = _cmdb_table(), True
            candidates = [r for r in _named(table, name, kind) if _same(r, row)] if table is not None else []
            if len(candidates) == 1:
                netbox_id = _int(candidates[0].get("ID"))
                kind = kind or _kind(candidates[0].get(TYPE_COLUMN))
        url = netbox_object_url(kind=kind or "", object_id=netbox_id, base=base) if netbox_id is not None else ""
        linked.append(
            {
                "name": name,
                "type": kind,
                "netbox_id": netbox_id,
                "netbox_url": url,
                "columns": {str(k): _cell(v) for k, v in row.items() if k != TYPE_COLUMN},
            }
        )
    return linked


def _cmdb_table() -> CmdbTable | None:
    """The table of the newest successful export (the one the tools read), or ``None``."""
    try:
        return cmdb_source().table
    except (CmdbUnavailable, CmdbPreparing):
        return None


def _named(table: CmdbTable, name: str, kind: str) -> list[dict[str, str]]:
    """The CMDB rows of that name (case-insensitive) and type (any type when ``kind`` is empty)."""
    if "Name" not in table.labels:
        return []
    rows = [table.row(int(index)) for index in table.rows_folded_equal("Name", name.casefold())]
    return [row for row in rows if not kind or _kind(row.get(TYPE_COLUMN)) == kind]


def _same(candidate: dict[str, str], row: dict[str, Any]) -> bool:
    """Whether the CMDB row agrees with every plain column the tool returned (tells same-named objects apart)."""
    return all(
        str(candidate.get(column, "")) == str(value)
        for column, value in row.items()
        if column in candidate and column not in ("Name", "ID") and isinstance(value, str | int)
    )


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _cell(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value[:MAX_CELL_CHARS] if isinstance(value, str) else value
    return json.dumps(value, ensure_ascii=False)[:MAX_CELL_CHARS]
