"""exports.transform on the real NetBox sample objects (shared/netbox-sample): columns, rendering rules, order."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from devtools.netbox import sample_dir
from exports import columns, render, transform
from exports.columns import DEVICE_COLUMNS, MERGED_COLUMNS, VM_COLUMNS, VM_ONLY_COLUMNS, WORKBOOK_COLUMNS
from exports.transform import Lookups
from integrations.netbox import records
from integrations.netbox.records import DeviceRecord, VirtualMachineRecord

SAMPLE = sample_dir()


def _names(text: str) -> list[str]:
    return text.split(", ")


# The operators' contract, spelled out independently of the module (issue 3, "The CMDB files").
EXPECTED_DEVICE_COLUMNS = _names(
    "Name, Status, Tenant, Site, Location, Rack, Rack Position, Role, Manufacturer, Type, IP Address, ID, "
    "Tenant Group, Serial number, Asset tag, Region, Site Group, Parent Device, Position (Device Bay), Position, "
    "Rack face, "
    "Latitude, Longitude, Airflow, IPv4 Address, IPv6 Address, OOB IP, Cluster, Virtual Chassis, VC Position, "
    "VC Priority, Description, Config Template, Comments, Contacts, Tags, Created, Last updated, Platform, "
    "Server Group, Backup, DTAP state, Harddisk, open actions, CPU, Memory, Monitor hardware, HW buy date, "
    "HW warranty expiration, Warranty type, Console ports, Console server ports, Power ports, Power outlets, "
    "Interfaces, Front ports, Rear ports, Device bays, Module bays, Inventory items"
)
EXPECTED_VM_COLUMNS = _names(
    "Name, Status, Site, Cluster, Role, Tenant, VCPUs, Memory (MB), Disk, IP Address, ID, Device, Tenant Group, "
    "IPv4 Address, IPv6 Address, Description, Comments, Config Template, Serial number, Contacts, Tags, Created, "
    "Last updated, Platform, Interfaces, Virtual Disks, Backup, DTAP state, Harddisk, open actions, Server Group"
)
EXPECTED_WORKBOOK_HEAD = _names(
    "Name, Status, Device, Role, netbox_type, Cluster, IP Address, OOB IP, Contacts, DTAP state, Platform, Backup, "
    "open actions, Server Group, Description, Tenant, Manufacturer, Type, Serial number, Region, Site, Location, "
    "Rack, Rack Position, Position, Rack face, Latitude, Longitude, Airflow, IPv4 Address, IPv6 Address, "
    "Virtual Chassis, VC Position, VC Priority, Config Template, Comments, Tags, Created, Last updated, "
    "Console ports, Console server ports, Power ports, Power outlets, Interfaces, Front ports, Rear ports, "
    "Device bays, Module bays, Inventory items, VCPUs, Memory (MB), Disk, Virtual Disks, Harddisk, ID, "
    "Tenant Group, Asset tag, Site Group, Parent Device, Position (Device Bay)"
)


@cache
def _results(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((SAMPLE / name).read_text(encoding="utf-8"))["results"])


def _device_json(device_id: int) -> dict[str, Any]:
    return copy.deepcopy(next(item for item in _results("devices_page.json") if item["id"] == device_id))


def _device(device_id: int) -> DeviceRecord:
    return records.device_from_api(_device_json(device_id))


def _vm(vm_id: int) -> VirtualMachineRecord:
    item = next(item for item in _results("virtual_machines_page.json") if item["id"] == vm_id)
    return records.virtual_machine_from_api(copy.deepcopy(item))


def _sample_lookups() -> Lookups:
    return Lookups.from_records(
        sites=[records.site_from_api(item) for item in _results("sites_page.json")],
        tenants=[records.tenant_from_api(item) for item in _results("tenants_page.json")],
        contact_assignments=[
            records.contact_assignment_from_api(item) for item in _results("contact_assignments_page.json")
        ],
    )


def _device_cells(record: DeviceRecord, lookups: Lookups | None = None) -> dict[str, Any]:
    return dict(zip(DEVICE_COLUMNS, transform.device_row(record, lookups or Lookups()), strict=True))


def _vm_cells(record: VirtualMachineRecord, lookups: Lookups | None = None) -> dict[str, Any]:
    return dict(zip(VM_COLUMNS, transform.vm_row(record, lookups or Lookups()), strict=True))


def _assignment(object_id: int, contact: str, role: str | None, priority: str | None, **extra: Any) -> Any:
    """A contact assignment shaped like the sample's, with the given contact, role and priority."""
    data = copy.deepcopy(_results("contact_assignments_page.json")[0])
    data.update(object_id=object_id, **extra)
    data["contact"] = {**data["contact"], "name": contact, "display": contact}
    data["role"] = None if role is None else {**data["role"], "name": role, "display": role}
    data["priority"] = None if priority is None else {"value": priority, "label": priority.title()}
    return records.contact_assignment_from_api(data)


