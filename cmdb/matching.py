"""One column of a CMDB table and how its cells match: a code per row into the column's distinct values, with what
the table file precomputed per distinct value (case-folded text, sort rank, flags, numbers), and the per-distinct-
value truth table of a filter.

Pure: no Django. The arrays are views over the mapped table file (``cmdb.columnar``); a filter is evaluated over the
distinct values with Arrow's vectorised string kernels (``pyarrow.compute``) where they give the same answer as
Python's ``str`` (substring and equality of UTF-8 text), and in Python only for the few values they cannot judge
alone (padded text, list items, addresses). ``cmdb.table`` spreads these per-value answers over the rows; the rules
are in its docstring.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cmdb.columnar import BLANK, DATE_BOUND, DATED, HAS_SEP, NEWLINE, PADDED, SEP, ColumnArrays, to_float
from cmdb.query import DATE, NUMBER, OPERATORS, RANGE_OPERATORS, Filter, QueryError, column_kind

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SEP", "ColumnData", "value_table"]


@dataclass(slots=True)
class ColumnData:
    """One column: a code per row into its distinct values, and their precomputed query data (all mapped)."""

    label: str
    kind: str
    codes: np.ndarray
    values: pa.StringArray
    folded: pa.StringArray
    rank_up: np.ndarray
    flags: np.ndarray
    number_values: np.ndarray | None
    empty_code: int
    ranked: int

    @classmethod
    def of(cls, arrays: ColumnArrays) -> ColumnData:
        size = len(arrays.values)
        empty = np.flatnonzero(arrays.ranks == size)
        empty_code = int(empty[0]) if len(empty) else -1
        return cls(
            label=arrays.label,
            kind=column_kind(arrays.label),
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
        return str(self.values[code].as_py())

    def take(self, codes: np.ndarray) -> list[str]:
        """The distinct values of ``codes``, as Python text."""
        if not len(codes):
            return []
        return self.values.take(codes).to_pylist()  # type: ignore[no-any-return]

    def folded_of(self, codes: np.ndarray) -> list[str]:
        if not len(codes):
            return []
        return self.folded.take(codes).to_pylist()  # type: ignore[no-any-return]

    def flagged(self, flag: int) -> np.ndarray:
        """The codes whose values carry ``flag``."""
        return np.flatnonzero(self.flags & flag)

    def lengths(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ``codes``: each value's longest line and its length, in characters."""
        import pyarrow.compute as pc

        values = pc.utf8_length(self.values.take(codes)).to_numpy(zero_copy_only=False).astype(np.int64)
        lines = values.copy()
        multi = np.flatnonzero(self.flags[codes] & NEWLINE)
        for position, value in zip(multi.tolist(), self.take(codes[multi]), strict=True):
            lines[position] = max(map(len, value.split("\n")))
        return lines, values

    def contains(self, needle: str) -> np.ndarray:
        """Which distinct values hold ``needle`` once folded (``needle`` folded already)."""
        import pyarrow.compute as pc

        if not needle:
            return np.ones(len(self), dtype=bool)
        return pc.match_substring(self.folded, needle).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]

    def search(self, needle: str) -> np.ndarray | None:
        """Which distinct values contain ``needle`` (folded, without the separator), or ``None`` when none does.

        A value's separator characters count as spaces here, so a match stays inside one value.
        """
        table = self.contains(needle)
        for code in self.flagged(HAS_SEP).tolist():
            table[code] = needle in self.folded_of(np.array([code]))[0].replace(SEP, " ")
        return table if table.any() else None

    def numbers(self) -> np.ndarray:
        """The distinct values as floats; NaN for blanks and text."""
        if self.number_values is None:
            self.number_values = np.array([to_float(value) for value in self.values.to_pylist()], dtype=np.float64)
        return self.number_values

    def ranks(self, descending: bool) -> np.ndarray:
        """A sort rank per distinct value; blanks rank after everything in both directions."""
        return self.rank_up if not descending else self.rank_down(self.rank_up)

    def rank_down(self, ranks: np.ndarray) -> np.ndarray:
        """Ascending ranks -> descending ones (blanks stay last)."""
        size = len(self)
        return np.where(ranks == size, size, self.ranked - 1 - ranks).astype(np.int32)


def value_table(data: ColumnData, condition: Filter) -> np.ndarray:
    """Whether each distinct value of the column meets the condition."""
    import pyarrow.compute as pc

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
        table = pc.equal(data.folded, needle).to_numpy(zero_copy_only=False)
        padded = data.flagged(PADDED)
        table[padded] = [value.strip() == needle for value in data.folded_of(padded)]
        return table  # type: ignore[no-any-return]
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
    """``candidates`` (a superset found by the vectorised kernels) narrowed by ``match`` in Python."""
    codes = np.flatnonzero(candidates)
    table = np.zeros(len(data), dtype=bool)
    texts = data.folded_of(codes) if folded else data.take(codes)
    table[codes] = [match(text) for text in texts]
    return table


def _range_table(data: ColumnData, op: str, raw: str) -> np.ndarray:
    import pyarrow.compute as pc

    bound = raw.strip()
    if data.kind == NUMBER:
        number = to_float(bound)
        if math.isnan(number):
            raise QueryError(f"{data.label!r} needs a number for {op}, not {raw!r}.", field=data.label)
        numbers = data.numbers()
        with np.errstate(invalid="ignore"):
            return numbers >= number if op == "gte" else numbers <= number  # type: ignore[no-any-return]
    if data.kind == DATE:
        bound = bound.replace(" ", "T")
        if not DATE_BOUND.fullmatch(bound):
            raise QueryError(
                f"{data.label!r} needs an ISO date for {op} (2024, 2024-05, 2024-05-31 or 2024-05-31T12:00), "
                f"not {raw!r}.",
                field=data.label,
            )
        width = len(bound)
        compare = pc.greater_equal if op == "gte" else pc.less_equal
        heads = pc.utf8_slice_codeunits(data.values, 0, width)
        table = compare(heads, bound).to_numpy(zero_copy_only=False) & (data.flags & DATED).astype(bool)
        return table  # type: ignore[no-any-return]
    raise QueryError(
        f"{data.label!r} is a text column: ranges (gte, lte) apply to numbers and dates.", field=data.label
    )


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
