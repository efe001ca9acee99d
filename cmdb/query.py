"""The CMDB query vocabulary: the datasets, column kinds (number, date, text) and filter operators, the records a
query is made of (``Query``, ``Filter``, ``Column``) and ``QueryError``. Pure: no Django, no numpy.

The matching rules these words stand for are in the docstring of ``cmdb.table``; ``cmdb.matching`` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exports.columns import NUMERIC_COLUMNS

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


def column_kind(label: str) -> str:
    """``number``, ``date`` or ``text``: how a column filters and sorts."""
    if label in NUMERIC_COLUMNS:
        return NUMBER
    if label in DATE_COLUMNS:
        return DATE
    return TEXT


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