# Columns


def test_column_lists_are_exactly_the_contract() -> None:
    assert list(DEVICE_COLUMNS) == EXPECTED_DEVICE_COLUMNS
    assert len(DEVICE_COLUMNS) == 60
    assert list(VM_COLUMNS) == EXPECTED_VM_COLUMNS
    assert len(VM_COLUMNS) == 31
    assert VM_ONLY_COLUMNS == ("VCPUs", "Memory (MB)", "Disk", "Device", "Virtual Disks")
    vm_only = ["VCPUs", "Memory (MB)", "Disk", "Device", "Virtual Disks"]
    expected_merged = (*EXPECTED_DEVICE_COLUMNS, *vm_only, "netbox_type")
    assert expected_merged == MERGED_COLUMNS
    assert len(MERGED_COLUMNS) == len(set(MERGED_COLUMNS)) == 66


def test_every_vm_column_has_a_place_in_the_merged_columns() -> None:
    assert set(VM_COLUMNS) <= set(MERGED_COLUMNS)
    assert set(VM_ONLY_COLUMNS) == set(VM_COLUMNS) - set(DEVICE_COLUMNS)


def test_workbook_columns_are_the_issue_order_then_the_rest_in_merged_order() -> None:
    assert list(WORKBOOK_COLUMNS[: len(EXPECTED_WORKBOOK_HEAD)]) == EXPECTED_WORKBOOK_HEAD
    rest = WORKBOOK_COLUMNS[len(EXPECTED_WORKBOOK_HEAD) :]
    assert list(rest) == [name for name in MERGED_COLUMNS if name not in EXPECTED_WORKBOOK_HEAD]
    assert sorted(WORKBOOK_COLUMNS) == sorted(MERGED_COLUMNS)
    assert len(set(WORKBOOK_COLUMNS)) == len(WORKBOOK_COLUMNS) == 66


def test_workbook_column_order_puts_the_operators_names_first() -> None:
    assert columns.workbook_column_order(None) == WORKBOOK_COLUMNS
    assert columns.workbook_column_order([]) == WORKBOOK_COLUMNS
    order = columns.workbook_column_order([" ID ", "Name", "ID", ""])
    assert order[:2] == ("ID", "Name")
    assert order[2:] == tuple(name for name in MERGED_COLUMNS if name not in ("ID", "Name"))


def test_workbook_column_order_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="Hostname"):
        columns.workbook_column_order(["Name", "Hostname"])


# Device rows on the sample's edge-case devices (ids 1-6)


def test_device_1_keeps_its_leading_zero_serial_and_renders_nested_objects_as_names() -> None:
    cells = _device_cells(_device(1), _sample_lookups())
    assert cells["Serial number"] == "000417"
    assert cells["Asset tag"] == "0099-AT"
    assert cells["Name"] == "fra1-hv001"
    assert cells["Status"] == "Active"
    assert cells["Tenant"] == "Stark Logistics"
    assert cells["Site"] == "FRA1"
    assert cells["Location"] == "FRA1 Data Hall 2"
    assert cells["Rack"] == "FRA1-B02"
    assert cells["Role"] == "Hypervisor"
    assert cells["Manufacturer"] == "Dell"
    assert cells["Type"] == "PowerEdge R650"
    assert cells["Platform"] == "Windows Server 2022"
    assert cells["Cluster"] == "fra1-proxmox-cl01"
    assert cells["Airflow"] == "Front to rear"
    assert cells["Rack face"] == "Front"
    assert cells["Region"] == "Europe"


def test_device_1_position_is_an_int_and_rack_position_joins_face_and_position() -> None:
    cells = _device_cells(_device(1))
    assert cells["Position"] == 41
    assert type(cells["Position"]) is int
    assert cells["Rack Position"] == "Front 41"


