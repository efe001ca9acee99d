"""One cell at a time: NetBox values rendered as CMDB cells (numbers, timestamps, tags, rack positions, custom
fields) and the Contacts cell of each object. Pure functions: no Django, no I/O.

Rendering conventions (the writers rely on them):

- A cell is ``str``, ``int`` or ``float``. Empty is always ``""``, never ``None``, so a row compares equal to what
  the csv module reads back and the workbook writer has one thing to skip.
- Numbers stay numbers (ID, counts, Position, VCPUs, Memory (MB), Disk, Latitude, Longitude, VC Position,
  VC Priority) so the workbook can type them; an integral float becomes an ``int`` (``41``, not ``41.0``).
- Custom fields: ``None`` -> ``""``, booleans -> ``"True"``/``"False"``, numbers stay numbers, lists are joined
  with ``", "``, objects render as their name (else display, label, value; JSON as a last resort, never a repr).
  Select fields keep NetBox's value (the API returns the value, not the label).
- Timestamps are UTC ``YYYY-MM-DDTHH:MM:SSZ``; a value that is not ISO 8601 is kept as NetBox sent it.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from integrations.netbox.records import ContactAssignmentRecord

Cell = str | int | float
Row = tuple[Cell, ...]

# NetBox's ContactPriorityChoices in their own order; no priority sorts last, an unknown one just before it.
_PRIORITY_RANK = {"primary": 0, "secondary": 1, "tertiary": 2, "inactive": 3}
_UNKNOWN_PRIORITY_RANK = 4
_NO_PRIORITY_RANK = 5

# NetBox's own format (microseconds, "Z"); anything else goes through datetime for offsets and odd precisions.
_NETBOX_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


@lru_cache(maxsize=4096)
def normalise_name(name: str) -> str:
    """A custom field or column name reduced for matching: lowercase, without spaces, ``_`` and ``-``."""
    return name.lower().replace(" ", "").replace("_", "").replace("-", "")


def contacts_by_object(assignments: Iterable[ContactAssignmentRecord]) -> dict[tuple[str, int], str]:
    """The Contacts cell of every object that has assignments, keyed by (object type, object id).

    Held for the whole run, one entry per object with contacts: the object types and the cells are shared strings
    (a few contacts make most cells, and each decoded record carries a copy of its type), not one copy per object.
    """
    by_object: dict[tuple[str, int], list[ContactAssignmentRecord]] = defaultdict(list)
    shared: dict[str, str] = {}
    for assignment in assignments:
        object_type = shared.setdefault(assignment.object_type, assignment.object_type)
        by_object[(object_type, assignment.object_id)].append(assignment)
    cells: dict[str, str] = {}
    rendered = {}
    for key, group in by_object.items():
        cell = render_contacts(group)
        rendered[key] = cells.setdefault(cell, cell)
    return rendered


# A contact assignment as the Contacts cell needs it: its priority, contact and role.
ContactEntry = tuple[str, str, str]


class ContactsFolder:
    """The Contacts cells of one listing's assignments, folded a page at a time (``add``) instead of from every
    record at once: per object only a tuple of shared entries is kept (an object's assignments, in the order they
    came), each distinct entry and each distinct tuple once; ``cells`` renders each distinct tuple once. The cells
    are ``contacts_by_object``'s for the same assignments, in the same order."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[int, tuple[ContactEntry, ...]]] = {}  # object type -> object id -> entries
        self._shared: dict[Any, Any] = {}

    def add(self, assignment: ContactAssignmentRecord) -> None:
        shared = self._shared
        of_type = self.groups.get(assignment.object_type)
        if of_type is None:
            of_type = self.groups[shared.setdefault(assignment.object_type, assignment.object_type)] = {}
        entry = (assignment.priority, assignment.contact, assignment.role)
        entry = shared.setdefault(entry, entry)
        group = (*of_type.get(assignment.object_id, ()), entry)
        of_type[assignment.object_id] = shared.setdefault(group, group)

    @staticmethod
    def cells(folders: Iterable[ContactsFolder]) -> dict[tuple[str, int], str]:
        """Every object's cell by ``(object type, object id)``, the folders' objects in turn (each folder emptied
        as it is rendered), each distinct set of entries rendered once and its cell shared."""
        rendered: dict[tuple[ContactEntry, ...], str] = {}
        cells = {}
        for folder in folders:
            groups, folder.groups = folder.groups, {}
            for object_type, of_type in groups.items():
                for object_id, group in of_type.items():
                    cell = rendered.get(group)
                    if cell is None:
                        cell = rendered[group] = _render_entries(group)
                    cells[(object_type, object_id)] = cell
        return cells


