"""The CMDB query layer: filters, search, sorting, datasets and counts over a table of rows."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cmdb.query import DATE, NUMBER, TEXT, Filter, Query, QueryError, column_key
from cmdb.table import CmdbTable, RowDicts
from exports import selectors as export_selectors
from exports.columns import DEVICE_COLUMNS, MERGED_COLUMNS, VM_COLUMNS

LABELS = ["Name", "Status", "Site", "Tenant", "ID", "VCPUs", "Serial number", "Created", "Tags", "IP Address",
          "Comments", "netbox_type"]  # fmt: skip
ROWS = [
    # Name, Status, Site, Tenant, ID, VCPUs, Serial, Created, Tags, IP, Comments, type
    (
        "srv10",
        "Active",
        "FRA1",
        "Acme",
        "1",
        "",
        "0099",
        "2024-05-31T23:59:00Z",
        "lab, prod",
        "10.2.0.4/24",
        "",
        "devices",
    ),
    ("srv2", "Planned", "AMS1", "", "2", "", "100", "2024-06-01T00:00:00Z", "", "10.2.1.9/24", "", "devices"),
    ("Straße-01", "active", "Zürich", "Ümlaut AG", "3", "", "", "", "prod", "", "multi\nline", "devices"),
    ("vm-b", "Active", "FRA1", "Acme", "1", "16", "", "2023-01-01T00:00:00Z", "Lab", "10.2.0.40/24", "", "vms"),
    ("vm-a", "Offline", "FRA10", "Beta", "2", "2", "", "2025-02-03T10:00:00Z", "", "", "", "vms"),
    ("vm-c", "Active", "", "Acme", "5", "4", "", "", "", "fe80::1/64", "=SUM(A1)", "vms"),
]


@pytest.fixture
def table() -> CmdbTable:
    return CmdbTable(LABELS, [[row[i] for row in ROWS] for i in range(len(LABELS))])


def names(table: CmdbTable, query: Query) -> list[str]:
    return [table.cell(row, "Name") for row in table.select(query)]


def where(*filters: Filter, **query: object) -> Query:
    return Query(filters=filters, **query)  # type: ignore[arg-type]


def test_contains_is_case_insensitive_and_unicode_aware(table):
    assert names(table, where(Filter("Site", "contains", "fra"))) == ["srv10", "vm-b", "vm-a"]
    assert names(table, where(Filter("Name", "contains", "STRASSE"))) == ["Straße-01"]  # casefold: ß -> ss
    assert names(table, where(Filter("Site", "contains", "ZÜRICH"))) == ["Straße-01"]
    assert names(table, where(Filter("Tenant", "contains", "ümlaut"))) == ["Straße-01"]


def test_equals_matches_whole_values_case_insensitively(table):
    assert names(table, where(Filter("Site", "eq", "fra1"))) == ["srv10", "vm-b"]  # not FRA10
    assert names(table, where(Filter("Status", "eq", "ACTIVE"))) == ["srv10", "Straße-01", "vm-b", "vm-c"]


def test_equals_compares_numbers_as_numbers_in_number_columns(table):
    assert names(table, where(Filter("VCPUs", "eq", "16.0"))) == ["vm-b"]
    # Serial number is a text column: "0099" is not 99.
    assert names(table, where(Filter("Serial number", "eq", "99"))) == []
    assert names(table, where(Filter("Serial number", "eq", "0099"))) == ["srv10"]


def test_empty_and_not_empty(table):
    assert names(table, where(Filter("Tenant", "empty"))) == ["srv2"]
    assert names(table, where(Filter("Site", "notempty"), Filter("Tags", "empty"))) == ["srv2", "vm-a"]


def test_number_ranges_ignore_blank_cells(table):
    assert names(table, where(Filter("VCPUs", "gte", "4"))) == ["vm-b", "vm-c"]
    assert names(table, where(Filter("VCPUs", "lte", "4"))) == ["vm-a", "vm-c"]
    assert names(table, where(Filter("VCPUs", "gte", "2"), Filter("VCPUs", "lte", "2.5"))) == ["vm-a"]


def test_date_ranges_compare_at_the_bounds_precision(table):
    assert names(table, where(Filter("Created", "lte", "2024-05"))) == ["srv10", "vm-b"]  # all of May
    assert names(table, where(Filter("Created", "gte", "2024-06-01"))) == ["srv2", "vm-a"]
    assert names(table, where(Filter("Created", "gte", "2024"), Filter("Created", "lte", "2024"))) == ["srv10", "srv2"]
    assert names(table, where(Filter("Created", "lte", "2024-05-31 23:58"))) == ["vm-b"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (Filter("VCPUs", "gte", "many"), "needs a number"),
        (Filter("Created", "lte", "May 2024"), "needs an ISO date"),
        (Filter("Name", "gte", "a"), "text column"),
        (Filter("Colour", "eq", "red"), "Unknown column"),
        (Filter("Name", "like", "a"), "Unknown filter"),
    ],
)
def test_bad_filters_raise_query_errors_naming_the_problem(table, condition, message):
    with pytest.raises(QueryError, match=message):
        table.select(where(condition))


def test_has_matches_one_whole_item_of_a_list(table):
    assert names(table, where(Filter("Tags", "has", "LAB"))) == ["srv10", "vm-b"]
    assert names(table, where(Filter("Tags", "has", "pro"))) == []


def test_ip_matches_addresses_networks_and_fragments(table):
    assert names(table, where(Filter("IP Address", "ip", "10.2.0.4"))) == ["srv10"]  # not 10.2.0.40
    assert names(table, where(Filter("IP Address", "ip", "10.2.0.0/24"))) == ["srv10", "vm-b"]
    assert names(table, where(Filter("IP Address", "ip", "fe80::1"))) == ["vm-c"]
    assert names(table, where(Filter("IP Address", "ip", "2.1"))) == ["srv2"]


def test_any_of_groups_are_or_and_filters_are_and(table):
    group = (Filter("Site", "eq", "AMS1"), Filter("Site", "eq", "FRA10"))
    assert names(table, Query(any_of=(group,))) == ["srv2", "vm-a"]
    assert names(table, Query(any_of=(group,), filters=(Filter("Status", "eq", "offline"),))) == ["vm-a"]


def test_global_search_needs_every_word_somewhere_in_the_row(table):
    assert names(table, Query(search="acme")) == ["srv10", "vm-b", "vm-c"]
    assert names(table, Query(search="acme lab")) == ["srv10", "vm-b"]
    assert names(table, Query(search="ZÜRICH straße")) == ["Straße-01"]
    assert names(table, Query(search="=sum(")) == ["vm-c"]
    assert names(table, Query(search="multi line")) == ["Straße-01"]


def test_global_search_does_not_match_across_cells_or_rows_nor_the_type(table):
    # "Active" then "FRA1" are neighbouring cells: a match must stay inside one cell.
    assert names(table, Query(search="activefra1")) == []
    assert names(table, Query(search="10.2.0.4/24srv2")) == []
    assert names(table, Query(search="vms")) == []  # netbox_type is not searched
    assert names(table, Query(search="vm-")) == ["vm-b", "vm-a", "vm-c"]


def test_search_with_many_or_few_hits_finds_the_same_rows():
    labels = ["Name", "Description", "netbox_type"]
    names = [f"host-{n}" + ("-ü" if n == 7 else "") for n in range(1000)]
    descriptions = ["" if n % 3 else f"rack {n % 7}" for n in range(1000)]
    table = CmdbTable(labels, [names, descriptions, ["devices"] * 1000])
    for term in ("host", "host-1", "-Ü", "rack 3", "1", "x"):
        words = term.casefold().split()
        expected = [
            n for n, d in zip(names, descriptions, strict=True) if all(w in n.casefold() or w in d for w in words)
        ]
        assert [table.cell(r, "Name") for r in table.select(Query(search=term))] == expected, term


def test_sorting_puts_empty_cells_last_in_both_directions(table):
    assert names(table, Query(ordering=("Tenant", "Name"))) == ["srv10", "vm-b", "vm-c", "vm-a", "Straße-01", "srv2"]
    assert names(table, Query(ordering=("-Tenant", "Name"))) == ["Straße-01", "vm-a", "srv10", "vm-b", "vm-c", "srv2"]
    assert names(table, Query(ordering=("VCPUs",))) == ["vm-a", "vm-c", "vm-b", "srv10", "srv2", "Straße-01"]
    assert names(table, Query(ordering=("-VCPUs",))) == ["vm-b", "vm-c", "vm-a", "srv10", "srv2", "Straße-01"]


def test_numbers_sort_as_numbers_and_text_naturally(table):
    # ID is a number column (1, 1, 2, 2, 3, 5); ties keep the export's order.
    assert names(table, Query(ordering=("ID",))) == ["srv10", "vm-b", "srv2", "vm-a", "Straße-01", "vm-c"]
    # Text with digits: srv2 before srv10; a serial stays text ("0099" before "100" by its digits' value).
    assert names(table, Query(dataset="devices", ordering=("Name",))) == ["srv2", "srv10", "Straße-01"]
    assert names(table, Query(ordering=("Serial number",)))[:2] == ["srv10", "srv2"]
    assert names(table, Query(ordering=("Site",))) == ["srv2", "srv10", "vm-b", "vm-a", "Straße-01", "vm-c"]


def test_multi_column_sort_with_mixed_directions(table):
    # "Active" and "active" fold alike; the original text breaks the tie so the order is total.
    assert names(table, Query(ordering=("Status", "-Name"))) == ["vm-c", "vm-b", "srv10", "Straße-01", "vm-a", "srv2"]


def test_sorting_an_unknown_column_is_an_error(table):
    with pytest.raises(QueryError, match="Unknown column 'Colour'"):
        table.select(Query(ordering=("-Colour",)))


def test_datasets_are_views_of_the_merged_rows(table):
    assert table.count("devices") == 3 and table.count("vms") == 3 and table.count("merged") == 6
    assert names(table, Query(dataset="vms", filters=(Filter("Site", "contains", "fra"),))) == ["vm-b", "vm-a"]
    with pytest.raises(QueryError, match="Unknown dataset"):
        table.select(Query(dataset="racks"))


def test_a_dataset_only_filters_and_sorts_its_own_columns(export):
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    table = CmdbTable.from_csv(export_selectors.artifact_path(artifact))
    with pytest.raises(QueryError, match="Unknown column 'VCPUs'"):
        table.select(Query(dataset="devices", filters=(Filter("VCPUs", "gte", "1"),)))
    with pytest.raises(QueryError):
        table.select(Query(dataset="vms", ordering=("Rack",)))


def test_row_ids_and_finding_rows(table):
    assert [table.row_id(r) for r in range(6)] == ["devices-1", "devices-2", "devices-3", "vms-1", "vms-2", "vms-5"]
    assert table.find("merged", "vms-2") == 4
    assert table.find("devices", "vms-2") is None
    assert table.find("vms", "5") == 5
    assert table.find("merged", "3") == 2
    with pytest.raises(QueryError, match="devices-1 or vms-1"):
        table.find("merged", "1")
    assert table.find("merged", "devices-99") is None


def test_group_counts_most_frequent_first_and_split_lists(table):
    rows = table.select(Query())
    assert table.group_counts(rows, "Tenant") == [("Acme", 3), ("", 1), ("Ümlaut AG", 1), ("Beta", 1)]
    assert table.group_counts(rows, "Tags", split=True) == [("", 3), ("prod", 2), ("lab", 1), ("Lab", 1)]
    assert table.group_counts(np.array([], dtype=np.int64), "Tenant") == []


def test_column_keys_and_kinds_follow_the_contract(export):
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    table = CmdbTable.from_csv(export_selectors.artifact_path(artifact))
    assert [c.label for c in table.columns("devices")] == list(DEVICE_COLUMNS)
    assert [c.label for c in table.columns("vms")] == list(VM_COLUMNS)
    assert [c.label for c in table.columns("merged")] == list(MERGED_COLUMNS)
    merged = {c.label: c for c in table.columns("merged")}
    assert merged["Memory (MB)"].key == "memory_mb" and merged["Memory (MB)"].kind == NUMBER
    assert merged["Memory"].key == "memory" and merged["Memory"].kind == TEXT
    assert merged["Position (Device Bay)"].key == "position_device_bay"
    assert merged["Last updated"].kind == DATE and merged["Serial number"].kind == TEXT
    assert len({c.key for c in table.columns("merged")}) == len(MERGED_COLUMNS)
    assert column_key("open actions") == "open_actions"


def test_a_table_holds_exactly_the_rows_of_the_merged_csv(export):
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    path = export_selectors.artifact_path(artifact)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        expected = list(csv.DictReader(handle))
    table = CmdbTable.from_csv(path)
    rows = RowDicts(table)
    assert len(rows) == len(expected) == 100
    assert list(rows) == expected
    assert table.count("devices") == 40 and table.count("vms") == 60


def test_facet_counts_values_under_every_other_condition(table):
    # All rows: Status values with their counts, most frequent first, ties in row order.
    values, distinct = table.facet(Query(), "Status")
    assert values == [("Active", 3), ("Planned", 1), ("active", 1), ("Offline", 1)] and distinct == 4
    # The other filters and the search narrow the rows counted ...
    values, distinct = table.facet(where(Filter("Site", "contains", "fra")), "Status")
    assert values == [("Active", 2), ("Offline", 1)] and distinct == 2
    assert table.facet(Query(search="acme"), "Status") == ([("Active", 3)], 1)
    # ... but the column's own conditions do not, so picked values keep their siblings.
    picked = Query(filters=(Filter("Site", "contains", "fra"),), any_of=((Filter("Status", "eq", "Offline"),),))
    assert table.facet(picked, "Status") == ([("Active", 2), ("Offline", 1)], 2)
    assert table.facet(where(Filter("Status", "eq", "Planned")), "Status")[1] == 4
    # Blank cells count as "", the limit keeps the most frequent, the dataset's rows only.
    assert table.facet(Query(dataset="vms"), "Site") == ([("FRA1", 1), ("FRA10", 1), ("", 1)], 3)
    assert table.facet(Query(), "Status", limit=1) == ([("Active", 3)], 4)


def test_facet_of_a_column_outside_the_dataset_is_an_error(table):
    with pytest.raises(QueryError, match="Unknown column"):
        table.facet(Query(), "Nope")