def test_device_1_counts_and_id_are_ints() -> None:
    cells = _device_cells(_device(1))
    assert cells["ID"] == 1
    assert cells["Interfaces"] == 5
    for name in columns.COUNT_COLUMNS:
        assert type(cells[name]) is int, name


def test_device_1_timestamps_are_truncated_to_seconds() -> None:
    cells = _device_cells(_device(1))
    assert cells["Created"] == "2026-11-28T02:24:24Z"  # NetBox: 2026-11-28T02:24:24.492074Z
    assert cells["Last updated"] == "2026-11-28T02:56:32Z"


def test_device_1_ip_address_is_the_primary_with_prefix_length() -> None:
    cells = _device_cells(_device(1))
    assert cells["IP Address"] == "10.2.0.4/24"
    assert cells["IPv4 Address"] == "10.2.0.4/24"
    assert cells["IPv6 Address"] == ""
    assert cells["OOB IP"] == ""


def test_device_2_description_starting_with_equals_is_kept_exactly() -> None:
    cells = _device_cells(_device(2))
    assert cells["Description"] == '=HYPERLINK("http://evil.example","click")'
    assert cells["OOB IP"] == "172.20.0.4/24"
    assert cells["IP Address"] == "10.5.0.4/24"
    assert cells["Tags"] == "critical"


def test_device_3_name_with_markup_characters_and_multi_line_comment() -> None:
    cells = _device_cells(_device(3))
    assert cells["Name"] == "edge-<lab>&test"
    assert cells["Comments"] == 'multi\nline, "quoted" comment'
    assert cells["open actions"] == "replace PSU"
    assert cells["Rack Position"] == "Front 5"


def test_device_4_non_ascii_name_and_formula_like_description() -> None:
    cells = _device_cells(_device(4))
    assert cells["Name"] == "sw-zürich-01"
    assert cells["Description"] == "+1 spare; @ops; -tagged"
    assert cells["Serial number"] == ""


def test_device_5_long_comment_and_ip_address_falls_back_to_oob() -> None:
    cells = _device_cells(_device(5))
    assert len(cells["Comments"]) == 5000
    assert cells["Comments"] == _device_json(5)["comments"]
    assert cells["IP Address"] == "172.16.0.4/24"
    assert cells["Status"] == "Planned"


def test_device_6_in_a_rack_without_position_has_empty_positions() -> None:
    cells = _device_cells(_device(6))
    assert cells["Rack"] == "SJC1-F06"
    assert cells["Rack Position"] == ""
    assert cells["Position"] == ""
    assert cells["Airflow"] == "Passive"


def test_rack_position_rules() -> None:
    assert render.render_rack_position("Front", 41.0) == "Front 41"
    assert render.render_rack_position("Rear", 12.5) == "Rear 12.5"
    assert render.render_rack_position("", 7.0) == "7"
    assert render.render_rack_position("Front", None) == ""


def test_numbers_are_ints_when_integral() -> None:
    assert render.render_number(41.0) == 41
    assert type(render.render_number(41.0)) is int
    assert render.render_number(41.5) == 41.5
    assert render.render_number(-33.8688) == -33.8688
    assert render.render_number(0) == 0
    assert render.render_number(None) == ""


def test_latitude_longitude_and_virtual_chassis_are_numbers() -> None:
    data = _device_json(7)
    data.update(latitude=-33.8688, longitude=151.0, vc_position=2, vc_priority=255)
    data["virtual_chassis"] = {"id": 1, "url": "", "display": "vc-1", "name": "vc-1", "description": ""}
    cells = _device_cells(records.device_from_api(data))
    assert (cells["Latitude"], cells["Longitude"]) == (-33.8688, 151)
    assert (cells["VC Position"], cells["VC Priority"]) == (2, 255)
    assert cells["Virtual Chassis"] == "vc-1"


def test_ip_address_prefers_primary_then_ipv4_then_ipv6_then_oob() -> None:
    base = _device(1)
    only_v6 = replace(base, primary_ip="", primary_ip4="", primary_ip6="2001:db8::1/64", oob_ip="172.16.0.9/24")
    assert _device_cells(only_v6)["IP Address"] == "2001:db8::1/64"
    only_oob = replace(base, primary_ip="", primary_ip4="", primary_ip6="", oob_ip="172.16.0.9/24")
    assert _device_cells(only_oob)["IP Address"] == "172.16.0.9/24"
    v4_without_primary = replace(base, primary_ip="", primary_ip4="10.0.0.1/24", primary_ip6="2001:db8::1/64")
    assert _device_cells(v4_without_primary)["IP Address"] == "10.0.0.1/24"


