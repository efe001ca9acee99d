"""The CMDB query vocabulary: the datasets, column kinds (number, date, text) and filter operators, the records a
query is made of (``Query``, ``Filter``, ``Column``) and ``QueryError``. Pure: no Django, no numpy.

The matching rules these words stand for are in the docstring of ``cmdb.table``; ``cmdb.matching`` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from exports.columns import DATE as DATE_TYPE
from exports.columns import DATETIME, DECIMAL, INTEGER, NUMERIC_COLUMNS, ColumnSet

DATASETS = ("devices", "vms", "merged")
NUMBER, TEXT, DATE = "number", "text", "date"
DATE_COLUMNS = frozenset(("Created", "Last updated", "HW buy date", "HW warranty expiration"))
IP_COLUMNS = ("IP Address", "IPv4 Address", "IPv6 Address", "OOB IP")
OPERATORS = ("contains", "eq", "empty", "notempty", "gte", "lte", "has", "ip")
RANGE_OPERATORS = ("gte", "lte")


class QueryError(ValueError):
    """A query names an unknown column or asks for something a column cannot do; the message says what is allowed.

    ``field`` is the query parameter at fault (``ordering``, ``fields``, ``q`` or a filter's name).
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def column_key(label: str) -> str:
    """A column's name in URLs: lowercase, runs of other characters as ``_`` (``Memory (MB)`` -> ``memory_mb``)."""
    return re.sub(r"[^0-9a-z]+", "_", label.casefold()).strip("_") or "column"


def column_kind(label: str, kinds: Mapping[str, str] | None = None) -> str:
    """``number``, ``date`` or ``text``: how a column filters and sorts (``kinds``: a run's, by label, from its
    column set: ``column_kinds``; a label it lacks is a contract column under its own name)."""
    if kinds is not None and label in kinds:
        return kinds[label]
    if label in NUMERIC_COLUMNS:
        return NUMBER
    if label in DATE_COLUMNS:
        return DATE
    return TEXT


def column_kinds(column_set: ColumnSet) -> dict[str, str]:
    """Each merged label's kind under a run's column set: a contract column as the contract has it (under the
    header the set gives it), another column by its type (integer and decimal: number; date and date-time: date;
    the rest: text)."""
    kinds = {header: column_kind(name) for header, name in column_set.contract_sources().items()}
    for header, kind in column_set.types().items():
        if header not in kinds:
            kinds[header] = NUMBER if kind in (INTEGER, DECIMAL) else DATE if kind in (DATE_TYPE, DATETIME) else TEXT
    return kinds


@dataclass(frozen=True, slots=True)
class Column:
    """A column as the API shows it: ``key`` for URLs, ``label`` as in the CSV, ``kind`` number/date/text."""

    key: str
    label: str
    kind: str


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition on one column (by label). ``value`` is unused for ``empty`` / ``notempty``."""

    column: str
    op: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Query:
    """What to select: a dataset, AND-ed filters, groups of OR-ed filters, a global search and an ordering.

    ``ordering`` holds column labels, ``-`` first for descending.
    """

    dataset: str = "merged"
    filters: tuple[Filter, ...] = ()
    any_of: tuple[tuple[Filter, ...], ...] = ()
    search: str = ""
    ordering: tuple[str, ...] = ()
