"""One column of a CMDB table and how its cells match: the distinct values with a code per row, their case-folded
search text, numbers and sort ranks (built on demand), and the per-distinct-value truth table of a filter.

Pure: no Django. ``cmdb.table`` spreads these per-value answers over the rows; the rules are in its docstring.
"""

from __future__ import annotations

import ipaddress
import math
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmdb.query import DATE, NUMBER, OPERATORS, RANGE_OPERATORS, Filter, QueryError, column_kind

# Separates a column's distinct values in its search text; dropped from search terms, so a match stays in one value.
SEP = "\x1e"
_DIGITS = re.compile(r"(\d+)")
_DATE_BOUND = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:T\d\d(?::\d\d(?::\d\d)?)?)?)?)?")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(slots=True)
class ColumnData:
    """One column: a code per row into ``values`` (distinct cells), plus per-distinct-value caches built on demand."""

    label: str
    kind: str
    codes: np.ndarray
    values: list[str]
    empty_code: int
    _folded: list[str] | None = None
    _array: np.ndarray | None = None
    _text: str | None = None
    _starts: list[int] = field(default_factory=list)
    _numbers: np.ndarray | None = None
    _ranks: dict[bool, np.ndarray] = field(default_factory=dict)
    _lengths: tuple[np.ndarray, np.ndarray] | None = None

    def array(self) -> np.ndarray:
        """The distinct values as an object array, for taking cells by code."""
        if self._array is None:
            self._array = np.array(self.values, dtype=object)
        return self._array

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct value: its longest line and its length, in characters."""
        if self._lengths is None:
            lines = [max(map(len, value.split("\n"))) if "\n" in value else len(value) for value in self.values]
            self._lengths = (np.array(lines, dtype=np.int64), np.fromiter(map(len, self.values), dtype=np.int64))
        return self._lengths

    def folded(self) -> list[str]:
        if self._folded is None:
            self._folded = [value.casefold() for value in self.values]
        return self._folded

    def search(self, needle: str) -> np.ndarray | None:
        """Which distinct values contain ``needle`` (folded), or ``None`` when none does.

        ``str.find`` over one text of the folded distinct values, jumping to the next value after each hit; when
        hits are many (a one-letter search), a plain test of every value is cheaper and takes over.
        """
        if self._text is None:
            folded = [value.replace(SEP, " ") for value in self.folded()]
            starts: list[int] = []
            position = 0
            for value in folded:
                starts.append(position)
                position += len(value) + 1
            self._starts, self._text = starts, SEP.join(folded)
        text, starts = self._text, self._starts
        position = text.find(needle)
        if position == -1:
            return None
        table = np.zeros(len(starts), dtype=bool)
        last = len(starts) - 1
        budget = max(64, len(starts) // 8)
        while position != -1:
            index = bisect_right(starts, position) - 1
            table[index] = True
            budget -= 1
            if index >= last:
                break
            if not budget:
                return np.array([needle in value for value in self.folded()], dtype=bool)
            position = text.find(needle, starts[index + 1])
        return table

    def numbers(self) -> np.ndarray:
        """The distinct values as floats; NaN for blanks and text."""
        if self._numbers is None:
            self._numbers = np.array([_float(value) for value in self.values], dtype=np.float64)
        return self._numbers

    def ranks(self, descending: bool) -> np.ndarray:
        """A sort rank per distinct value; blanks rank after everything in both directions."""
        cached = self._ranks.get(descending)
        if cached is not None:
            return cached
        if self.kind == NUMBER:
            numbers = self.numbers()
            folded = self.folded()
            # Numbers first (by value), then any text a number column holds (by text).
            keys: list[Any] = [
                (0, number, "") if not math.isnan(number) else (1, 0.0, folded[code])
                for code, number in enumerate(numbers)
            ]
        elif self.kind == DATE:
            keys = self.folded()
        else:
            keys = [(_natural(text), raw) for text, raw in zip(self.folded(), self.values, strict=True)]
        order = sorted((code for code in range(len(self.values)) if code != self.empty_code), key=keys.__getitem__)
        ranks = np.empty(len(self.values), dtype=np.int32)
        positions = np.arange(len(order), dtype=np.int32)
        if descending:
            positions = positions[::-1].copy()
        ranks[np.array(order, dtype=np.int64)] = positions
        if self.empty_code >= 0:
            ranks[self.empty_code] = len(self.values)
        self._ranks[descending] = ranks
        return ranks


def _float(value: str) -> float:
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        return math.nan
    number = float(text)
    return number if math.isfinite(number) else math.nan


def _natural(text: str) -> list[Any]:
    """A key that orders digit runs by their number (``srv2`` < ``srv10``) without converting them to ``int``."""
    parts: list[Any] = _DIGITS.split(text)
    for index in range(1, len(parts), 2):
        digits = parts[index].lstrip("0")
        parts[index] = (len(digits), digits)
    return parts


def factorize(label: str, cells: Sequence[str], kind: str | None = None) -> ColumnData:
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(cells, dtype=object), sort=False)
    values = [str(value) for value in uniques.tolist()]
    try:
        empty_code = values.index("")
    except ValueError:
        empty_code = -1
    return ColumnData(
        label=label,
        kind=kind or column_kind(label),
        codes=codes.astype(np.int32),
        values=values,
        empty_code=empty_code,
    )


def value_table(data: ColumnData, condition: Filter) -> np.ndarray:
    """Whether each distinct value of the column meets the condition."""
    op, raw = condition.op, condition.value
    size = len(data.values)
    table = np.zeros(size, dtype=bool)
    if op in ("empty", "notempty"):
        blank = np.array([not value.strip() for value in data.values], dtype=bool)
        return blank if op == "empty" else ~blank
    needle = raw.strip().casefold()
    if op == "contains":
        table[:] = [needle in value for value in data.folded()]
    elif op == "eq":
        if data.kind == NUMBER and not math.isnan(_float(raw)):
            table[:] = data.numbers() == _float(raw)
        else:
            table[:] = [value.strip() == needle for value in data.folded()]
    elif op in RANGE_OPERATORS:
        table[:] = _range_table(data, op, raw)
    elif op == "has":
        table[:] = [needle in {item.strip() for item in value.split(",") if item.strip()} for value in data.folded()]
    elif op == "ip":
        match = _ip_matcher(raw.strip())
        table[:] = [match(value) for value in data.values]
    else:
        raise QueryError(f"Unknown filter {op!r}; use one of: {', '.join(OPERATORS)}.", field=condition.column)
    return table


def _range_table(data: ColumnData, op: str, raw: str) -> np.ndarray | list[bool]:
    bound = raw.strip()
    if data.kind == NUMBER:
        number = _float(bound)
        if math.isnan(number):
            raise QueryError(f"{data.label!r} needs a number for {op}, not {raw!r}.", field=data.label)
        numbers = data.numbers()
        with np.errstate(invalid="ignore"):
            return numbers >= number if op == "gte" else numbers <= number
    if data.kind == DATE:
        bound = bound.replace(" ", "T")
        if not _DATE_BOUND.fullmatch(bound):
            raise QueryError(
                f"{data.label!r} needs an ISO date for {op} (2024, 2024-05, 2024-05-31 or 2024-05-31T12:00), "
                f"not {raw!r}.",
                field=data.label,
            )
        width = len(bound)
        dated = [bool(_DATE_BOUND.match(value)) for value in data.values]
        if op == "gte":
            return [ok and value[:width] >= bound for ok, value in zip(dated, data.values, strict=True)]
        return [ok and value[:width] <= bound for ok, value in zip(dated, data.values, strict=True)]
    raise QueryError(
        f"{data.label!r} is a text column: ranges (gte, lte) apply to numbers and dates.", field=data.label
    )


def _ip_matcher(value: str) -> Any:
    def addresses(cell: str) -> Iterator[str]:
        for part in cell.replace(";", ",").split(","):
            if part.strip():
                yield part.strip()

    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            return lambda cell: any(_in_network(address, network) for address in addresses(cell))
        address = str(ipaddress.ip_address(value))
        return lambda cell: any(part.split("/")[0] == address for part in addresses(cell))
    except ValueError:
        needle = value.casefold()
        return lambda cell: any(needle in part.casefold() for part in addresses(cell))


def _in_network(cell: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(cell.split("/")[0]) in network
    except ValueError:
        return False