def test_position_device_bay_comes_from_the_parent_device_bay() -> None:
    data = _device_json(1)
    data["parent_device"] = {
        "id": 40,
        "url": "https://netbox.example.com/api/dcim/devices/40/",
        "display": "fra1-chassis01",
        "name": "fra1-chassis01",
        "description": "",
        "device_bay": {
            "id": 7,
            "url": "https://netbox.example.com/api/dcim/device-bays/7/",
            "display": "Bay 3",
            "name": "Bay 3",
            "description": "",
        },
    }
    cells = _device_cells(records.device_from_api(data))
    assert cells["Parent Device"] == "fra1-chassis01"
    assert cells["Position (Device Bay)"] == "Bay 3"


# Tags, contacts, lookups


def test_tags_are_sorted_and_unique() -> None:
    assert _device_cells(_device(19))["Tags"] == "decom-2027, managed-by-ansible, pci-dss"
    record = replace(_device(1), tags=("pci-dss", "critical", "pci-dss", "Backup"))
    assert _device_cells(record)["Tags"] == "Backup, critical, pci-dss"
    assert render.render_tags(("b", "a", "B", "a", "")) == "a, B, b"
    assert _device_cells(_device(1))["Tags"] == ""


def test_contacts_from_the_sample_are_ordered_by_priority() -> None:
    lookups = _sample_lookups()
    # Device 351: Kai Müller is secondary, Chen Wei primary; 252: two primaries, ordered by name.
    assert lookups.contacts[("dcim.device", 351)] == "Chen Wei (Escalation), Kai Müller (Escalation)"
    assert (
        lookups.contacts[("dcim.device", 252)] == "Gert-Jan Bos (Technical contact), Jules Martin (Technical contact)"
    )
    row = _device_cells(replace(_device(1), id=351), lookups)
    assert row["Contacts"] == "Chen Wei (Escalation), Kai Müller (Escalation)"


def test_contacts_order_priority_then_name_then_role_and_drop_duplicates() -> None:
    assignments = [
        _assignment(1, "Zoë Bakker", None, None),
        _assignment(1, "Anouk de Vries", "Owner", "inactive"),
        _assignment(1, "Bram Jansen", "Owner", "tertiary"),
        _assignment(1, "Chen Wei", "Technical contact", "secondary"),
        _assignment(1, "Chen Wei", "Escalation", "secondary"),
        _assignment(1, "Kai Müller", "Owner", "primary"),
        _assignment(1, "Kai Müller", "Owner", "secondary"),
        _assignment(2, "Somebody Else", "Owner", "primary"),
    ]
    lookups = Lookups.from_records(contact_assignments=reversed(assignments))
    assert _device_cells(_device(1), lookups)["Contacts"] == (
        "Kai Müller (Owner), Chen Wei (Escalation), Chen Wei (Technical contact), Bram Jansen (Owner), "
        "Anouk de Vries (Owner), Zoë Bakker"
    )


def test_vm_contacts_use_the_vm_object_type() -> None:
    assignments = [
        _assignment(1, "Hana Novák", "Owner", "primary", object_type="virtualization.virtualmachine"),
        _assignment(1, "Device Person", "Owner", "primary"),
    ]
    lookups = Lookups.from_records(contact_assignments=assignments)
    assert _vm_cells(_vm(1), lookups)["Contacts"] == "Hana Novák (Owner)"
    assert _device_cells(_device(1), lookups)["Contacts"] == "Device Person (Owner)"


def test_region_site_group_and_tenant_group_come_from_the_lookups() -> None:
    sites = [copy.deepcopy(item) for item in _results("sites_page.json")]
    tenants = [copy.deepcopy(item) for item in _results("tenants_page.json")]
    fra1 = next(item for item in sites if item["name"] == "FRA1")
    fra1["group"] = {"id": 3, "url": "", "display": "Colocation", "name": "Colocation", "slug": "colo"}
    stark = next(item for item in tenants if item["name"] == "Stark Logistics")
    stark["group"] = {"id": 2, "url": "", "display": "Strategic", "name": "Strategic", "slug": "strategic"}
    lookups = Lookups.from_records(
        sites=[records.site_from_api(item) for item in sites],
        tenants=[records.tenant_from_api(item) for item in tenants],
    )
    cells = _device_cells(_device(1), lookups)  # FRA1, Stark Logistics
    assert (cells["Region"], cells["Site Group"], cells["Tenant Group"]) == ("Europe", "Colocation", "Strategic")
    vm = _vm_cells(replace(_vm(1), tenant_id=5), lookups)
    assert vm["Tenant Group"] == "Strategic"
    unknown = _device_cells(replace(_device(1), site_id=999, tenant_id=None), lookups)
    assert (unknown["Region"], unknown["Site Group"], unknown["Tenant Group"]) == ("", "", "")