def _render_entries(entries: Iterable[ContactEntry]) -> str:
    """``render_contacts`` of assignments given as ``(priority, contact, role)``."""

    def rank(entry: ContactEntry) -> tuple[int, str, str]:
        priority = entry[0].lower()
        level = _PRIORITY_RANK.get(priority, _UNKNOWN_PRIORITY_RANK) if priority else _NO_PRIORITY_RANK
        return (level, entry[1], entry[2])

    seen: dict[str, None] = {}
    for _, contact, role in sorted(entries, key=rank):
        if not contact:
            continue
        seen.setdefault(f"{contact} ({role})" if role else contact, None)
    return ", ".join(seen)


def render_contacts(assignments: Iterable[ContactAssignmentRecord]) -> str:
    """Contacts as ``"Name (Role), Name"``: by priority (primary, secondary, tertiary, inactive, none), then name,
    then role; each rendered entry once."""

    return _render_entries((assignment.priority, assignment.contact, assignment.role) for assignment in assignments)


def render_tags(tags: Iterable[str]) -> str:
    """Tags unique, sorted case-insensitively (ties by code point so the order is total), joined ``", "``."""
    return ", ".join(sorted({tag for tag in tags if tag}, key=lambda tag: (tag.casefold(), tag)))


def render_timestamp(value: str) -> str:
    """A NetBox timestamp as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (fractions dropped, offsets converted)."""
    if not value:
        return ""
    if _NETBOX_TIMESTAMP.fullmatch(value):
        return value[:19] + "Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        # Losing an unparseable value would hide it from the CMDB; keeping it shows the odd data.
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_number(value: int | float | None) -> Cell:
    """A number as ``int`` when integral (NetBox sends positions and VCPUs as ``41.0``), ``""`` when absent."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def render_rack_position(face: str, position: int | float | None) -> str:
    """``"<face label> <position>"`` (``"Front 41"``); just the position without a face, empty without one."""
    number = render_number(position)
    if number == "":
        return ""
    return f"{face} {number}" if face else str(number)


def _object_text(value: Mapping[str, Any]) -> str:
    for key in ("name", "display", "label", "value"):
        text = value.get(key)
        if text is not None and text != "":
            return str(text)
    # Still not a Python repr: JSON with sorted keys is readable and deterministic.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str) if value else ""


def _text(value: Any) -> str:
    rendered = render_custom_field(value)
    return rendered if isinstance(rendered, str) else str(rendered)


def render_custom_field(value: Any) -> Cell:
    """One custom field value as a cell (see the module docstring for the rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return render_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return _object_text(value)
    if isinstance(value, list | tuple):
        return ", ".join(text for text in (_text(item) for item in value) if text)
    return str(value)


def custom_fields_normalised(custom_fields: Mapping[str, Any]) -> dict[str, Any]:
    """Custom fields keyed by normalised name. When names normalise alike, the first non-empty value in sorted name
    order wins, so every run resolves them the same way."""
    normalised: dict[str, Any] = {}
    for key, names in _custom_field_plan(tuple(custom_fields)):
        value = custom_fields[names[-1]]
        for name in names[:-1]:
            if custom_fields[name] not in _EMPTY_VALUES:
                value = custom_fields[name]
                break
        normalised[key] = value
    return normalised


_EMPTY_VALUES: tuple[Any, ...] = (None, "", [], {})


@lru_cache(maxsize=256)
def _custom_field_plan(names: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each normalised key with the custom field names that share it, sorted. Every object of a kind carries the
    same names, so this is worked out once per export rather than once per object."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(normalise_name(name), []).append(name)
    return tuple((key, tuple(group)) for key, group in groups.items())


def render_typed(value: Any, kind: str) -> Cell:
    """A custom field's or an API path's value as a cell of a column of type ``kind`` (``exports.columns``): numbers
    as numbers (``""`` when the value is not one), dates as NetBox writes them (``YYYY-MM-DD``), date-times as UTC
    timestamps, booleans as ``True``/``False``, text as text (lists joined like Tags, objects by name)."""
    if value is None or value == "":
        return ""
    if kind in ("integer", "decimal"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return render_number(value)
        if isinstance(value, str):  # NetBox may send a decimal as text
            try:
                return render_number(float(value)) if math.isfinite(float(value)) else ""
            except ValueError:
                return ""
        return ""
    if kind == "boolean":
        return ("True" if value else "False") if isinstance(value, bool) else _text(value)
    if kind == "datetime":
        return render_timestamp(value) if isinstance(value, str) else _text(value)
    if isinstance(value, list | tuple):
        return render_tags(_text(item) for item in value)
    return _text(value)
