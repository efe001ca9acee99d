"""One column of a CMDB table and how its cells match: a code per row into the column's distinct values, with what
the table file precomputed per distinct value (case-folded text, sort rank, flags, numbers), and the per-distinct-
value truth table of a filter.

Pure: no Django, and no pyarrow at query time: the arrays are numpy views over the mapped table file
(``cmdb.columnar``). Substrings are found with ``find`` over a column's folded bytes in place (a byte match of UTF-8
text is a character match), equality as a substring of the same length, date ranges byte-wise for ASCII values;
Python judges only the few values the byte-wise tests cannot (padded text, list items, addresses, non-ASCII dates).
``cmdb.table`` spreads these per-value answers over the rows; the rules are in its docstring.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from cmdb.columnar import (
    BLANK,
    DATE_BOUND,
    DATED,
    HAS_SEP,
    NEWLINE,
    NON_ASCII,
    PADDED,
    SEP,
    ColumnArrays,
    Strings,
    to_float,
)
from cmdb.query import DATE, NUMBER, OPERATORS, RANGE_OPERATORS, Filter, QueryError, column_kind

__all__ = ["SEP", "ColumnData", "value_table"]


@dataclass(slots=True)
class ColumnData:
    """One column: a code per row into its distinct values, and their precomputed query data (all mapped)."""

    label: str
    kind: str
    codes: np.ndarray
    values: Strings
    folded: Strings
    rank_up: np.ndarray
    flags: np.ndarray
    number_values: np.ndarray | None
    empty_code: int
    ranked: int

    @classmethod
    def of(cls, arrays: ColumnArrays, kind: str | None = None) -> ColumnData:
        size = len(arrays.values)
        empty = np.flatnonzero(arrays.ranks == size)
        empty_code = int(empty[0]) if len(empty) else -1
        return cls(
            label=arrays.label,
            kind=kind or column_kind(arrays.label),
            codes=arrays.codes,
            values=arrays.values,
            folded=arrays.folded,
            rank_up=arrays.ranks,
            flags=arrays.flags,
            number_values=arrays.numbers,
            empty_code=empty_code,
            ranked=size - (1 if empty_code >= 0 else 0),
        )

    def __len__(self) -> int:
        return len(self.values)

    def value(self, code: int) -> str:
        return self.values.get(code)

    def take(self, codes: np.ndarray) -> list[str]:
        """The distinct values of ``codes``, as Python text."""
        return self.values.take(codes)

    def folded_of(self, codes: np.ndarray) -> list[str]:
        return self.folded.take(codes)

    def flagged(self, flag: int) -> np.ndarray:
        """The codes whose values carry ``flag``."""
        return np.flatnonzero(self.flags & flag)

    def lengths(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ``codes``: each value's longest line and its length, in characters."""
        values = self.values.lengths()[codes].astype(np.int64)  # bytes: characters for ASCII values
        lines = values.copy()
        special = np.flatnonzero(self.flags[codes] & (NEWLINE | NON_ASCII))
        for position, value in zip(special.tolist(), self.take(codes[special]), strict=True):
            values[position] = len(value)
            lines[position] = max(map(len, value.split("\n")))
        return lines, values

    def contains(self, needle: str) -> np.ndarray:
        """Which distinct values hold ``needle`` once folded (``needle`` folded already)."""
        return self.folded.contains(needle)

    def equals(self, text: str) -> np.ndarray:
        """Which distinct values, once folded, are exactly ``text``."""
        return self.folded.equal(text)

    def search(self, needle: str) -> np.ndarray | None:
        """Which distinct values contain ``needle`` (folded, without the separator), or ``None`` when none does.

        A value's separator characters count as spaces here (a search term, split on whitespace, holds neither).
        """
        table = self.contains(needle)
        if " " in needle:
            for code in self.flagged(HAS_SEP).tolist():
                table[code] = needle in self.folded.get(code).replace(SEP, " ")
        return table if table.any() else None

    def search_values(self, needle: str, codes: np.ndarray) -> list[bool]:
        """``search`` for a few distinct values only (``codes``), tested one by one."""
        if " " in needle:
            return [needle in value.replace(SEP, " ") for value in self.folded_of(codes)]
        return [needle in value for value in self.folded_of(codes)]

    def numbers(self) -> np.ndarray:
        """The distinct values as floats; NaN for blanks and text."""
        if self.number_values is None:
            self.number_values = np.array([to_float(value) for value in self.take(np.arange(len(self)))])
        return self.number_values

    def ranks(self, descending: bool) -> np.ndarray:
        """A sort rank per distinct value; blanks rank after everything in both directions."""
        return self.rank_up if not descending else self.rank_down(self.rank_up)

    def rank_down(self, ranks: np.ndarray) -> np.ndarray:
        """Ascending ranks -> descending ones (blanks stay last)."""
        size = len(self)
        return np.where(ranks == size, size, self.ranked - 1 - ranks).astype(np.int32)


def value_check(data: ColumnData, condition: Filter) -> None:
    """The ``QueryError`` ``value_table`` would raise for this condition, if any, without evaluating it."""
    if condition.op in RANGE_OPERATORS:
        _range_bound(data, condition.op, condition.value)
    elif condition.op not in OPERATORS:
        raise QueryError(
            f"Unknown filter {condition.op!r}; use one of: {', '.join(OPERATORS)}.", field=condition.column
        )


