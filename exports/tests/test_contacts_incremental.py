"""Incremental runs read again only the contact assignments of the objects whose contacts changed, and render the
same Contacts cells as a full listing (``exports.fetch._contacts_patched``), against the fake NetBox on loopback."""

import collections

import pytest

from devtools.netbox import FakeNetbox
from exports import fetch
from exports.models import ContactSnapshot, ExportRun
from exports.tests.test_services import FILES, contacts_of, files_of, run_export

pytestmark = pytest.mark.django_db

ASSIGNMENTS = "/api/tenancy/contact-assignments/"
# The filters of a request that reads some assignments only: change detection (a count, what changed since, an id
# range) or the assignments of a few ids, objects, contacts or roles.
NARROW = {"last_updated__gte", "id__gte", "id", "object_id", "contact_id", "role_id"}


def full_listings(netbox: FakeNetbox) -> list[dict[str, list[str]]]:
    """The assignment requests since the log was reset that read a whole listing (a page of every assignment)."""
    return [
        r.query
        for r in netbox.requests
        if r.path == ASSIGNMENTS and r.query.get("limit") != ["1"] and not NARROW & set(r.query)
    ]


def cells_by_object() -> dict[str, str]:
    snapshot = ContactSnapshot.objects.get()
    return dict(snapshot.contacts)


def assert_same_as_a_full_export(incremental: ExportRun) -> None:
    """The incremental run's files and stored cells are those of a full export run right after it."""
    cells = cells_by_object()
    full = run_export(force=True)
    assert full.status == "succeeded", full.error
    incremental_files, full_files = files_of(incremental), files_of(full)
    for name in FILES - {"Systems CMDB.xlsx"}:
        assert incremental_files[name].read_bytes() == full_files[name].read_bytes(), name
    assert cells == cells_by_object()


def incremental_run(netbox: FakeNetbox) -> ExportRun:
    netbox.reset_log()
    run = run_export()
    assert run.status == "succeeded", run.error
    assert run.mode == "incremental"
    return run


def device_assignment(netbox: FakeNetbox, skip: int = 0) -> dict:
    return [a for a in netbox.contact_assignments if a["object_type"] == "dcim.device"][skip]


def test_an_added_assignment_reads_the_assignments_of_its_object_only(netbox):
    run_export()
    assigned = {a["object_id"] for a in netbox.contact_assignments if a["object_type"] == "dcim.device"}
    bare = next(d for d in netbox.devices if d["id"] not in assigned)
    existing = device_assignment(netbox)
    netbox.add_contact_assignment("dcim.device", bare["id"], existing["contact"]["id"], existing["role"]["id"])
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    by_object = [r.query for r in netbox.requests if r.path == ASSIGNMENTS and "object_id" in r.query]
    assert [q["object_id"] for q in by_object] == [[str(bare["id"])]]
    assert "Contacts: the assignments of 1 objects read again, 1 Contacts cells changed." in run.log
    assert existing["contact"]["name"] in contacts_of(run, bare["id"])
    assert_same_as_a_full_export(run)


def test_a_deleted_assignment_renders_its_objects_cell_again(netbox):
    run_export()
    # A device with two assignments loses one: its cell keeps the other.
    counts: dict[int, int] = {}
    for a in netbox.contact_assignments:
        if a["object_type"] == "dcim.device":
            counts[a["object_id"]] = counts.get(a["object_id"], 0) + 1
    doubled = next(object_id for object_id, count in counts.items() if count == 2)
    gone, kept = [
        a for a in netbox.contact_assignments if a["object_id"] == doubled and a["object_type"] == "dcim.device"
    ]
    netbox.delete_contact_assignment(gone["id"])
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    assert kept["contact"]["name"] in contacts_of(run, doubled)
    assert_same_as_a_full_export(run)

    netbox.delete_contact_assignment(kept["id"])
    run = incremental_run(netbox)
    assert full_listings(netbox) == [] and contacts_of(run, doubled) == ""
    assert f"dcim.device:{doubled}" not in cells_by_object()
    assert_same_as_a_full_export(run)


def test_an_updated_assignment_renders_the_cells_of_its_old_and_new_object(netbox):
    run_export()
    moved, other = device_assignment(netbox), device_assignment(netbox, skip=3)
    source, target = moved["object_id"], other["object_id"]
    assert source != target
    netbox.update_contact_assignment(moved["id"], object_id=target)
    netbox.update_contact_assignment(other["id"], priority="inactive")
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    assert moved["contact"]["name"] in contacts_of(run, target)
    assert_same_as_a_full_export(run)


def test_deleting_objects_with_contacts_reads_no_listing_of_every_assignment(netbox):
    run_export()
    device = device_assignment(netbox)["object_id"]
    vm = next(a for a in netbox.contact_assignments if a["object_type"] == "virtualization.virtualmachine")
    netbox.delete_device(device)  # NetBox deletes their assignments with them
    netbox.delete_vm(vm["object_id"])
    run = incremental_run(netbox)
    assert run.removed == 2
    assert full_listings(netbox) == []
    cells = cells_by_object()
    assert f"dcim.device:{device}" not in cells and f"virtualization.virtualmachine:{vm['object_id']}" not in cells
    assert_same_as_a_full_export(run)


