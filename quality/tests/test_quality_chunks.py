"""The data-quality rules a chunk of rows at a time: the same results as over every row at once, and as main's pandas
frame of every row (``pandas_oracle``), wherever the chunks' boundaries fall."""

from __future__ import annotations

import csv
import random
from datetime import date
from typing import Any

import pytest

from exports import columns, transform
from quality import report as quality_report
from quality import rules as quality
from quality.rules import RuleSetting, quality_config_build, quality_evaluate
from quality.tests import pandas_oracle

TODAY = date(2026, 6, 15)
COLUMNS = columns.MERGED_COLUMNS
DATES = (
    "", "", "", "2026-06-14", "2026-06-15", "2026-09-13", "2026-09-14", "2019-06-14", "2019-06-16", "2030-01-01",
    "2026-06-01T10:00:00.123456Z", "2026-06-14T23:30:00-02:00", "2026-06-15T00:30:00+01:00", "2026-06-01T10:00:00",
    "2026-02-30", "2026-13-01", "31-12-2025", "last spring", "01/02/2020", "2026/06/01", "20260601", "2026-06",
    " 2026-06-20 ", "2999-01-01", "1500-01-01", "0999-12-31", "2026-06-01t10:00:00z", "2026-06-01 10:00",
    "9999-12-31T23:00:00-02:00", "2024-02-29", "2023-02-29",
)  # fmt: skip
SERIALS = ("", "", "SN-1", "sn-1 ", "SN-2", "ABC", "abc", "Straße", "STRASSE", "unique-{n}", "unique-{n}", "0001")
NAMES = ("web", "WEB ", "db-{n}", "db-{n}", "", "Ünïcode", "üNÏCODE", "app-{n}", "app-{n}", "host-{n}")


