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
findings of the rows kept (their records copied) merged, in the order of the rows, with the new rows' findings.
When the rows' spool is indexed (``RowSet.spool``: each row's id and bytes), the new rows are read alone from it and
the others not at all (their ids are the index's); without an index every batch is read and the new rows picked.

The comparing rules (``SameKey``: duplicates) keep each row's key as a 64-bit hash that is the same in every process
(``rules.key_hashes``), and the rows whose hash another row shares (the candidates) with the columns their findings
show. An incremental run hashes only its new rows, finds the hashes shared among all the rows' (numpy), and reads
the keys of the candidates only: a new row's from its chunk, a kept candidate's from the kept file, and a kept row
that shares a hash with a new row only now from its spool (or its batches read again). Rows sharing a hash are then
compared by their keys, as in a full check (a collision flags nothing).

The findings CSV is byte for byte what a full check of the same rows writes; a rule that raises in an incremental
run makes the report check every row again, as a full run would record it.

Memory: the ids of the previous run's rows and where each is now (16 bytes a row), each comparing rule's hashes (9
bytes a row) and its candidates' positions, and the counts of the candidates' keys. The candidates' columns pass a
block (``BLOCK_ROWS``) at a time: kept in the file as blocks, read back one block when needed; findings pass a part
at a time.
"""

from __future__ import annotations

import csv
import hashlib
import marshal
import os
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from exports.atomic import FileInfo, PendingFile
from exports.csvfiles import CsvSpan, write_csv
from exports.spool import spool_row
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
# A comparing rule's candidate rows gathered, kept and compared a block at a time: never all in memory.
BLOCK_ROWS = CHUNK_ROWS


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

    def skip(self) -> int:
        """Where the next part is; the reader goes past it (read later by ``read_at``, its CRC checked then)."""
        try:
            offset = self._in.tell()
            size, _ = _RECORD.unpack(self._in.read(_RECORD.size))
            self._in.seek(size, os.SEEK_CUR)
        except (OSError, struct.error) as exc:
            raise KeptUnusable(f"an unreadable part: {exc}") from None
        return offset

    def read_at(self, offset: int) -> tuple[Any, ...]:
        """The part at ``offset`` (``skip``'s), the reader staying where it was."""
        here = self._in.tell()
        try:
            self._in.seek(offset)
            return self.next_any()
        finally:
            self._in.seek(here)

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
        self.keyed_at: list[np.ndarray] = []  # where the rows of each chunk the comparing rules saw are
        # The previous run's keys per comparing rule: hashes, filled, its candidates' positions, the candidates a
        # block holds and where each block's part is in the kept file.
        self.previous_keyed: dict[int, tuple[Any, ...]] = {}
        self.previous_block: tuple[int, int, Any] | None = None  # the last block read: rule, block, (kinds, columns)
        self.spools: dict[int, tuple[Path, np.ndarray]] = {}  # per row set: its spool and the spool's index
        self.starts: list[int] = []  # where each row set's rows start among all the rows

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
                self._same_key(keyed, samekey, writer)
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
        ids: list[bytes] = []
        while (value := self.previous.next_any())[0] == "ids" and len(value) == 2:
            ids.append(value[1])
        counts = value[1] if value[0] == "rows" and len(value) == 2 else None
        if not isinstance(counts, list) or len(counts) != len(self.row_sets):
            raise KeptUnusable("other row sets")
        self.previous_counts: list[int] = counts
        self.previous_ids = np.frombuffer(b"".join(ids), dtype=np.int64)
        del ids
        if len(self.previous_ids) != sum(counts):
            raise KeptUnusable("ids missing")
        self.cur_of_prev = np.full(len(self.previous_ids), -1, dtype=np.int64)
        for number, (rule, _) in enumerate(self.enabled):
            if not isinstance(rule.check, SameKey):
                continue
            value = self.previous.next("keys")
            if len(value) != 6 or value[1] != number or not isinstance(value[5], int) or value[5] < 1:
                raise KeptUnusable("the comparing rules' keys are out of order")
            _, _, hashes, filled, positions, block = value
            hashes = np.frombuffer(hashes, dtype=np.int64)
            filled = np.frombuffer(filled, dtype=bool)
            positions = np.frombuffer(positions, dtype=np.int64)
            if not len(hashes) == len(filled) == len(self.previous_ids):
                raise KeptUnusable("keys missing")
            # The candidates' columns stay in the file, a block at a time read when a candidate of this run needs it.
            offsets = [self.previous.skip() for _ in range(0, len(positions), block)]
            self.previous_keyed[number] = (hashes, filled, positions, block, offsets)

    def _walk(self, keyed: _Keyed, writer: _KeptWriter) -> None:
        """Every row once in a full check (the one-row and the comparing rules see each); in an incremental run the
        new rows (read alone from the spool when it is indexed), the others' ids and where they were. The rows' ids
        go to the kept file."""
        today, dates = self.config.today, DateReader()
        wanted = [column for rule, _ in self.enabled for column in rule.columns]
        self.indexes = [{name: position for position, name in enumerate(rs.columns)} for rs in self.row_sets]
        present = [name for name in dict.fromkeys((NAME, ID, SITE, *wanted)) if any(name in i for i in self.indexes)]
        self.keyed_names = [name for name in present if name in keyed.columns]
        fresh = _Chunks(present, today, dates, CHUNK_ROWS)
        ids = _IdParts(self, writer)
        counts: list[int] = []
        cur = 0
        for number, (row_set, index) in enumerate(zip(self.row_sets, self.indexes, strict=True)):
            start = cur
            self.starts.append(start)
            if self.previous is not None:
                cur = self._incremental_set(row_set, index, number, cur, fresh, keyed, ids)
                counts.append(cur - start)
                continue
            for batch in row_set.each_batch():
                if not len(batch):
                    continue
                batch_ids = self._ids(batch, index)
                if batch_ids is not None:
                    ids.append(batch_ids)
                for chunk in fresh.add(batch, range(cur, cur + len(batch)), index, row_set.kind):
                    self._chunk(*chunk, keyed, keyed.rules)
                cur += len(batch)
            counts.append(cur - start)
        for chunk in fresh.last():
            self._chunk(*chunk, keyed, keyed.rules)
        self.total = cur
        if self.keep:
            writer.add(("rows", counts))

    def _incremental_set(
        self,
        row_set: RowSet,
        index: dict[str, int],
        number: int,
        cur: int,
        fresh: _Chunks,
        keyed: _Keyed,
        ids: _IdParts,
    ) -> int:
        """An incremental run's row set: its new rows to the rules, where its other rows were in the previous run
        (their ids checked), its ids to ``ids``. Returns where the next set's rows start."""
        import numpy as np

        from exports.spool import RowSpool

        assert self.cur_of_prev is not None and row_set.picks is not None
        offset = sum(self.previous_counts[:number])
        each = [np.asarray(picks, dtype=np.int64) for picks in row_set.picks()]
        pick = np.concatenate(each) if each else np.zeros(0, dtype=np.int64)
        entries = RowSpool(row_set.spool).index(len(pick)) if row_set.spool is not None else None
        if entries is None:  # no index to read single rows by: every batch read, the new rows checked
            picks = iter(each)
            passed = 0
            for batch in row_set.each_batch():
                if not len(batch):
                    continue
                batch_ids = self._ids(batch, index)
                passed = self._reused(batch, batch_ids, next(picks, None), offset, passed, cur, fresh, index,
                                      row_set.kind, number, keyed)  # fmt: skip
                ids.append(batch_ids)  # type: ignore[arg-type]  # numbers (or it raised)
                cur += len(batch)
            if next(picks, None) is not None:
                raise KeptUnusable("more picks than rows")
            return cur
        self.spools[number] = (row_set.spool, entries)  # type: ignore[assignment]  # not None: it has an index
        reused = pick >= 0
        steps = np.where(reused, pick + 1, 0)
        previous_at = np.cumsum(steps) - 1
        if int(steps.sum()) > self.previous_counts[number]:
            raise KeptUnusable("more rows reused than the previous run had")
        where = offset + previous_at[reused]
        set_ids = np.ascontiguousarray(entries[:, 0])
        if not np.array_equal(self.previous_ids[where], set_ids[reused]):
            raise KeptUnusable("the previous run's rows are others")
        self.cur_of_prev[where] = np.flatnonzero(reused) + cur
        ids.append(set_ids)
        new = np.flatnonzero(~reused)
        for first in range(0, len(new), CHUNK_ROWS):
            part = new[first : first + CHUNK_ROWS]
            rows = _spool_rows(row_set.spool, entries, part)  # type: ignore[arg-type]  # not None
            for chunk in fresh.add(rows, (part + cur).tolist(), index, row_set.kind):
                self._chunk(*chunk, keyed, keyed.rules)
        return cur + len(pick)

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
        picks: Sequence[int] | np.ndarray | None,
        offset: int,
        passed: int,
        cur: int,
        fresh: _Chunks,
        index: dict[str, int],
        kind: str,
        number: int,
        keyed: _Keyed,
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
                self._chunk(*chunk, keyed, keyed.rules)
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
                if number not in self.dated:  # the records one after the other, and where each ends
                    records = _records(payload)
                    payload = b"".join(records)
                    extra = np.cumsum(np.fromiter(map(len, records), dtype=np.int64, count=len(records))).tobytes()
                self._spill(number).add((where[positions].tobytes(), payload, extra))
        if keyed is not None and compared:
            spilled = len(keyed.offsets)
            self._compared(rows, keyed)
            if len(keyed.offsets) > spilled:
                self.keyed_at.append(where)

    def _same_key(self, keyed: _Keyed, samekey: FindingSpools, writer: _KeptWriter) -> None:
        """The comparing rules' findings: every row's key hash (the new rows' hashed now, the others' kept), the rows
        whose hash another row shares compared by their keys, those sharing a key flagged. What each rule kept (every
        row's hash, the rows sharing one with their columns) goes to the kept file for the next run."""
        import numpy as np

        if not keyed.stable:  # Python's hashes: not kept
            if self.previous is not None:
                raise KeptUnusable("keys that are not text")
            self.keep = False
        at = np.concatenate(self.keyed_at) if self.keyed_at else np.zeros(0, dtype=np.int64)
        if self.previous is not None:
            assert self.cur_of_prev is not None
            kept = np.flatnonzero(self.cur_of_prev >= 0)
            self.prev_of_cur = np.full(self.total, -1, dtype=np.int64)
            self.prev_of_cur[self.cur_of_prev[kept]] = kept
            if (self.prev_of_cur[at] >= 0).any() or len(kept) + len(at) != self.total:
                raise KeptUnusable("rows both kept and new, or neither")
        elif not np.array_equal(at, np.arange(self.total)):
            self.keep = False  # a rule failed before every row was seen
        dates = DateReader()
        for number, rule in keyed.rules.items():
            if number in self.errors:
                continue
            assert isinstance(rule.check, SameKey)
            try:
                chunks = keyed.hashes.pop(number)
                hashes = np.concatenate([chunk for chunk, _ in chunks]) if chunks else np.zeros(0, dtype=np.int64)
                filled = np.concatenate([chunk for _, chunk in chunks]) if chunks else np.zeros(0, dtype=bool)
                del chunks
                if self.previous is not None:
                    hashes, filled = self._all_keys(number, at, hashes, filled)
                candidates = rules._among(hashes, filled, _shared_hashes(hashes[filled]))
                if self.keep:
                    writer.add(("keys", number, hashes.data, filled.data, candidates.data,
                                BLOCK_ROWS))  # fmt: skip
                del hashes, filled
                self.counts[number] = self._compare(number, rule, candidates, at, keyed, dates, samekey, writer)
            except KeptUnusable:
                raise
            except Exception as exc:  # a broken rule is reported, and the others still run
                samekey.drop(number)
                self.failed(number, exc)

    def _all_keys(
        self, number: int, at: np.ndarray, hashes: np.ndarray, filled: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row's key hash and whether its key is not empty: the new rows' (at ``at``) and the kept ones'."""
        import numpy as np

        assert self.cur_of_prev is not None
        previous_hashes, previous_filled = self.previous_keyed[number][:2]
        kept = self.cur_of_prev >= 0
        every = np.zeros(self.total, dtype=np.int64)
        every_filled = np.zeros(self.total, dtype=bool)
        every[self.cur_of_prev[kept]] = previous_hashes[kept]
        every_filled[self.cur_of_prev[kept]] = previous_filled[kept]
        every[at] = hashes
        every_filled[at] = filled
        return every, every_filled

    def _compare(
        self,
        number: int,
        rule: Any,
        candidates: np.ndarray,
        at: np.ndarray,
        keyed: _Keyed,
        dates: DateReader,
        samekey: FindingSpools,
        writer: _KeptWriter,
    ) -> int:
        """A comparing rule's candidates compared by their keys, a block of ``BLOCK_ROWS`` at a time: each block's
        rows gathered once (kept for the next run and spilled), their keys counted, then read back from the spill
        and those sharing a key flagged. Only the keys' counts are held. Returns how many rows are flagged."""
        sizes: Counter[str] = Counter()
        blocks = _Spill(self.path.parent)
        try:
            for first in range(0, len(candidates), BLOCK_ROWS):
                rows = self._candidate_rows(candidates[first : first + BLOCK_ROWS], at, keyed, dates)
                sizes.update(rule.check.key(rows))
                if self.keep:
                    writer.add(("block", number, rows.kinds, rows.columns))
                blocks.add((rows.kinds, rows.columns))
                del rows
            count = 0
            for kinds, columns in blocks:
                findings = rules.shared_key_findings(rule, QualityRows(columns, kinds, self.config.today, dates), sizes)
                if findings:
                    samekey.add(number, findings)
                    count += len(findings)
            return count
        finally:
            blocks.close()

    def _candidate_rows(self, candidates: np.ndarray, at: np.ndarray, keyed: _Keyed, dates: DateReader) -> QualityRows:
        """The rows at ``candidates`` (positions among all the rows, in order) with the columns the comparing rules
        read: the rows seen in this run read back from their chunks' spill, the others from the previous run's kept
        candidates or, when they were not one, from their spool."""
        import numpy as np

        count = len(candidates)
        kinds: list[Any] = [""] * count
        columns: dict[str, list[Any]] = {name: [""] * count for name in self.keyed_names}

        def fill(targets: np.ndarray, source_kinds: list[Any], source: dict[str, list[Any]], picks: Any) -> None:
            if not len(targets):
                return
            pairs = list(zip(targets.tolist(), picks.tolist(), strict=True))
            for target, pick in pairs:
                kinds[target] = source_kinds[pick]
            for name, values in columns.items():
                if name not in source:
                    raise KeptUnusable(f"the kept candidates lack {name}")
                from_values = source[name]
                for target, pick in pairs:
                    values[target] = from_values[pick]

        found = np.zeros(count, dtype=bool)
        if len(at) and count:
            assert keyed.spill is not None
            sizes = np.fromiter(map(len, self.keyed_at), dtype=np.int64, count=len(self.keyed_at))
            ends = np.cumsum(sizes)
            seen = np.minimum(np.searchsorted(at, candidates), len(at) - 1)
            found = at[seen] == candidates
            chunk_of = np.searchsorted(ends, seen, side="right")
            for chunk in np.unique(chunk_of[found]).tolist():
                targets = np.flatnonzero(found & (chunk_of == chunk))
                chunk_kinds, chunk_columns = keyed.spill.read(keyed.offsets[chunk])
                fill(targets, chunk_kinds, chunk_columns, seen[targets] - (ends[chunk] - sizes[chunk]))
        if self.previous is not None and not found.all():
            previous = self.prev_of_cur[candidates]
            for number, (_, _, positions, block, _) in self.previous_keyed.items():
                if found.all() or not len(positions):
                    continue
                at_previous = np.minimum(np.searchsorted(positions, previous), len(positions) - 1)
                hit = ~found & (previous >= 0) & (positions[at_previous] == previous)
                blocks = at_previous // block
                for each in np.unique(blocks[hit]).tolist():
                    targets = np.flatnonzero(hit & (blocks == each))
                    fill(targets, *self._previous_block(number, each), at_previous[targets] - each * block)
                found |= hit
            rest = np.flatnonzero(~found)
            if len(rest):
                self._spool_candidates(rest, candidates[rest], dates, fill)
        elif not found.all():
            raise RuntimeError("candidate rows missing")
        return QualityRows(columns, kinds, self.config.today, dates)

    def _previous_block(self, number: int, block: int) -> tuple[list[Any], dict[str, list[Any]]]:
        """The kinds and columns of a block of the previous run's candidates of a comparing rule, read from the kept
        file (the last block read is held: the candidates come in the order of the rows)."""
        if self.previous_block is None or self.previous_block[:2] != (number, block):
            assert self.previous is not None
            value = self.previous.read_at(self.previous_keyed[number][4][block])
            if len(value) != 4 or value[:2] != ("block", number):
                raise KeptUnusable("the comparing rules' candidates are out of order")
            self.previous_block = (number, block, (value[2], value[3]))
        return self.previous_block[2]

    def _spool_candidates(self, targets: np.ndarray, positions: np.ndarray, dates: DateReader, fill: Any) -> None:
        """Candidate rows neither new nor kept as candidates (a kept row now sharing a key with a new one): read
        alone from their row set's spool, or, without its index, picked from its batches read again."""
        import numpy as np

        sets = np.searchsorted(np.asarray(self.starts, dtype=np.int64), positions, side="right") - 1
        for number in np.unique(sets).tolist():
            mine = np.flatnonzero(sets == number)
            wanted = positions[mine] - self.starts[number]
            if number in self.spools:
                path, entries = self.spools[number]
                rows = _spool_rows(path, entries, wanted)
            else:
                rows = _batch_rows(self.row_sets[number], wanted)
            chunks = _Chunks(self.keyed_names, self.config.today, dates, len(rows) + 1)
            row_set = self.row_sets[number]
            (values, _), *_ = [*chunks.add(rows, range(len(rows)), self.indexes[number], row_set.kind), *chunks.last()]
            fill(targets[mine], values.kinds, values.columns, np.arange(len(rows)))

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
                if bounds is None:  # the part's records, copied as one run
                    count += len(where)
                    if len(where):
                        yield CsvSpan(cast(Any, _Records(payload, extra)), 0, len(where))
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

    def _merged(self, number: int) -> Iterator[tuple[np.ndarray, Any, bytes]]:
        """A one-row or dated rule's parts in the order of the rows: the previous run's of the rows kept (where they
        are now) merged with the new rows'."""
        import numpy as np

        spill = self.spills.get(number)
        new = ((np.frombuffer(where, dtype=np.int64), payload, extra) for where, payload, extra in (spill or ()))
        if self.previous is None:
            yield from new
            return
        assert self.cur_of_prev is not None
        pending: list[tuple[np.ndarray, Any, bytes]] = []
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

    def _previous_parts(self, number: int) -> Iterator[tuple[np.ndarray, Any, bytes]]:
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


def _shared_hashes(hashes: np.ndarray) -> np.ndarray:
    """The hashes (sorted, each once) that occur more than once in ``hashes`` (a copy, sorted in place): what
    ``numpy.unique(..., return_counts=True)`` tells, without its copies and arrays of a row each."""
    import numpy as np

    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


class _IdParts:
    """The rows' ids to the kept file as they come, a part a batch (ahead of the ``rows`` part): never all held."""

    __slots__ = ("report", "writer")

    def __init__(self, report: _Report, writer: _KeptWriter) -> None:
        self.report, self.writer = report, writer

    def append(self, ids: np.ndarray) -> None:
        if self.report.keep:
            self.writer.add(("ids", ids.data))


def _spool_rows(path: Path, entries: np.ndarray, positions: np.ndarray) -> list[Any]:
    """The rows at ``positions`` of an indexed spool (``entries``: its index), each read alone."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [spool_row(os.pread(fd, end - start, start)) for start, end in entries[positions, 1:].tolist()]
    finally:
        os.close(fd)


def _batch_rows(row_set: RowSet, positions: np.ndarray) -> list[Any]:
    """The rows at ``positions`` (in order) of a row set's batches, read again."""
    rows: list[Any] = []
    wanted = iter(positions.tolist())
    position = next(wanted, None)
    first = 0
    for batch in row_set.each_batch():
        stop = first + len(batch)
        while position is not None and position < stop:
            rows.append(batch[position - first])
            position = next(wanted, None)
        if position is None:
            break
        first = stop
    if len(rows) != len(positions):
        raise KeptUnusable("rows missing")
    return rows


def _slice(
    part: tuple[np.ndarray, Any, bytes], start: int | np.ndarray, stop: int | None = None
) -> tuple[np.ndarray, Any, bytes]:
    """The rows ``start:stop`` of a part (or those at the positions ``start``, in order)."""
    import numpy as np

    where = part[0]
    if stop is not None:
        assert isinstance(start, int)
        picked = np.arange(start, stop, dtype=np.int64)
    else:
        picked = start  # type: ignore[assignment]
    return (where[picked], *_pick((part,), picked))


def _join(part: tuple[np.ndarray, Any, bytes], other: tuple[np.ndarray, Any, bytes]) -> tuple[np.ndarray, Any, bytes]:
    """Two parts as one, in the order of their rows."""
    import numpy as np

    if not len(other[0]):
        return part
    where = np.concatenate([part[0], other[0]])
    order = np.argsort(where, kind="stable")
    return (where[order], *_pick((part, other), order))


def _pick(parts: tuple[tuple[np.ndarray, Any, bytes], ...], order: np.ndarray) -> tuple[Any, bytes]:
    """The payload and extra of the rows at ``order`` of ``parts`` one after the other: a dated rule's findings
    and days, or a one-row rule's records (one ``bytes``, copied a run of adjacent records at a time) and their
    ends."""
    import numpy as np

    if not isinstance(parts[0][1], bytes):  # a dated rule's: findings, and each row's day (or none)
        payload = [finding for part in parts for finding in part[1]]
        picked = [payload[position] for position in order.tolist()]
        if not any(part[2] for part in parts):
            return picked, b""
        days = np.concatenate([np.frombuffer(part[2], dtype=np.int64) for part in parts])
        return picked, days[order].tobytes()
    data = b"".join(part[1] for part in parts) if len(parts) > 1 else parts[0][1]
    ends, base = [], 0
    for part in parts:
        part_ends = np.frombuffer(part[2], dtype=np.int64)
        ends.append(part_ends + base)
        base += len(part[1])
    every_end = np.concatenate(ends) if len(ends) > 1 else ends[0]
    every_start = np.concatenate([np.zeros(1, dtype=np.int64), every_end[:-1]])
    starts, stops = every_start[order], every_end[order]
    if not len(order):
        return b"", b""
    breaks = np.flatnonzero(starts[1:] != stops[:-1]) + 1  # where the next record is not the one after
    firsts = np.concatenate([np.zeros(1, dtype=np.int64), breaks])
    lasts = np.concatenate([breaks, np.array([len(order)], dtype=np.int64)]) - 1
    runs = zip(starts[firsts].tolist(), stops[lasts].tolist(), strict=True)
    return b"".join([data[first:last] for first, last in runs]), np.cumsum(stops - starts).tobytes()


class _Records:
    """A part's records one after the other, each ending at ``ends`` (int64 bytes): the source of a ``CsvSpan``
    that ``write_csv`` copies as it is (its ``read``, as ``CsvIndexed.read``)."""

    __slots__ = ("data", "ends")

    def __init__(self, data: bytes, ends: bytes) -> None:
        import numpy as np

        self.data = data
        self.ends = np.frombuffer(ends, dtype=np.int64)

    def read(self, first: int, stop: int) -> bytes:
        start = int(self.ends[first - 1]) if first else 0
        return self.data[start : int(self.ends[stop - 1])] if stop > first else b""


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