def least_named(netbox: FakeNetbox, key: str) -> dict:
    """A device assignment whose contact (role) is named by the fewest assignments of its object type."""
    devices = [a for a in netbox.contact_assignments if a["object_type"] == "dcim.device"]
    named = collections.Counter(a[key]["id"] for a in netbox.contact_assignments)
    return min(devices, key=lambda a: (named[a[key]["id"]], a["id"]))


@pytest.mark.parametrize(
    ("kind", "key", "filter_name"), [("contacts", "contact", "contact_id"), ("contact_roles", "role", "role_id")]
)
def test_a_renamed_contact_or_role_reads_its_assignments_only(netbox, monkeypatch, kind, key, filter_name):
    # The fake's three roles each name a third of the assignments, more than the share read by role (a quarter).
    monkeypatch.setattr(fetch, "RENAMED_SHARE", 1.0)
    run_export()
    assignment = least_named(netbox, key)
    netbox.rename(kind, assignment[key]["id"], "Aaron Renamed")
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    named = [r.query for r in netbox.requests if r.path == ASSIGNMENTS and filter_name in r.query]
    assert named and all(q[filter_name] == [str(assignment[key]["id"])] for q in named)
    assert "Aaron Renamed" in contacts_of(run, assignment["object_id"])
    assert_same_as_a_full_export(run)


def test_a_renamed_role_of_many_assignments_lists_them_all(netbox):
    run_export()
    assignment = least_named(netbox, "role")
    netbox.rename("contact_roles", assignment["role"]["id"], "Aaron Renamed")
    run = incremental_run(netbox)
    assert len(full_listings(netbox)) == 2
    assert not [r for r in netbox.requests if r.path == ASSIGNMENTS and "object_id" in r.query]
    assert "Aaron Renamed" in contacts_of(run, assignment["object_id"])
    assert_same_as_a_full_export(run)


def test_contacts_changed_beside_assignments_added_and_deleted_add_up(netbox):
    run_export()
    first, second = device_assignment(netbox), device_assignment(netbox, skip=5)
    assigned = {
        a["object_id"] for a in netbox.contact_assignments if a["object_type"] == "virtualization.virtualmachine"
    }
    bare_vm = next(v for v in netbox.vms if v["id"] not in assigned)
    netbox.rename("contacts", first["contact"]["id"], "Zed Last")
    netbox.add_contact_assignment(
        "virtualization.virtualmachine", bare_vm["id"], second["contact"]["id"], second["role"]["id"]
    )
    netbox.delete_contact_assignment(second["id"])
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    assert_same_as_a_full_export(run)


def test_a_snapshot_without_the_assignments_objects_lists_every_assignment_once(netbox):
    # A snapshot saved before the assignments' objects were kept: listed in full, then kept.
    run_export()
    ContactSnapshot.objects.update(assignments={})
    netbox.delete_contact_assignment(device_assignment(netbox)["id"])
    run = incremental_run(netbox)
    assert len(full_listings(netbox)) == 2  # both object types, one page each
    assert_same_as_a_full_export(run)
    netbox.delete_contact_assignment(device_assignment(netbox)["id"])
    run = incremental_run(netbox)
    assert full_listings(netbox) == []
    assert_same_as_a_full_export(run)


def test_stored_objects_that_do_not_add_up_list_every_assignment(netbox):
    # An assignment stored under the wrong object: what NetBox answers for its objects does not match, so the
    # cells come from the whole listing instead of from a guess.
    run_export()
    snapshot = ContactSnapshot.objects.get()
    first, other = device_assignment(netbox), device_assignment(netbox, skip=3)
    snapshot.assignments["device_contacts"][str(first["id"])] = other["object_id"]
    snapshot.save()
    netbox.delete_contact_assignment(other["id"])
    run = incremental_run(netbox)
    assert len(full_listings(netbox)) == 2
    assert_same_as_a_full_export(run)


def test_a_full_run_stores_every_assignment_its_object_and_time_and_every_cell(netbox):
    """The save writes each field's JSON text as it is (``PendingContactSnapshot.save``): what is read back is
    NetBox's assignments, their objects and times, and the cells the devices CSV holds."""
    run = run_export(force=True)
    assert run.status == "succeeded", run.error
    snapshot = ContactSnapshot.objects.get()
    listings = {"device_contacts": "dcim.device", "vm_contacts": "virtualization.virtualmachine"}
    for listing, object_type in listings.items():
        mine = [a for a in netbox.contact_assignments if a["object_type"] == object_type]
        assert mine
        assert snapshot.state[listing] == {str(a["id"]): a["last_updated"] for a in mine}
        assert snapshot.assignments[listing] == {str(a["id"]): a["object_id"] for a in mine}
    assert set(snapshot.state) == {"contacts", "contact_roles", *listings}
    devices = {a["object_id"] for a in netbox.contact_assignments if a["object_type"] == "dcim.device"}
    assert {key for key in snapshot.contacts if key.startswith("dcim.device:")} == {f"dcim.device:{i}" for i in devices}
    for device_id in sorted(devices)[:5]:
        assert snapshot.contacts[f"dcim.device:{device_id}"] == contacts_of(run, device_id)