def make_rows(count: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Devices and VMs (each in its own columns) with every rule's cases, duplicates of names and serials spread over
    the whole range (so over many chunks)."""
    rng = random.Random(seed)
    devices, vms = [], []
    for number in range(1, count + 1):
        kind = "device" if rng.random() < 0.45 else "vm"
        values: dict[str, Any] = dict.fromkeys(COLUMNS, "")
        values.update(
            Name=rng.choice(NAMES).format(n=rng.randrange(count // 3 + 1)),
            ID=number,
            netbox_type="devices" if kind == "device" else "vms",
            Site=rng.choice(("AMS1", "Zürich", "", "FRA2")),
            Tenant=rng.choice(("Acme", "", " ")),
            Rack=rng.choice(("R1", "")) if kind == "device" else "",
            Cluster=rng.choice(("c1", "")) if kind == "vm" else "",
            Contacts=rng.choice(("Ops (Primary)", "")),
            **{
                "Serial number": rng.choice(SERIALS).format(n=rng.randrange(count // 4 + 1)),
                "IP Address": rng.choice(("10.0.0.1/24", "", "  ")),
                "HW warranty expiration": rng.choice(DATES),
                "HW buy date": rng.choice(DATES),
                "DTAP state": rng.choice(("production", "Test", "", "prodution", 3, 2.5, "Staging ✨")),
            },
        )
        merged = tuple(values[column] for column in COLUMNS)
        (devices if kind == "device" else vms).append(merged)
    return [kind_row(columns.DEVICE_COLUMNS, row) for row in devices], [
        kind_row(columns.VM_COLUMNS, row) for row in vms
    ]


def kind_row(kind_columns: tuple[str, ...], merged: tuple[Any, ...]) -> tuple[Any, ...]:
    values = dict(zip(COLUMNS, merged, strict=True))
    return tuple(values[column] for column in kind_columns)


def in_batches(rows: list[tuple[Any, ...]], sizes: tuple[int, ...]) -> Any:
    """The rows as batches of uneven sizes (cycling through ``sizes``), as a spool hands them."""

    def batches() -> Any:
        start, turn = 0, 0
        while start < len(rows):
            size = sizes[turn % len(sizes)]
            yield rows[start : start + size]
            start, turn = start + size, turn + 1

    return batches


CONFIG = {
    "allowed": {"DTAP state": ["Development", "Test", "Production", "3"]},
    "overrides": {"hardware_old": RuleSetting(enabled=True, threshold=7)},
    "thresholds": {"warranty_expiring": 90},
    "required": [("Tenant", ("device", "vm"), "info"), ("Contacts", ("vm",), "warning")],
}


def row_sets(devices: list[Any], vms: list[Any], sizes: tuple[int, ...] = (1000,)) -> list[quality.RowSet]:
    return [
        quality.RowSet((), columns.DEVICE_COLUMNS, quality.KIND_DEVICE, batches=in_batches(devices, sizes)),
        quality.RowSet((), columns.VM_COLUMNS, quality.KIND_VM, batches=in_batches(vms, sizes)),
    ]


@pytest.mark.parametrize(("chunk_rows", "sizes"), [(1, (1,)), (7, (3, 11, 1)), (64, (50, 100)), (333, (1000,))])
def test_chunks_give_the_findings_of_every_row_at_once(chunk_rows, sizes):
    devices, vms = make_rows(1500)
    config = quality_config_build(today=TODAY, **CONFIG)
    whole = quality_evaluate(row_sets(devices, vms), config, chunk_rows=10**9)
    chunked = quality_evaluate(row_sets(devices, vms, sizes), config, chunk_rows=chunk_rows)
    assert chunked.results == whole.results
    assert chunked.findings == whole.findings
    counts = {r.rule: r.count for r in whole.results}
    # Every rule has findings, and the duplicates span chunks (the first and the last of a pair far apart).
    assert all(counts.values()), counts
    pairs = {}
    for finding in whole.findings:
        if finding[0] == "duplicate_serial":
            pairs.setdefault(finding[6].casefold(), []).append(finding[3])
    assert max(max(ids) - min(ids) for ids in pairs.values()) > 1000


def test_the_findings_are_those_of_mains_pandas_frame():
    """The oracle is main's pandas code over one frame of every row; here over the devices' and VMs' rows in batches
    and chunks whose boundaries fall anywhere."""
    devices, vms = make_rows(2000, seed=11)
    config = quality_config_build(today=TODAY, **CONFIG)
    oracle = pandas_oracle.quality_evaluate(
        [
            pandas_oracle.RowSet(devices, columns.DEVICE_COLUMNS, pandas_oracle.KIND_DEVICE),
            pandas_oracle.RowSet(vms, columns.VM_COLUMNS, pandas_oracle.KIND_VM),
        ],
        pandas_oracle.quality_config_build(today=TODAY, **CONFIG),
    )
    chunked = quality_evaluate(row_sets(devices, vms, (7, 300)), config, chunk_rows=97)
    assert [tuple(vars_of(r)) for r in chunked.results] == [tuple(vars_of(r)) for r in oracle.results]
    assert chunked.findings == oracle.findings


def vars_of(result: Any) -> list[Any]:
    return [getattr(result, name) for name in ("rule", "label", "severity", "columns", "count", "error", "threshold")]


def test_merged_rows_in_chunks_give_the_findings_of_the_kinds_rows():
    devices, vms = make_rows(400, seed=3)
    config = quality_config_build(today=TODAY, **CONFIG)
    merged = transform.merged_rows(devices, vms)
    by_kind = quality_evaluate(row_sets(devices, vms), config, chunk_rows=10**9)
    chunked = quality_evaluate([quality.RowSet(merged, COLUMNS)], config, chunk_rows=13)
    assert chunked.findings == by_kind.findings and chunked.results == by_kind.results


def test_keys_whose_hashes_collide_are_told_apart(monkeypatch):
    """Rows are compared by their keys' hashes first; rows whose hashes match but keys differ are not duplicates."""
    devices, vms = make_rows(600, seed=5)
    config = quality_config_build(today=TODAY, **CONFIG)
    expected = quality_evaluate(row_sets(devices, vms), config, chunk_rows=10**9)
    monkeypatch.setattr(quality, "_key_hash", len)  # every key of a length collides
    collided = quality_evaluate(row_sets(devices, vms, (5, 40)), config, chunk_rows=21)
    assert collided.findings == expected.findings and collided.results == expected.results


def test_a_rule_failing_in_a_later_chunk_keeps_none_of_its_findings():
    calls = []

    def flaky(rows: quality.QualityRows, setting: RuleSetting) -> tuple[list[int], str]:
        calls.append(rows.size)
        if len(calls) == 3:
            raise RuntimeError("third chunk")
        return list(range(rows.size)), "x"

    def flaky_keys(rows: quality.QualityRows) -> list[str]:
        if len(calls) >= 3:
            raise ValueError("keys broke")
        return ["same"] * rows.size

    rules = (
        quality.Rule("flaky", "Flaky", "info", ("Name",), flaky),
        quality.Rule("flaky_keys", "Flaky keys", "info", ("Name",), quality.SameKey(flaky_keys, lambda rows, s: "")),
        *quality.BUILTIN_RULES[:1],
    )
    config = quality.QualityConfig(tuple((rule, RuleSetting()) for rule in rules), TODAY)
    devices, vms = make_rows(100, seed=9)
    report = quality_evaluate(row_sets(devices, vms), config, chunk_rows=10)
    results = {r.rule: r for r in report.results}
    assert (results["flaky"].count, results["flaky"].error) == (0, "RuntimeError: third chunk")
    assert (results["flaky_keys"].count, results["flaky_keys"].error) == (0, "ValueError: keys broke")
    assert calls == [10, 10, 10]  # not asked again once it failed
    assert {f[0] for f in report.findings} == {"device_no_serial"}
    assert results["device_no_serial"].count == len(list(report.findings)) > 0


def test_no_rows_still_run_the_rules_once():
    config = quality_config_build(today=TODAY, allowed={"No such column": ["x"]})
    report = quality_evaluate([quality.RowSet([], COLUMNS)], config, chunk_rows=4)
    errors = {r.rule: r.error for r in report.results if r.error}
    assert errors == {"allowed_no_such_column": "KeyError: column 'No such column' is not in the CMDB rows"}
    assert report.findings == []


def test_the_findings_file_is_the_same_in_chunks_and_leaves_nothing_behind(tmp_path, monkeypatch):
    devices, vms = make_rows(1200, seed=13)
    config = quality_config_build(today=TODAY, **CONFIG)
    (tmp_path / "whole").mkdir()
    (tmp_path / "chunks").mkdir()
    monkeypatch.setattr(quality, "CHUNK_ROWS", 10**9)
    whole_info, whole = quality_report.quality_file_write(row_sets(devices, vms), config, tmp_path / "whole" / "q.csv")
    monkeypatch.setattr(quality, "CHUNK_ROWS", 5)
    info, chunked = quality_report.quality_file_write(
        row_sets(devices, vms, (3, 7)), config, tmp_path / "chunks" / "q.csv"
    )
    assert whole_info is not None and info is not None
    assert info.sha256 == whole_info.sha256 and info.rows == whole_info.rows == whole.findings
    assert chunked.results == whole.results
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == ["q.csv"]  # the spills were anonymous files
    report = quality_evaluate(row_sets(devices, vms), config)
    with (tmp_path / "chunks" / "q.csv").open(newline="", encoding="utf-8") as handle:
        assert [tuple(row) for row in csv.reader(handle)][1:] == [tuple(map(str, f)) for f in report.findings]


@pytest.mark.parametrize("text", [*DATES, "2026-06-15T23:59:59.999999-00:30", "1000-01-01", "2262-04-12T00:00:00Z"])
def test_dates_in_netbox_forms_read_as_pandas_reads_them(text):
    import pandas as pd

    stripped = text.strip()
    parsed = pandas_oracle.parse_dates(pd.Series([stripped], dtype=object))
    expected, shown = parsed.tolist()[0], parsed.dt.strftime("%Y-%m-%d").tolist()[0]  # as main showed the day
    got = quality.DateReader().days([stripped])[0]
    if pd.isna(expected):
        assert got is None
    else:  # a day after Python's last one compares as the last one
        assert got == (expected.date() if expected.year <= date.max.year else date.max, shown)
    fast = quality._iso_day(stripped)
    assert fast is None or fast == got  # the standard library's answer, where it gives one, is pandas'


def test_old_hardware_years_clamp_the_29th_of_february():
    assert quality._years_before(date(2024, 2, 29), 5) == date(2019, 2, 28)
    assert quality._years_before(date(2024, 2, 29), 4) == date(2020, 2, 29)
    with pytest.raises(ValueError, match="year -974 is out of range"):  # pandas' words for it too
        quality._years_before(date(2026, 6, 15), 3000)


def test_spools_of_findings_are_read_back_rule_by_rule(tmp_path):
    with quality.FindingSpools(tmp_path) as spools:
        spools.add(2, [("b", 1)])
        spools.add(0, [("a", 1), ("a", 2)])
        spools.add(2, [("b", 2)])
        spools.add(1, [("dropped", 1)])
        spools.drop(1)
        assert list(spools) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert list(tmp_path.iterdir()) == []
