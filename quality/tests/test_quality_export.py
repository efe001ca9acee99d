"""The data-quality report of a real export of the fake NetBox: the artifact, the counts, the workbook sheet."""

from __future__ import annotations

import csv
import zipfile
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from django.utils import timezone

from exports import selectors
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from quality import report as quality_report
from quality import rules as quality
from quality import services as quality_services
from quality.models import QualityRuleCount, QualityRuleSetting
from quality.selectors import quality_rules_of

pytestmark = pytest.mark.django_db

CMDB_FILES = ("netbox_devices_export.csv", "netbox_vms_export.csv", "netbox_merged_export.csv")


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


def path_of(run: ExportRun, name: str) -> Path:
    return selectors.artifact_path(run.artifacts.get(name=name))


def findings_of(run: ExportRun) -> list[dict[str, str]]:
    with path_of(run, "data_quality.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def counts_of(run: ExportRun) -> dict[str, int]:
    return dict(run.quality_counts.values_list("rule", "count"))


@pytest.fixture
def crafted(netbox):
    """Devices 7..10 of the fake NetBox with known data-quality problems."""
    devices = netbox.devices
    first, second, third, fourth = (d["id"] for d in devices[6:10])
    netbox.update_device(first, serial="DUP-1", custom_fields={**devices[6]["custom_fields"],
                         "HW_warranty_expiration": "2001-01-31", "DTAP_state": "staging"})  # fmt: skip
    netbox.update_device(second, serial="dup-1", custom_fields={**devices[7]["custom_fields"],
                         "HW_warranty_expiration": "2999-01-01"})  # fmt: skip
    netbox.update_device(third, serial="", rack=None)
    netbox.update_device(fourth, custom_fields={**devices[9]["custom_fields"], "HW_buy_date": "01/02/2020"})
    return {"first": first, "second": second, "third": third, "fourth": fourth}


def test_an_export_writes_data_quality_csv_and_records_counts_per_rule(crafted):
    run = run_export()
    artifact = run.artifacts.get(name="data_quality.csv")
    assert artifact.kind == "quality"
    rows = findings_of(run)
    assert artifact.rows == len(rows)
    assert list(rows[0]) == list(quality.FINDING_COLUMNS)
    by_rule: dict[str, set[str]] = {}
    for row in rows:
        by_rule.setdefault(row["rule"], set()).add(row["id"])
    ids = {key: str(value) for key, value in crafted.items()}
    assert {ids["first"], ids["second"]} <= by_rule["duplicate_serial"]
    assert ids["first"] in by_rule["warranty_expired"]
    assert ids["first"] in by_rule["allowed_dtap_state"]
    assert ids["third"] in by_rule["device_no_serial"] and ids["third"] in by_rule["device_no_rack"]
    assert ids["fourth"] in by_rule["date_unreadable"]
    assert ids["second"] not in by_rule.get("warranty_expiring", set())
    # The counts in the database are those of the file, rule by rule.
    counts = counts_of(run)
    assert counts == {rule: len([r for r in rows if r["rule"] == rule]) for rule in counts}
    assert set(counts) >= set(quality.BUILTIN_RULE_IDS) - {"hardware_old"}
    first = next(r for r in rows if r["rule"] == "warranty_expired" and r["id"] == ids["first"])
    assert first["severity"] == "error" and first["kind"] == "device" and first["value"] == "2001-01-31"
    assert first["site"] and first["name"]


def test_the_workbook_gets_a_data_quality_sheet_read_back_with_openpyxl(crafted):
    run = run_export()
    workbook = openpyxl.load_workbook(path_of(run, "Systems CMDB.xlsx"), read_only=True)
    try:
        assert workbook.sheetnames == ["NetBox Inventory", "Data quality"]
        sheet = list(workbook["Data quality"].iter_rows(values_only=True))
    finally:
        workbook.close()
    assert sheet[0][:5] == quality_report.SUMMARY_HEADER
    rules = list(run.quality_counts.order_by("id"))
    assert [(r[0], r[3]) for r in sheet[1 : 1 + len(rules)]] == [(c.rule, c.count) for c in rules]
    header_at = sheet.index(quality.FINDING_COLUMNS)
    findings = sheet[header_at + 1 :]
    assert len(findings) == len(findings_of(run))
    expired = [f for f in findings if f[0] == "warranty_expired" and f[3] == crafted["first"]]
    assert expired and expired[0][6] == "2001-01-31" and isinstance(expired[0][3], int)


def test_the_cmdb_sheet_and_csvs_stay_byte_for_byte_the_same(netbox, settings):
    with_report = run_export(force=True)
    settings.EXPORT_QUALITY = False
    without = run_export(force=True)
    assert not without.artifacts.filter(name="data_quality.csv").exists()
    assert not without.quality_counts.exists()
    for name in CMDB_FILES:
        assert path_of(with_report, name).read_bytes() == path_of(without, name).read_bytes(), name
    with (
        zipfile.ZipFile(path_of(with_report, "Systems CMDB.xlsx")) as left,
        zipfile.ZipFile(path_of(without, "Systems CMDB.xlsx")) as right,
    ):
        assert left.read("xl/worksheets/sheet1.xml") == right.read("xl/worksheets/sheet1.xml")
        assert left.read("xl/tables/table1.xml") == right.read("xl/tables/table1.xml")
        assert "xl/worksheets/sheet2.xml" in left.namelist() and "xl/worksheets/sheet2.xml" not in right.namelist()
        # The export's workbook carries its text inline (no shared strings): the sheets do not depend on each other.
        assert "xl/sharedStrings.xml" not in left.namelist() + right.namelist()


def test_without_the_sheet_the_workbook_is_the_one_written_without_a_report(netbox, settings):
    settings.EXPORT_QUALITY_SHEET = False
    with_csv_only = run_export(force=True)
    assert with_csv_only.artifacts.filter(name="data_quality.csv").exists()
    settings.EXPORT_QUALITY = False
    plain = run_export(force=True)
    assert path_of(with_csv_only, "Systems CMDB.xlsx").read_bytes() == path_of(plain, "Systems CMDB.xlsx").read_bytes()


def test_a_broken_rule_never_fails_the_export(netbox, settings, monkeypatch):
    settings.QUALITY_ALLOWED_VALUES = {"DTAP state": ["Production"], "Not a column": ["x"]}

    def boom(frame, setting):
        raise RuntimeError("rule exploded")

    broken = quality.Rule("device_no_serial", "Devices without serial number", "warning", ("Serial number",), boom)
    monkeypatch.setattr(quality, "BUILTIN_RULES", (broken, *quality.BUILTIN_RULES[1:]))
    run = run_export()
    errors = dict(run.quality_counts.exclude(error="").values_list("rule", "error"))
    assert errors == {
        "device_no_serial": "RuntimeError: rule exploded",
        "allowed_not_a_column": "KeyError: column 'Not a column' is not in the CMDB rows",
    }
    assert run.quality_counts.get(rule="device_no_primary_ip").error == ""
    assert not any(row["rule"] == "device_no_serial" for row in findings_of(run))


def test_a_report_that_fails_as_a_whole_still_lets_the_export_succeed(netbox, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("no room for the frame")

    monkeypatch.setattr(quality_report, "kept_file_write", broken)  # the report's evaluation in an export
    run = run_export()
    assert not run.artifacts.filter(name="data_quality.csv").exists()
    assert set(run.quality_counts.values_list("error", flat=True)) == {
        "The data-quality report failed: MemoryError: no room for the frame"
    }
    workbook = openpyxl.load_workbook(path_of(run, "Systems CMDB.xlsx"), read_only=True)
    assert workbook.sheetnames == ["NetBox Inventory"]
    workbook.close()


def test_a_run_that_reuses_the_files_reuses_the_report(crafted):
    full = run_export()
    reused = run_export()
    assert reused.reused_files
    assert counts_of(reused) == counts_of(full)
    assert path_of(reused, "data_quality.csv").read_bytes() == path_of(full, "data_quality.csv").read_bytes()


def test_switching_the_report_on_writes_the_files_again_with_it(netbox, settings):
    settings.EXPORT_QUALITY = False
    plain = run_export()
    settings.EXPORT_QUALITY = True
    again = run_export()
    assert (again.mode, again.reused_files, again.added, again.changed, again.removed) == (
        "incremental",
        False,
        0,
        0,
        0,
    )
    assert again.quality_counts.exists() and again.artifacts.filter(name="data_quality.csv").exists()
    for name in CMDB_FILES:  # the same rows: the same CMDB files
        assert path_of(again, name).read_bytes() == path_of(plain, name).read_bytes(), name
    assert "written again" in again.log


def test_a_later_day_with_nothing_changed_in_netbox_reports_on_that_day(netbox, monkeypatch):
    """The warranty rules compare with the day of the report: files reused from yesterday would keep yesterday's
    answer for as long as nothing changes in NetBox."""
    today = timezone.localdate()
    device = netbox.devices[3]
    netbox.update_device(device["id"], custom_fields={**device["custom_fields"],
                         "HW_warranty_expiration": str(today + timedelta(days=1))})  # fmt: skip
    first = run_export()
    assert str(device["id"]) in ids_of(first, "warranty_expiring")
    assert str(device["id"]) not in ids_of(first, "warranty_expired")
    assert run_export().reused_files  # the same day: nothing to redo

    monkeypatch.setattr(quality_services.timezone, "localdate", lambda *args: today + timedelta(days=2))
    later = run_export()
    assert later.mode == "incremental" and not later.reused_files and later.changed == 0
    assert str(device["id"]) in ids_of(later, "warranty_expired")
    assert str(device["id"]) not in ids_of(later, "warranty_expiring")
    assert counts_of(later)["warranty_expired"] == counts_of(first)["warranty_expired"] + 1
    assert run_export().reused_files  # and again the same day


def test_an_admin_change_to_a_rule_applies_without_a_change_in_netbox(netbox):
    device = netbox.devices[3]
    in_200_days = str(timezone.localdate() + timedelta(days=200))
    netbox.update_device(device["id"], custom_fields={**device["custom_fields"], "HW_warranty_expiration": in_200_days})
    first = run_export()
    QualityRuleSetting.objects.create(rule="device_no_serial", enabled=False)
    QualityRuleSetting.objects.create(rule="warranty_expiring", enabled=True, threshold=365)
    second = run_export()
    assert second.mode == "incremental" and not second.reused_files
    assert "device_no_serial" in counts_of(first) and "device_no_serial" not in counts_of(second)
    assert counts_of(second)["warranty_expiring"] > counts_of(first)["warranty_expiring"]
    assert str(device["id"]) in ids_of(second, "warranty_expiring")
    assert second.quality_counts.get(rule="warranty_expiring").threshold == 365


def ids_of(run: ExportRun, rule: str) -> set[str]:
    return {row["id"] for row in findings_of(run) if row["rule"] == rule}


def test_counts_form_a_trend_with_the_change_since_the_previous_run(crafted, netbox):
    first = run_export()
    netbox.update_device(crafted["second"], serial="")  # one more device without serial, one less duplicate pair
    second = run_export()
    rules = {rule.rule: rule for rule in quality_rules_of(run=second)}
    before, after = counts_of(first), counts_of(second)
    assert after["device_no_serial"] == before["device_no_serial"] + 1
    assert rules["device_no_serial"].change == 1 and rules["device_no_serial"].trend == [
        before["device_no_serial"],
        after["device_no_serial"],
    ]
    assert rules["duplicate_serial"].change == after["duplicate_serial"] - before["duplicate_serial"] < 0
    assert QualityRuleCount.objects.filter(run=second).count() == len(rules)


def test_written_in_one_process_the_files_and_the_sheet_are_the_same(crafted, settings):
    """EXPORT_PARALLEL_WRITE=false (no fork): the child's work runs in the export process after the report, and
    the mailbox hands over the value sent; every file, the workbook's Data quality sheet included, is the same."""
    forked_run = run_export(force=True)
    settings.EXPORT_PARALLEL_WRITE = False
    single = run_export(force=True)
    names = set(single.artifacts.values_list("name", flat=True))
    assert names == set(forked_run.artifacts.values_list("name", flat=True))
    assert {"data_quality.csv", "Systems CMDB.xlsx"} <= names
    for name in names:
        assert path_of(single, name).read_bytes() == path_of(forked_run, name).read_bytes(), name
    assert counts_of(single) == counts_of(forked_run)
