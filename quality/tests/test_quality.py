"""The data-quality rules over crafted merged rows, and their configuration from the settings and the admin."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from exports import columns, transform
from quality import report as quality_report
from quality import rules as quality
from quality.models import QualityAllowedValues, QualityRuleSetting
from quality.rules import RuleSetting, quality_config_build, quality_evaluate
from quality.services import quality_config_current

TODAY = date(2026, 6, 15)
COLUMNS = columns.MERGED_COLUMNS
COMPLETE = {
    "Serial number": "SN-1",
    "IP Address": "10.0.0.1/24",
    "Contacts": "Ops (Primary)",
    "Tenant": "Acme",
    "Rack": "R1",
    "Cluster": "c1",
    "Site": "AMS1",
}


def row(name: str, netbox_id: int, kind: str = "device", **cells: Any) -> tuple[Any, ...]:
    """A merged row: complete (no finding) unless ``cells`` say otherwise (underscores stand for spaces)."""
    values = dict.fromkeys(COLUMNS, "")
    values.update(COMPLETE, Name=name, ID=netbox_id, netbox_type="devices" if kind == "device" else "vms")
    if kind == "vm":
        values.update(Rack="", **{"Serial number": ""})
    else:
        values.update(Cluster="")
    values.update({key.replace("_", " "): value for key, value in cells.items()})
    return tuple(values[column] for column in COLUMNS)


def evaluate(rows: list[tuple[Any, ...]], **config: Any) -> quality.QualityReport:
    return quality_evaluate([quality.RowSet(rows, COLUMNS)], quality_config_build(today=TODAY, **config))


def flagged(report: quality.QualityReport, rule: str) -> list[tuple[Any, ...]]:
    return [f for f in report.findings if f[0] == rule]


def result(report: quality.QualityReport, rule: str) -> quality.RuleResult:
    return next(r for r in report.results if r.rule == rule)


def test_complete_rows_have_no_findings():
    report = evaluate([row("a", 1), row("b", 2, "vm")])
    assert report.findings == []
    assert all(r.count == 0 and not r.error for r in report.results)


@pytest.mark.parametrize(
    ("rule", "column", "kind"),
    [
        ("device_no_serial", "Serial number", "device"),
        ("device_no_primary_ip", "IP Address", "device"),
        ("device_no_contacts", "Contacts", "device"),
        ("device_no_tenant", "Tenant", "device"),
        ("device_no_rack", "Rack", "device"),
        ("vm_no_cluster", "Cluster", "vm"),
        ("vm_no_primary_ip", "IP Address", "vm"),
    ],
)
def test_missing_value_rules_flag_empty_and_blank_cells_of_their_kind_only(rule, column, kind):
    other = "vm" if kind == "device" else "device"
    rows = [
        row("empty", 1, kind, **{column: ""}),
        row("spaces", 2, kind, **{column: "  \t"}),
        row("filled", 3, kind),
        row("other-kind-empty", 4, other, **{column: ""}),
    ]
    report = evaluate(rows)
    assert [(f[2], f[3], f[4]) for f in flagged(report, rule)] == [(kind, 1, "empty"), (kind, 2, "spaces")]
    assert result(report, rule).count == 2
    assert result(report, rule).columns == (column,)


def test_findings_carry_rule_severity_kind_id_name_site_and_value():
    report = evaluate([row("zürich-ß-01", 7, Site="Zürich", **{"Serial number": ""})])
    assert flagged(report, "device_no_serial") == [
        ("device_no_serial", "warning", "device", 7, "zürich-ß-01", "Zürich", "")
    ]
    assert quality.FINDING_COLUMNS == ("rule", "severity", "kind", "id", "name", "site", "value")


def test_duplicate_names_are_per_kind_case_and_space_insensitive_and_unicode_aware():
    rows = [
        row("Straße-01", 1),
        row(" STRASSE-01", 2),  # casefold: ß and ss compare equal
        row("web", 3),
        row("web", 4, "vm"),  # same name, other kind: not a duplicate
        row("", 5),
        row("", 6),  # unnamed devices are not duplicates of each other
        row("Ünïcode", 7, "vm"),
        row("üNÏCODE", 8, "vm"),
    ]
    report = evaluate(rows)
    found = {(f[3], f[6]) for f in flagged(report, "duplicate_name")}
    assert found == {(1, "same name as 1 other(s)"), (2, "same name as 1 other(s)"),
                     (7, "same name as 1 other(s)"), (8, "same name as 1 other(s)")}  # fmt: skip


def test_duplicate_serials_across_kinds_ignore_case_and_empty_serials():
    rows = [
        row("a", 1, **{"Serial number": "ABC123"}),
        row("b", 2, **{"Serial number": "abc123 "}),
        row("c", 3, "vm", **{"Serial number": "ABC123"}),
        row("d", 4, **{"Serial number": "0001"}),
        row("e", 5, **{"Serial number": ""}),
        row("f", 6, **{"Serial number": ""}),
    ]
    report = evaluate(rows)
    assert [(f[3], f[6]) for f in flagged(report, "duplicate_serial")] == [(1, "ABC123"), (2, "abc123"), (3, "ABC123")]


def test_warranty_dates_in_every_format_netbox_returns():
    rows = [
        row("expired-date", 1, HW_warranty_expiration="2026-06-14"),
        row("today", 2, HW_warranty_expiration="2026-06-15"),
        row("in-90-days", 3, HW_warranty_expiration="2026-09-13"),
        row("in-91-days", 4, HW_warranty_expiration="2026-09-14"),
        row("datetime-z", 5, HW_warranty_expiration="2026-06-01T10:00:00.123456Z"),
        row("datetime-offset", 6, HW_warranty_expiration="2026-06-14T23:30:00-02:00"),  # 2026-06-15 01:30 UTC
        row("no-date", 7, HW_warranty_expiration=""),
        row("far", 8, HW_warranty_expiration="2030-01-01"),
    ]
    report = evaluate(rows)
    assert [(f[4], f[6]) for f in flagged(report, "warranty_expired")] == [
        ("expired-date", "2026-06-14"),
        ("datetime-z", "2026-06-01"),
    ]
    assert [(f[4], f[6]) for f in flagged(report, "warranty_expiring")] == [
        ("today", "2026-06-15"),
        ("in-90-days", "2026-09-13"),
        ("datetime-offset", "2026-06-15"),
    ]
    assert flagged(report, "date_unreadable") == []


def test_the_expiry_window_is_the_threshold():
    rows = [row("in-10", 1, HW_warranty_expiration="2026-06-25"), row("in-40", 2, HW_warranty_expiration="2026-07-25")]
    report = evaluate(rows, thresholds={"warranty_expiring": 30})
    assert [f[4] for f in flagged(report, "warranty_expiring")] == ["in-10"]
    assert result(report, "warranty_expiring").threshold == 30


def test_unreadable_dates_are_findings_of_their_own_not_errors():
    rows = [
        row("dutch", 1, HW_warranty_expiration="31-12-2025"),
        row("words", 2, HW_buy_date="last spring"),
        row("fine", 3, HW_buy_date="2020-01-01"),
    ]
    report = evaluate(rows)
    assert [(f[4], f[6]) for f in flagged(report, "date_unreadable")] == [
        ("dutch", "HW warranty expiration: 31-12-2025"),
        ("words", "HW buy date: last spring"),
    ]
    assert flagged(report, "warranty_expired") == []


def test_old_hardware_is_off_by_default_and_counts_years_when_on():
    rows = [row("old", 1, HW_buy_date="2019-06-14"), row("young", 2, HW_buy_date="2019-06-16")]
    assert "hardware_old" not in {r.rule for r in evaluate(rows).results}
    report = evaluate(rows, overrides={"hardware_old": RuleSetting(enabled=True, threshold=7)})
    assert [(f[4], f[6]) for f in flagged(report, "hardware_old")] == [("old", "2019-06-14")]


def test_allowed_values_are_case_insensitive_and_skip_empty_cells():
    allowed = {"DTAP state": ["Development", "Test", "Acceptance", "Production"]}
    rows = [
        row("prod", 1, DTAP_state="production"),  # NetBox returns the select value, lower case
        row("typo", 2, DTAP_state="prodution"),
        row("empty", 3, DTAP_state=""),
        row("vm-odd", 4, "vm", DTAP_state="Staging ✨"),
    ]
    report = evaluate(rows, allowed=allowed)
    assert [(f[2], f[4], f[6]) for f in flagged(report, "allowed_dtap_state")] == [
        ("device", "typo", "prodution"),
        ("vm", "vm-odd", "Staging ✨"),
    ]
    assert result(report, "allowed_dtap_state").label == "DTAP state: value outside the allowed set"


def test_custom_fields_missing_from_a_netbox_give_no_findings_and_no_errors():
    """A NetBox without the HW and DTAP custom fields: the columns exist but are empty in every row."""
    rows = [row("a", 1), row("b", 2, "vm")]
    report = evaluate(rows, allowed={"DTAP state": ["Production"]})
    for rule in ("warranty_expired", "warranty_expiring", "date_unreadable", "allowed_dtap_state"):
        assert result(report, rule).count == 0 and result(report, rule).error == ""


def test_a_failing_rule_is_recorded_and_the_others_still_run():
    rows = [row("a", 1, **{"Serial number": ""})]
    report = evaluate(rows, allowed={"No such column": ["x"]})
    broken = result(report, "allowed_no_such_column")
    assert broken.count == 0 and "No such column" in broken.error
    assert result(report, "device_no_serial").count == 1


def test_rules_on_empty_rows_run_without_errors():
    report = evaluate([])
    assert report.findings == [] and all(not r.error for r in report.results)


def test_a_report_that_cannot_be_made_is_recorded_not_raised(tmp_path):
    config = quality_config_build(today=TODAY)
    broken = [quality.RowSet([("too", "short")], COLUMNS)]
    info, summary = quality_report.quality_file_write(broken, config, tmp_path / "q.csv")
    assert info is None and summary.error.startswith("The data-quality report failed")
    assert all(r.error == summary.error for r in summary.results)
    assert not (tmp_path / "q.csv").exists()


def test_device_and_vm_rows_give_the_findings_of_their_merged_rows():
    """The export evaluates the devices' and the VMs' rows, each in its own columns, where the merged rows are not
    built: same findings, in the same order, as over the merged rows."""
    devices = [
        transform_row(columns.DEVICE_COLUMNS, row("web", 1, Serial_number="", Rack="")),
        transform_row(columns.DEVICE_COLUMNS, row("WEB", 2, HW_warranty_expiration="2020-01-01")),
        transform_row(columns.DEVICE_COLUMNS, row("db", 3, DTAP_state="nope", Contacts="  ", HW_buy_date="soon")),
    ]
    vms = [
        transform_row(columns.VM_COLUMNS, row("web", 4, "vm", Cluster="", IP_Address="")),
        transform_row(columns.VM_COLUMNS, row("app", 5, "vm", DTAP_state="Test")),
        transform_row(columns.VM_COLUMNS, row("app ", 6, "vm")),
    ]
    config = quality_config_build(today=TODAY, allowed={"DTAP state": ["Test", "Production"]})
    by_kind = quality_evaluate(
        [
            quality.RowSet(devices, columns.DEVICE_COLUMNS, quality.KIND_DEVICE),
            quality.RowSet(vms, columns.VM_COLUMNS, quality.KIND_VM),
        ],
        config,
    )
    merged = quality_evaluate([quality.RowSet(transform.merged_rows(devices, vms), COLUMNS)], config)
    assert by_kind.findings == merged.findings
    assert by_kind.results == merged.results
    assert {f[0] for f in by_kind.findings} >= {
        "device_no_serial", "device_no_rack", "device_no_contacts", "duplicate_name", "warranty_expired",
        "allowed_dtap_state", "vm_no_cluster", "vm_no_primary_ip", "date_unreadable",
    }  # fmt: skip


def transform_row(kind_columns: tuple[str, ...], merged: tuple[Any, ...]) -> tuple[Any, ...]:
    values = dict(zip(COLUMNS, merged, strict=True))
    return tuple(values[column] for column in kind_columns)


def test_the_sheet_is_the_summary_and_the_findings_read_back_from_the_csv(tmp_path):
    rows = [
        row("=cmd|' /C calc'!A0", 1, Serial_number=""),
        row("naïve\nname", 22, Serial_number="", Site='Zürich, "Nord"'),
        row("no-ip", 333, "vm", IP_Address=""),
    ]
    config = quality_config_build(today=TODAY)
    report = quality_evaluate([quality.RowSet(rows, COLUMNS)], config)
    info, summary = quality_report.quality_file_write([quality.RowSet(rows, COLUMNS)], config, tmp_path / "q.csv")
    assert info is not None and info.rows == len(report.findings) == 3
    sheet = quality_report.quality_sheet(summary, tmp_path / "q.csv")
    assert sheet.name == "Data quality"
    rows_read = list(sheet.rows)
    assert sheet.shape == (len(rows_read), 7)
    assert rows_read[0] == quality_report.SUMMARY_HEADER
    assert rows_read[1 : 1 + len(report.results)] == [
        (r.rule, r.label, r.severity, r.count, r.error) for r in report.results
    ]
    assert rows_read[1 + len(report.results)] == ()
    assert rows_read[2 + len(report.results)] == quality.FINDING_COLUMNS
    assert rows_read[3 + len(report.results) :] == report.findings  # ids back as numbers, text exactly as it was


def test_findings_beyond_what_a_sheet_holds_stay_in_the_csv_and_the_sheet_says_how_many(tmp_path):
    rows = [row(f"host-{number}", number, Serial_number="", Rack="") for number in range(1, 11)]  # 20 findings
    config = quality_config_build(today=TODAY)
    _, summary = quality_report.quality_file_write([quality.RowSet(rows, COLUMNS)], config, tmp_path / "q.csv")
    head = len(summary.results) + 3  # summary header and rows, the empty row, the findings header
    sheet = quality_report.quality_sheet(summary, tmp_path / "q.csv", max_rows=head + 8)
    rows_read = list(sheet.rows)
    assert len(rows_read) == head + 8 == sheet.shape[0]
    assert rows_read[head : head + 7] == [tuple(f) for f in evaluate(rows).findings[:7]]
    assert rows_read[-1] == ("13 more findings in q.csv",)


def test_rules_give_exact_counts_over_the_benchmark_size():
    rows = [row(f"host{i % 25_000}", i, "device" if i < 20_000 else "vm") for i in range(50_000)]
    report = evaluate(rows)
    # Devices host0..host19999 are unique; among the VMs host20000..host24999 appear twice each.
    assert result(report, "duplicate_name").count == 10_000
    assert {f[2] for f in flagged(report, "duplicate_name")} == {"vm"}


# --- configuration -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_settings_give_the_defaults(settings):
    settings.QUALITY_WARRANTY_DAYS = 30
    settings.QUALITY_HARDWARE_MAX_AGE_YEARS = 0
    settings.QUALITY_DISABLED_RULES = ["device_no_tenant"]
    settings.QUALITY_ALLOWED_VALUES = {"DTAP state": ["Production"]}
    rules = {rule.id: setting for rule, setting in quality_config_current(today=TODAY).rules}
    assert rules["warranty_expiring"] == RuleSetting(enabled=True, threshold=30)
    assert rules["hardware_old"].enabled is False
    assert rules["device_no_tenant"].enabled is False
    assert rules["allowed_dtap_state"].allowed == ("Production",)


@pytest.mark.django_db
def test_the_admin_overrides_the_settings(settings):
    settings.QUALITY_WARRANTY_DAYS = 30
    settings.QUALITY_HARDWARE_MAX_AGE_YEARS = 8
    settings.QUALITY_DISABLED_RULES = ["device_no_tenant"]
    settings.QUALITY_ALLOWED_VALUES = {"DTAP state": ["Production"], "Backup": ["yes", "no"]}
    QualityRuleSetting.objects.create(rule="warranty_expiring", enabled=True, threshold=120)
    QualityRuleSetting.objects.create(rule="device_no_tenant", enabled=True)
    QualityRuleSetting.objects.create(rule="hardware_old", enabled=False)
    QualityRuleSetting.objects.create(rule="device_no_rack", enabled=False)
    QualityAllowedValues.objects.create(column="DTAP state", values="Dev\nProd\n\n")
    QualityAllowedValues.objects.create(column="Backup", values="yes", enabled=False)
    rules = {rule.id: setting for rule, setting in quality_config_current(today=TODAY).rules}
    assert rules["warranty_expiring"].threshold == 120
    assert rules["device_no_tenant"].enabled is True
    assert rules["hardware_old"].enabled is False
    assert rules["device_no_rack"].enabled is False
    assert rules["allowed_dtap_state"].allowed == ("Dev", "Prod")
    assert "allowed_backup" not in rules


@pytest.mark.django_db
def test_a_setting_switches_old_hardware_on_with_its_years(settings):
    settings.QUALITY_HARDWARE_MAX_AGE_YEARS = 4
    rules = {rule.id: setting for rule, setting in quality_config_current(today=TODAY).rules}
    assert rules["hardware_old"] == RuleSetting(enabled=True, threshold=4)


def test_numbers_in_a_custom_field_column_are_compared_as_text():
    rows = [row("number", 1, DTAP_state=3), row("float", 2, DTAP_state=2.5), row("text", 3, DTAP_state=" 3 ")]
    report = evaluate(rows, allowed={"DTAP state": ["3"]})
    assert [(f[4], f[6]) for f in flagged(report, "allowed_dtap_state")] == [("float", "2.5")]
