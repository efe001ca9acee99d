"""The data-quality report of a run, kept row by row for the next run: an incremental run checks only its new rows.

Beside a run's row spools, ``.quality.rows`` (``KEPT``) holds what the report found row by row: each row's id (to
check that the rows are those of the previous run's spools), each one-row rule's findings as the findings CSV's
records with the position of their rows, and each dated rule's rows with a readable day (the day, its ordinal, the
columns of a finding) so that the next day's run decides again which of them the rule flags. It is written under a
key (``kept_key``: the enabled rules and their settings but the day, the rows' columns, the code of the rules, this
module and the CSV writer): another key, a damaged part (each has its CRC-32) or rows that are not the spools' is a
file that is not used, and the report checks every row (the fallback every run had before).

An incremental run knows which of its rows are the previous run's, unchanged (``RowSet.picks``, from the export's
``KindRows.picks``): the one-row rules see only the other rows, and each rule's findings are the previous run's
findings of the rows kept (their records copied) merged, in the order of the rows, with the new rows' findings. The
comparing rules (``SameKey``: duplicates) still read every row's key (they compare the new rows with all the
others). The findings CSV is byte for byte what a full check of the same rows writes; a rule that raises in an
incremental run makes the report check every row again, as a full run would record it.

Memory: the ids of the previous run's rows and where each is now (16 bytes a row); findings pass a part at a time.
"""

from __future__ import annotations

import csv
import hashlib
import marshal
import struct
import zlib
from collections.abc import Iterator, Sequence
from datetime import date
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from exports.atomic import FileInfo, PendingFile
from exports.csvfiles import write_csv
from quality import rules
from quality.rules import (
    CHUNK_ROWS,
    DATED_CHECKS,
    FINDING_COLUMNS,
    ID,
    NAME,
    SITE,
    TYPE,
    DateReader,
    FindingSpools,
    QualityConfig,
    QualityReport,
    QualityRows,
    RowSet,
    RuleResult,
    SameKey,
    _column,
    _Keyed,
    _Spill,
    describe,
)

if TYPE_CHECKING:
    import numpy as np

KEPT = ".quality.rows"
_MAGIC = b"enreach quality rows 1\n"
_RECORD = struct.Struct("<QI")  # each part's size and CRC-32, ahead of its marshalled bytes
_CODE = (Path(rules.__file__), Path(__file__), Path(write_csv.__code__.co_filename))
_KIND_OF_TYPE = {"devices": rules.KIND_DEVICE, "vms": rules.KIND_VM}


class KeptUnusable(Exception):
    """The previous run's kept results cannot serve this run: every row is checked."""


def kept_key(config: QualityConfig, row_sets: Sequence[RowSet]) -> bytes:
    """The same for two runs whose rows' results are the same, given the same rows (the day left out: dated rules
    keep days, not findings)."""
    enabled = [
        (r.id, r.label, r.severity, r.columns, r.column, s.threshold, s.allowed, _check_name(r.check))
        for r, s in config.rules
        if s.enabled
    ]
    shape = repr((enabled, [(tuple(rs.columns), rs.kind) for rs in row_sets], FINDING_COLUMNS)).encode()
    code = b"".join(path.read_bytes() for path in _CODE)
    return hashlib.sha256(shape + code).hexdigest().encode()


def _check_name(check: Any) -> str:
    if isinstance(check, SameKey):
        return f"SameKey({_check_name(check.key)}, {_check_name(check.shown)})"
    return f"{getattr(check, '__module__', '')}.{getattr(check, '__qualname__', type(check).__name__)}"


# --- the file -------------------------------------------------------------------------------------------------


class _KeptWriter(PendingFile):
    """A run's kept results, written to a temp file beside ``path`` and put in place by ``commit``."""

    def __init__(self, path: Path, key: bytes) -> None:
        super().__init__(path)
        self.write(_MAGIC + key + b"\n")

    def add(self, value: Any) -> None:
        data = marshal.dumps(value)
        self.write(_RECORD.pack(len(data), zlib.crc32(data)))
        self.write(data)

    def commit(self) -> None:
        self.add(("done",))
        super().commit()


