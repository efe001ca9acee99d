"""Names shared by the export pipeline and the modules that read or publish its output: the export files, and the
characters XML 1.0 cannot carry (dropped from workbook text and from Confluence pages)."""

from __future__ import annotations

import re

DEVICES_CSV = "netbox_devices_export.csv"
VMS_CSV = "netbox_vms_export.csv"
MERGED_CSV = "netbox_merged_export.csv"
WORKBOOK = "Systems CMDB.xlsx"

# XML 1.0 forbids these characters outright (and UTF-8 cannot carry a lone surrogate); escaping cannot save them.
XML_ILLEGAL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