# Timestamps and custom fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T02:24:24.492074Z", "2026-11-28T02:24:24Z"),
        ("2026-11-28T02:24:24Z", "2026-11-28T02:24:24Z"),
        ("2026-11-28T02:24:24.492074+00:00", "2026-11-28T02:24:24Z"),
        ("2026-11-28T04:24:24.5+02:00", "2026-11-28T02:24:24Z"),
        ("2026-11-28T02:24:24", "2026-11-28T02:24:24Z"),
        ("", ""),
        ("not a date", "not a date"),
    ],
)
def test_timestamps_render_as_utc_seconds(value: str, expected: str) -> None:
    assert render.render_timestamp(value) == expected


def test_device_custom_fields_from_the_sample() -> None:
    cells = _device_cells(_device(3))
    assert cells["Backup"] == "daily"
    assert cells["CPU"] == "8 cores"
    assert cells["DTAP state"] == "production"  # key DTAP_state
    assert cells["HW buy date"] == "2018-04-13"  # key HW_buy_date
    assert cells["HW warranty expiration"] == ""
    assert cells["Harddisk"] == ""
    assert cells["Memory"] == "64 GB"
    assert cells["Monitor hardware"] == "False"
    assert cells["Server Group"] == "storage"
    assert cells["Warranty type"] == "4h"
    assert _device_cells(_device(4))["Monitor hardware"] == "True"


def test_custom_fields_match_by_normalised_name_and_render_plainly() -> None:
    record = replace(
        _device(1),
        custom_fields={
            "dtap-State": "test",
            "SERVER GROUP": ["web", "db"],
            "hw_Buy_Date": "2020-01-01",
            "Monitor_Hardware": True,
            "Harddisk": {"id": 3, "url": "https://netbox.example.com/api/x/3/", "display": "disk-3", "name": "SSD 1"},
            "cpu": 8,
            "Memory": None,
            "open actions": [{"id": 1, "display": "Ticket 1"}, {"id": 2, "display": "Ticket 2"}],
            "backup": "",
            "Backup": "weekly",
            "warranty-type": 4.0,
        },
    )
    cells = _device_cells(record)
    assert cells["DTAP state"] == "test"
    assert cells["Server Group"] == "web, db"
    assert cells["HW buy date"] == "2020-01-01"
    assert cells["Monitor hardware"] == "True"
    assert cells["Harddisk"] == "SSD 1"
    assert cells["CPU"] == 8
    assert cells["Memory"] == ""
    assert cells["open actions"] == "Ticket 1, Ticket 2"
    assert cells["Backup"] == "weekly"  # "backup" and "Backup" collide: the non-empty one wins
    assert cells["Warranty type"] == 4


def test_custom_field_values_never_render_as_python_reprs() -> None:
    assert render.render_custom_field({"id": 1, "label": "Gold"}) == "Gold"
    assert render.render_custom_field({"id": 1}) == '{"id": 1}'
    assert render.render_custom_field([True, None, 3, "x"]) == "True, 3, x"
    assert render.render_custom_field(False) == "False"
    assert render.render_custom_field(None) == ""


# VM rows


def test_vm_row_from_the_sample() -> None:
    cells = _vm_cells(_vm(1))
    assert cells["Name"] == "k8s-cp-prd-nyc1-0001"
    assert cells["Status"] == "Decommissioning"
    assert cells["Site"] == "NYC1"
    assert cells["Cluster"] == "nyc1-nutanix-cl01"
    assert (cells["VCPUs"], cells["Memory (MB)"], cells["Disk"]) == (16, 131072, 2097152)
    assert type(cells["VCPUs"]) is int
    assert cells["IP Address"] == "10.103.0.4/24"
    assert cells["ID"] == 1
    assert cells["Tags"] == "backup-daily, critical, pci-dss"
    assert cells["Created"] == "2026-11-28T02:42:26Z"
    assert cells["Interfaces"] == 1
    assert cells["Virtual Disks"] == "3 x 40 GB"
    assert cells["Backup"] == "weekly"
    assert cells["DTAP state"] == "production"
    assert cells["Server Group"] == "batch"