class _KeptReader:
    """The previous run's kept results, read part by part in the order they were written; anything unexpected
    (another key, a part whose CRC differs, a part missing) raises ``KeptUnusable``."""

    def __init__(self, path: Path, key: bytes) -> None:
        try:
            self._in: IO[bytes] = open(path, "rb")  # noqa: SIM115  # closed by close()
        except OSError as exc:
            raise KeptUnusable(f"no kept results: {exc}") from None
        if self._in.readline() != _MAGIC or self._in.readline().rstrip(b"\n") != key:
            self.close()
            raise KeptUnusable("kept under another key")

    def next(self, tag: str) -> tuple[Any, ...]:
        value = self.next_any()
        if value[0] != tag:
            raise KeptUnusable(f"expected {tag}")
        return value

    def next_any(self) -> tuple[Any, ...]:
        try:
            header = self._in.read(_RECORD.size)
            size, crc = _RECORD.unpack(header)
            data = self._in.read(size)
            if len(data) != size or zlib.crc32(data) != crc:
                raise KeptUnusable("a damaged part")
            value = marshal.loads(data)  # noqa: S302  # a run's own file, its CRC checked
        except (OSError, ValueError, TypeError, EOFError, struct.error) as exc:
            raise KeptUnusable(f"an unreadable part: {exc}") from None
        if not isinstance(value, tuple) or not value:
            raise KeptUnusable("an unexpected part")
        return value

    def close(self) -> None:
        self._in.close()


# --- the report -------------------------------------------------------------------------------------------------


def kept_file_write(
    row_sets: Sequence[RowSet], config: QualityConfig, path: Path, *, previous: Path | None = None
) -> tuple[FileInfo, QualityReport]:
    """``quality.report.quality_file_write``'s evaluation and findings CSV, keeping the results row by row in
    ``KEPT`` beside ``path``; with ``previous`` (the previous run's folder) and every row set's ``picks``, only the
    new rows are checked when the previous run's kept results serve. Raises as ``quality_evaluate`` does."""
    key = kept_key(config, row_sets)
    if previous is not None and row_sets and all(row_set.picks is not None for row_set in row_sets):
        try:
            reader = _KeptReader(previous / KEPT, key)
        except KeptUnusable:
            reader = None
        if reader is not None:
            try:
                return _Report(row_sets, config, path, key, reader).write()
            except KeptUnusable:
                pass
            finally:
                reader.close()
    return _Report(row_sets, config, path, key, None).write()


class _Chunks:
    """Rows gathered into ``QualityRows`` chunks of ``size`` rows (``quality_rows``'s way), each with where its rows
    are among all the run's rows."""

    def __init__(self, names: list[str], today: date, dates: DateReader, size: int) -> None:
        self.names, self.today, self.dates, self.size = names, today, dates, size
        self.data: dict[str, list[Any]] = {name: [] for name in names}
        self.kinds: list[str] = []
        self.at: list[int] = []
        self.chunks = 0

    def add(
        self, rows: Sequence[Sequence[Any]], at: Sequence[int], index: dict[str, int], kind: str
    ) -> Iterator[tuple[QualityRows, list[int]]]:
        start = 0
        while start < len(rows):
            room = self.size - len(self.kinds)
            part = rows[start : start + room] if start or len(rows) > room else rows
            self.at += at[start : start + len(part)]
            start += len(part)
            for name in self.names:
                if name in index:
                    self.data[name] += _column(part, index[name], strip=name != ID)
                else:
                    self.data[name] += [""] * len(part)
            if kind or TYPE not in index:
                self.kinds += [kind] * len(part)
            else:
                self.kinds += map(_KIND_OF_TYPE.get, map(itemgetter(index[TYPE]), part), repeat(""))
            if len(self.kinds) >= self.size:
                yield self._chunk()

    def last(self) -> Iterator[tuple[QualityRows, list[int]]]:
        if self.kinds or not self.chunks:
            yield self._chunk()

    def _chunk(self) -> tuple[QualityRows, list[int]]:
        chunk = QualityRows(self.data, self.kinds, self.today, self.dates), self.at
        self.data, self.kinds, self.at = {name: [] for name in self.names}, [], []
        self.chunks += 1
        return chunk