def value_table(data: ColumnData, condition: Filter) -> np.ndarray:
    """Whether each distinct value of the column meets the condition."""
    op, raw = condition.op, condition.value
    size = len(data)
    if op in ("empty", "notempty"):
        blank = (data.flags & BLANK).astype(bool)
        return blank if op == "empty" else ~blank
    needle = raw.strip().casefold()
    if op == "contains":
        return data.contains(needle)
    if op == "eq":
        if data.kind == NUMBER and not math.isnan(to_float(raw)):
            return data.numbers() == to_float(raw)  # type: ignore[no-any-return]
        table = data.equals(needle)
        padded = data.flagged(PADDED)
        table[padded] = [value.strip() == needle for value in data.folded_of(padded)]
        return table
    if op in RANGE_OPERATORS:
        return _range_table(data, op, raw)
    if op == "has":
        if not needle:
            return np.zeros(size, dtype=bool)
        return _checked(data, data.contains(needle), True, lambda value: needle in _items(value))
    if op == "ip":
        prefilter, match = _ip_matcher(raw.strip())
        return _checked(data, data.contains(prefilter), False, match)
    raise QueryError(f"Unknown filter {op!r}; use one of: {', '.join(OPERATORS)}.", field=condition.column)


def _items(value: str) -> set[str]:
    return {item.strip() for item in value.split(",") if item.strip()}


def _checked(data: ColumnData, candidates: np.ndarray, folded: bool, match: Callable[[str], bool]) -> np.ndarray:
    """``candidates`` (a superset found byte-wise) narrowed by ``match`` in Python."""
    codes = np.flatnonzero(candidates)
    table = np.zeros(len(data), dtype=bool)
    texts = data.folded_of(codes) if folded else data.take(codes)
    table[codes] = [match(text) for text in texts]
    return table


def _date_table(data: ColumnData, op: str, bound: str) -> np.ndarray:
    """``value[:len(bound)] >= bound`` (or ``<=``) for the values that start with a date.

    ASCII values byte-wise: their first ``len(bound)`` bytes, padded with NUL (which sorts before every character of
    a bound, as a shorter prefix does), compared at their first difference; the others in Python.
    """
    width = len(bound)
    is_dated = (data.flags & DATED).astype(bool)
    is_ascii = ~(data.flags & NON_ASCII).astype(bool) if bound.isascii() else np.zeros(len(data), dtype=bool)
    dated = np.flatnonzero(is_dated & is_ascii)
    table = np.zeros(len(data), dtype=bool)
    if len(dated):
        starts = data.values.offsets[dated].astype(np.int64)
        lengths = data.values.lengths()[dated].astype(np.int64)
        columns = np.arange(width)
        heads = data.values.data[np.minimum(starts[:, None] + columns, len(data.values.data) - 1)]
        heads = np.where(columns < lengths[:, None], heads, 0)
        wanted = np.frombuffer(bound.encode(), dtype=np.uint8)
        differ = heads != wanted
        first = differ.argmax(axis=1)
        sign = np.where(
            differ.any(axis=1), np.sign(heads[np.arange(len(dated)), first].astype(np.int16) - wanted[first]), 0
        )
        table[dated] = sign >= 0 if op == "gte" else sign <= 0
    others = np.flatnonzero(is_dated & ~is_ascii)
    for code, value in zip(others.tolist(), data.take(others), strict=True):
        table[code] = value[:width] >= bound if op == "gte" else value[:width] <= bound
    return table


def _range_bound(data: ColumnData, op: str, raw: str) -> str | float:
    """The bound of a range condition: a number for number columns, ISO text for date columns; else ``QueryError``."""
    bound = raw.strip()
    if data.kind == NUMBER:
        number = to_float(bound)
        if math.isnan(number):
            raise QueryError(f"{data.label!r} needs a number for {op}, not {raw!r}.", field=data.label)
        return number
    if data.kind == DATE:
        bound = bound.replace(" ", "T")
        if not DATE_BOUND.fullmatch(bound):
            raise QueryError(
                f"{data.label!r} needs an ISO date for {op} (2024, 2024-05, 2024-05-31 or 2024-05-31T12:00), "
                f"not {raw!r}.",
                field=data.label,
            )
        return bound
    raise QueryError(
        f"{data.label!r} is a text column: ranges (gte, lte) apply to numbers and dates.", field=data.label
    )


def _range_table(data: ColumnData, op: str, raw: str) -> np.ndarray:
    bound = _range_bound(data, op, raw)
    if isinstance(bound, float):
        numbers = data.numbers()
        with np.errstate(invalid="ignore"):
            return numbers >= bound if op == "gte" else numbers <= bound  # type: ignore[no-any-return]
    return _date_table(data, op, bound)


def _ip_matcher(value: str) -> tuple[str, Callable[[str], bool]]:
    """A test of one cell for an address, a network or a fragment, and a folded text every matching cell holds."""

    def addresses(cell: str) -> Iterator[str]:
        for part in cell.replace(";", ",").split(","):
            if part.strip():
                yield part.strip()

    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            if network.version == 4:
                # An IPv4 address in a cell is in its one written form, so it starts with the network's whole octets.
                octets = str(network.network_address).split(".")[: network.prefixlen // 8]
                prefilter = ".".join(octets) + "." if len(octets) < 4 else ".".join(octets)
            else:
                prefilter = ":"
            return prefilter, lambda cell: any(_in_network(address, network) for address in addresses(cell))
        address = str(ipaddress.ip_address(value))
        return address.casefold(), lambda cell: any(part.split("/")[0] == address for part in addresses(cell))
    except ValueError:
        needle = value.casefold()
        return needle, lambda cell: any(needle in part.casefold() for part in addresses(cell))


def _in_network(cell: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(cell.split("/")[0]) in network
    except ValueError:
        return False
