"""Large merged CSVs for the CMDB table's benchmarks and tests, scaled from a real export of the fake NetBox.

A full export of the fake NetBox at 500,000 objects takes minutes and gigabytes; the CMDB table only reads the
merged CSV. So ``merged_csv_scale`` takes the merged CSV of a small real export (``devtools.netbox.FakeNetbox``
through ``exports``) as templates and writes ``devices`` + ``vms`` rows in the same shape: row *i* of a kind is a
copy of template row *i mod templates*, with what is unique per object in NetBox made unique again (name, id, IP
addresses, serial number, asset tag, last update), and the rest (sites, tenants, racks, roles, platforms, tags,
contacts, ...) kept with the templates' low cardinality. Written with the csv module as the export writes it.
"""

from __future__ import annotations

import csv
from pathlib import Path


def _ip4(first: int, number: int, suffix: str) -> str:
    return f"{first}.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}{suffix}"


def merged_csv_scale(template: Path, target: Path, *, devices: int, vms: int) -> int:
    """Write ``devices`` device rows then ``vms`` VM rows shaped like ``template``'s; returns the rows written."""
    with template.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    column = {label: index for index, label in enumerate(header)}
    kind_index = column["netbox_type"]
    templates = {kind: [row for row in rows if row[kind_index] == kind] for kind in ("devices", "vms")}
    written = 0
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for kind, total, first_octet in (("devices", devices, 10), ("vms", vms, 100)):
            source = templates[kind]
            if not source:
                continue
            batch: list[list[str]] = []
            for number in range(total):
                copy, template_row = divmod(number, len(source))
                row = list(source[template_row])
                row[column["ID"]] = str(number + 1)
                if copy:
                    row[column["Name"]] = f"{row[column['Name']]}-{copy}"
                    for label in ("Serial number", "Asset tag"):
                        if row[column[label]]:
                            row[column[label]] = f"{row[column[label]]}-{copy}"
                for label in ("IP Address", "IPv4 Address"):
                    if row[column[label]]:
                        row[column[label]] = _ip4(first_octet, number, "/24")
                if row[column["IPv6 Address"]]:
                    row[column["IPv6 Address"]] = f"2001:db8:{first_octet:x}:{number >> 16:x}::{number & 0xFFFF:x}/64"
                if row[column["OOB IP"]]:
                    row[column["OOB IP"]] = _ip4(172, number, "/24")
                seconds = number * 7
                row[column["Last updated"]] = (
                    f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T"
                    f"{(seconds // 3600) % 24:02d}:{(seconds // 60) % 60:02d}:{seconds % 60:02d}Z"
                )
                batch.append(row)
                if len(batch) == 5000:
                    writer.writerows(batch)
                    batch.clear()
            writer.writerows(batch)
            written += total
    return written