class _Report:
    """One report over the rows: every row checked (``previous`` None), or only the new ones."""

    def __init__(
        self,
        row_sets: Sequence[RowSet],
        config: QualityConfig,
        path: Path,
        key: bytes,
        previous: _KeptReader | None,
    ) -> None:
        self.row_sets, self.config, self.path, self.key, self.previous = row_sets, config, path, key, previous
        self.enabled = [(rule, setting) for rule, setting in config.rules if setting.enabled]
        self.counts = [0] * len(self.enabled)
        self.errors: dict[int, str] = {}
        self.keep = True  # False: this run's results are not kept (a rule failed, an id is not a number)
        self.dated = {
            number: DATED_CHECKS[rule.check]
            for number, (rule, _) in enumerate(self.enabled)
            if not isinstance(rule.check, SameKey) and rule.check in DATED_CHECKS
        }
        self.bounds: dict[int, rules.Bounds] = {}
        self.checked = 0

    def failed(self, number: int, exc: Exception) -> None:
        if self.previous is not None:
            raise KeptUnusable(f"a rule failed: {describe(exc)}")
        self.errors[number] = describe(exc)
        self.counts[number] = 0
        self.keep = False

    def write(self) -> tuple[FileInfo, QualityReport]:
        folder = self.path.parent
        self.spills: dict[int, _Spill] = {}
        keyed = _Keyed(self.enabled, folder)
        writer = _KeptWriter(folder / KEPT, self.key)
        samekey = FindingSpools(folder)
        try:
            for number, (_, bounds) in self.dated.items():
                try:
                    self.bounds[number] = bounds(self.config.today, self.enabled[number][1])
                except Exception as exc:  # the rule's day and threshold make no day: its error, as a full check's
                    self.failed(number, exc)
            self.cur_of_prev: np.ndarray | None = None
            if self.previous is not None:
                self._previous_rows()
            self._walk(keyed, writer)
            # The comparing rules' findings, spilled (they need every row's key first).
            if keyed.rules:

                def failed(number: int, exc: Exception) -> None:
                    samekey.drop(number)
                    self.failed(number, exc)

                for number, count in keyed.findings(samekey, self.config.today, self.errors, failed):
                    self.counts[number] = count
            info = write_csv(self.path, FINDING_COLUMNS, self._findings(samekey, writer), raw=True)
            if self.keep:
                writer.commit()
        finally:
            writer.discard()
            keyed.close()
            samekey.close()
            for spill in self.spills.values():
                spill.close()
        results = [
            RuleResult(rule.id, rule.label, rule.severity, rule.columns, self.counts[number],
                       self.errors.get(number, ""), setting.threshold)
            for number, (rule, setting) in enumerate(self.enabled)
        ]  # fmt: skip
        return info, QualityReport(results=results, findings=samekey, checked=self.checked)

    def _previous_rows(self) -> None:
        """The previous run's rows' ids, per row set; where each previous row is now is filled by the walk."""
        import numpy as np

        assert self.previous is not None
        head = self.previous.next("rows")
        counts = head[1]
        if not isinstance(counts, list) or len(counts) != len(self.row_sets):
            raise KeptUnusable("other row sets")
        self.previous_counts: list[int] = counts
        self.previous_ids = np.frombuffer(self.previous.next("ids")[1], dtype=np.int64)
        if len(self.previous_ids) != sum(counts):
            raise KeptUnusable("ids missing")
        self.cur_of_prev = np.full(len(self.previous_ids), -1, dtype=np.int64)

    def _walk(self, keyed: _Keyed, writer: _KeptWriter) -> None:
        """Every row once: the comparing rules see each; the one-row rules the new ones (every row in a full check).
        The rows' ids go to the kept file."""
        today, dates = self.config.today, DateReader()
        size = CHUNK_ROWS
        wanted = [column for rule, _ in self.enabled for column in rule.columns]
        indexes = [{name: position for position, name in enumerate(row_set.columns)} for row_set in self.row_sets]
        present = [name for name in dict.fromkeys((NAME, ID, SITE, *wanted)) if any(name in i for i in indexes)]
        fresh = _Chunks(present, today, dates, size)
        compared = None
        if self.previous is not None and keyed.rules:
            compared = _Chunks([name for name in present if name in keyed.columns], today, dates, size)
        ids: list[bytes] = []
        counts: list[int] = []
        cur = 0
        for number, (row_set, index) in enumerate(zip(self.row_sets, indexes, strict=True)):
            picks = iter(row_set.picks()) if self.previous is not None and row_set.picks is not None else None
            offset = sum(self.previous_counts[:number]) if picks is not None else 0
            passed = 0  # the previous run's rows of this set gone by
            start = cur
            for batch in row_set.each_batch():
                if not len(batch):
                    continue
                at = range(cur, cur + len(batch))
                batch_ids = self._ids(batch, index)
                if batch_ids is not None:
                    ids.append(batch_ids.tobytes())
                if picks is None:
                    for chunk in fresh.add(batch, at, index, row_set.kind):
                        self._chunk(*chunk, keyed, keyed.rules)
                else:
                    passed = self._reused(batch, batch_ids, next(picks, None), offset, passed, cur, fresh, index,
                                          row_set.kind, number)  # fmt: skip
                    if compared is not None:
                        for compared_rows, _ in compared.add(batch, at, index, row_set.kind):
                            self._compared(compared_rows, keyed)
                cur += len(batch)
            if picks is not None and next(picks, None) is not None:
                raise KeptUnusable("more picks than rows")
            counts.append(cur - start)
        for chunk in fresh.last():
            self._chunk(*chunk, keyed, keyed.rules if compared is None else {})
        if compared is not None:
            for compared_rows, _ in compared.last():
                self._compared(compared_rows, keyed)
        if self.keep:
            writer.add(("rows", counts))
            writer.add(("ids", b"".join(ids)))

    def _ids(self, batch: Sequence[Sequence[Any]], index: dict[str, int]) -> np.ndarray | None:
        import numpy as np

        if ID not in index:
            self._not_kept()
            return None
        try:
            return np.fromiter(map(itemgetter(index[ID]), batch), dtype=np.int64, count=len(batch))
        except (TypeError, ValueError, OverflowError):  # an id that is not a whole number: nothing is kept
            self._not_kept()
            return None

    def _not_kept(self) -> None:
        if self.previous is not None:
            raise KeptUnusable("ids that are not numbers")
        self.keep = False

    def _reused(
        self,
        batch: Sequence[Sequence[Any]],
        ids: np.ndarray | None,
        picks: Sequence[int] | None,
        offset: int,
        passed: int,
        cur: int,
        fresh: _Chunks,
        index: dict[str, int],
        kind: str,
        number: int,
    ) -> int:
        """An incremental run's batch: where its unchanged rows were in the previous run (their ids checked), its
        new rows to the one-row rules. Returns how many of the set's previous rows are gone by."""
        import numpy as np

        assert self.cur_of_prev is not None and ids is not None
        if picks is None or len(picks) != len(batch):
            raise KeptUnusable("picks not in step with the rows")
        pick = np.asarray(picks, dtype=np.int64)
        reused = pick >= 0
        steps = np.where(reused, pick + 1, 0)
        previous_at = passed + np.cumsum(steps) - 1
        passed += int(steps.sum())
        if passed > self.previous_counts[number]:
            raise KeptUnusable("more rows reused than the previous run had")
        where = offset + previous_at[reused]
        if not np.array_equal(self.previous_ids[where], ids[reused]):
            raise KeptUnusable("the previous run's rows are others")
        self.cur_of_prev[where] = np.flatnonzero(reused) + cur
        new = np.flatnonzero(~reused)
        if len(new):
            rows = [batch[position] for position in new.tolist()]
            for chunk in fresh.add(rows, (new + cur).tolist(), index, kind):
                self._chunk(*chunk, None, {})
        return passed

    def _compared(self, rows: QualityRows, keyed: _Keyed) -> None:
        for number, rule in keyed.rules.items():
            if number not in self.errors:
                assert isinstance(rule.check, SameKey)
                try:
                    keyed.add(number, rule.check.key(rows))
                except Exception as exc:  # a broken rule is reported, and the others still run
                    self.failed(number, exc)
        keyed.keep(rows, self.errors)

    def _chunk(self, rows: QualityRows, at: list[int], keyed: _Keyed | None, compared: dict[int, Any]) -> None:
        """A chunk of rows to check: the one-row rules' findings and the dated rules' days spilled with where their
        rows are; the comparing rules (``compared``) see it too in a full check."""
        import numpy as np

        where = np.asarray(at, dtype=np.int64)
        self.checked += rows.size
        for number, (rule, setting) in enumerate(self.enabled):
            if number in self.errors or isinstance(rule.check, SameKey):
                continue
            try:
                if number in self.dated:
                    column = self.dated[number][0]
                    days = rows.dates(column)
                    positions = [position for position, day in enumerate(days) if day is not None]
                    shown = [days[position][1] for position in positions]  # type: ignore[index]
                    ordinals = [days[position][0].toordinal() for position in positions]  # type: ignore[index]
                    payload: Any = [finding[2:] for finding in rows.findings(rule, positions, shown)]
                    extra = np.asarray(ordinals, dtype=np.int64).tobytes()
                else:
                    positions, shown_values = rule.check(rows, setting)
                    payload = rows.findings(rule, positions, shown_values) if positions else []
                    extra = b""
            except Exception as exc:  # a broken rule is reported, and the others still run
                self.failed(number, exc)
                continue
            if positions:
                if number not in self.dated:
                    payload = _records(payload)
                self._spill(number).add((where[positions].tobytes(), payload, extra))
        if keyed is not None and compared:
            self._compared(rows, keyed)

    def _spill(self, number: int) -> _Spill:
        if number not in self.spills:
            self.spills[number] = _Spill(self.path.parent)
        return self.spills[number]

    def _findings(self, samekey: FindingSpools, writer: _KeptWriter) -> Iterator[Any]:
        """The findings rule by rule (records of the CSV, or findings to write), each rule's kept for the next run."""
        import numpy as np

        for number, (rule, _) in enumerate(self.enabled):
            if isinstance(rule.check, SameKey):
                yield from samekey.of_rule(number)
                continue
            if number in self.errors:
                continue
            bounds = self.bounds.get(number)
            count = 0
            for where, payload, extra in self._merged(number):
                if self.keep:
                    writer.add(("part", number, where.tobytes(), payload, extra))
                if bounds is None:
                    count += len(payload)
                    yield from payload
                    continue
                ordinals = np.frombuffer(extra, dtype=np.int64)
                flagged = np.ones(len(ordinals), dtype=bool)
                if bounds[0] is not None:
                    flagged &= ordinals >= bounds[0]
                if bounds[1] is not None:
                    flagged &= ordinals <= bounds[1]
                for position in np.flatnonzero(flagged).tolist():
                    yield (rule.id, rule.severity, *payload[position])
                    count += 1
            if self.keep:
                writer.add(("end", number))
            self.counts[number] = count

    def _merged(self, number: int) -> Iterator[tuple[np.ndarray, list[Any], bytes]]:
        """A one-row or dated rule's parts in the order of the rows: the previous run's of the rows kept (where they
        are now) merged with the new rows'."""
        import numpy as np

        spill = self.spills.get(number)
        new = ((np.frombuffer(where, dtype=np.int64), payload, extra) for where, payload, extra in (spill or ()))
        if self.previous is None:
            yield from new
            return
        assert self.cur_of_prev is not None
        pending: list[tuple[np.ndarray, list[Any], bytes]] = []
        for part in self._previous_parts(number):
            last = int(part[0][-1]) if len(part[0]) else -1
            # The new rows' parts before this part's last row join it.
            while True:
                head = pending[0] if pending else next(new, None)
                if head is None:
                    break
                if not pending:
                    pending.append(head)
                if not len(head[0]) or head[0][0] > last:
                    break
                pending.pop(0)
                cut = int(np.searchsorted(head[0], last))
                part = _join(part, _slice(head, 0, cut))
                if cut < len(head[0]):
                    pending.insert(0, _slice(head, cut, len(head[0])))
                    break
            if len(part[0]):
                yield part
        yield from pending
        yield from new

    def _previous_parts(self, number: int) -> Iterator[tuple[np.ndarray, list[Any], bytes]]:
        """The previous run's parts of a rule, only the rows kept, where they are now."""
        import numpy as np

        assert self.previous is not None and self.cur_of_prev is not None
        while True:
            value = self.previous.next_any()
            if value[:2] == ("end", number):
                return
            if value[:2] != ("part", number) or len(value) != 5:
                raise KeptUnusable("the rules' parts are out of order")
            _, _, where, payload, extra = value
            now = self.cur_of_prev[np.frombuffer(where, dtype=np.int64)]
            kept = np.flatnonzero(now >= 0)
            if len(kept) == len(now):
                yield now, payload, extra
            else:
                yield _slice((now, payload, extra), kept)