def test_vm_serial_and_host_device() -> None:
    cells = _vm_cells(_vm(3))
    assert cells["Serial number"] == "VMware-42 4cb3c6fa"
    assert cells["Device"] == "ams1-hv007"


def test_vm_virtual_disks_uses_the_custom_field_when_defined_else_the_count() -> None:
    assert _vm_cells(_vm(5))["Virtual Disks"] == ""  # the field exists, without a value
    without_field = replace(_vm(1), custom_fields={"Backup": "daily"}, virtual_disk_count=2)
    assert _vm_cells(without_field)["Virtual Disks"] == 2
    spelled_differently = replace(_vm(1), custom_fields={"virtual-disks": "2 x 10 GB"}, virtual_disk_count=2)
    assert _vm_cells(spelled_differently)["Virtual Disks"] == "2 x 10 GB"


# Row sets


def _all_devices() -> list[DeviceRecord]:
    return [records.device_from_api(copy.deepcopy(item)) for item in _results("devices_page.json")]


def _all_vms() -> list[VirtualMachineRecord]:
    return [records.virtual_machine_from_api(copy.deepcopy(item)) for item in _results("virtual_machines_page.json")]


def test_rows_are_deterministic_and_sorted_by_id_whatever_the_input_order() -> None:
    lookups = _sample_lookups()
    devices, vms = _all_devices(), _all_vms()
    expected_devices = transform.device_rows(devices, lookups)
    expected_vms = transform.vm_rows(vms, lookups)
    shuffled = random.Random(3)
    for _ in range(3):
        shuffled.shuffle(devices)
        shuffled.shuffle(vms)
        assert transform.device_rows(devices, lookups) == expected_devices
        assert transform.vm_rows(vms, lookups) == expected_vms
    assert [row[DEVICE_COLUMNS.index("ID")] for row in expected_devices] == list(range(1, 26))


def test_rows_hold_only_str_int_and_float() -> None:
    lookups = _sample_lookups()
    rows = transform.merged_rows(transform.device_rows(_all_devices(), lookups), transform.vm_rows(_all_vms(), lookups))
    assert {type(value) for row in rows for value in row} <= {str, int, float}
    assert all(len(row) == len(MERGED_COLUMNS) for row in rows)


def test_merged_rows_put_devices_first_and_pad_each_into_merged_order() -> None:
    lookups = _sample_lookups()
    device_rows = transform.device_rows(_all_devices(), lookups)
    vm_rows = transform.vm_rows(_all_vms(), lookups)
    merged = transform.merged_rows(device_rows, vm_rows)
    assert [row[-1] for row in merged] == ["devices"] * 25 + ["vms"] * 25
    first_device = dict(zip(MERGED_COLUMNS, merged[0], strict=True))
    assert merged[0][: len(DEVICE_COLUMNS)] == device_rows[0]
    assert all(first_device[name] == "" for name in VM_ONLY_COLUMNS)
    vm = dict(zip(MERGED_COLUMNS, merged[25 + 2], strict=True))  # VM 3
    assert vm == {name: dict(zip(VM_COLUMNS, vm_rows[2], strict=True)).get(name, "") for name in MERGED_COLUMNS} | {
        "netbox_type": "vms"
    }
    assert (vm["Device"], vm["VCPUs"], vm["Memory (MB)"], vm["Memory"]) == ("ams1-hv007", 4, 131072, "")
    assert vm["Serial number"] == "VMware-42 4cb3c6fa"


def test_merged_rows_reject_rows_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="device row"):
        transform.merged_rows([("too", "short")], [])


def test_reorder_permutes_and_fills_missing_columns() -> None:
    lookups = _sample_lookups()
    merged = transform.merged_rows(
        transform.device_rows(_all_devices(), lookups), transform.vm_rows(_all_vms(), lookups)
    )
    workbook = transform.reorder(merged, MERGED_COLUMNS, WORKBOOK_COLUMNS)
    assert transform.reorder(workbook, WORKBOOK_COLUMNS, MERGED_COLUMNS) == merged
    assert workbook[0][WORKBOOK_COLUMNS.index("Serial number")] == "000417"
    assert transform.reorder([("a", 1)], ("x", "y"), ("y", "z", "x")) == [(1, "", "a")]