def _slice(
    part: tuple[np.ndarray, list[Any], bytes], start: int | np.ndarray, stop: int | None = None
) -> tuple[np.ndarray, list[Any], bytes]:
    """The rows ``start:stop`` of a part (or those at the positions ``start``)."""
    import numpy as np

    where, payload, extra = part
    ordinals = np.frombuffer(extra, dtype=np.int64) if extra else None
    if stop is not None:
        assert isinstance(start, int)
        picked = payload[start:stop]
        return where[start:stop], picked, ordinals[start:stop].tobytes() if ordinals is not None else b""
    positions = start.tolist()  # type: ignore[union-attr]
    return (
        where[start],
        [payload[position] for position in positions],
        ordinals[start].tobytes() if ordinals is not None else b"",
    )


def _join(
    part: tuple[np.ndarray, list[Any], bytes], other: tuple[np.ndarray, list[Any], bytes]
) -> tuple[np.ndarray, list[Any], bytes]:
    """Two parts as one, in the order of their rows."""
    import numpy as np

    if not len(other[0]):
        return part
    where = np.concatenate([part[0], other[0]])
    order = np.argsort(where, kind="stable")
    payload = part[1] + other[1]
    extra = b""
    if part[2] or other[2]:
        ordinals = np.concatenate([np.frombuffer(part[2], dtype=np.int64), np.frombuffer(other[2], dtype=np.int64)])
        extra = ordinals[order].tobytes()
    return where[order], [payload[position] for position in order.tolist()], extra


class _ListSink:
    __slots__ = ("write",)

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


def _records(findings: Sequence[Sequence[Any]]) -> list[bytes]:
    """Each finding as the findings CSV's record (its bytes, ``\\r\\n`` included): the csv module writes a row in
    one piece."""
    parts: list[str] = []
    csv.writer(_ListSink(parts)).writerows(findings)
    if len(parts) != len(findings):  # not one piece a row: one at a time
        records = []
        writer = csv.writer(_ListSink(parts))
        for finding in findings:
            parts.clear()
            writer.writerow(finding)
            records.append("".join(parts).encode("utf-8"))
        return records
    return [part.encode("utf-8") for part in parts]


__all__ = ["KEPT", "KeptUnusable", "kept_file_write", "kept_key"]
