"""The full listing of contact assignments (``exports.fetch._fetch_contacts`` without a stored snapshot) is read a
page at a time and folded as it comes: it gives what reading every record at once gave, and a listing that changes
during the walk is read again. Against the fake NetBox on loopback."""

import json
import threading

from devtools.netbox import FakeNetbox
from exports import fetch, render
from integrations.netbox.client import NetboxClient
from integrations.netbox.records import DEVICE_OBJECT_TYPE, VM_OBJECT_TYPE, ContactAssignmentRecord

ASSIGNMENTS = "/api/tenancy/contact-assignments/"


def client_of(netbox: FakeNetbox, **options) -> NetboxClient:
    return NetboxClient(netbox.url, netbox.token, retries=1, backoff=0.01, **options)


def listed_at_once(client: NetboxClient) -> tuple[bytes, bytes, dict[tuple[str, int], str]]:
    """What the full listing gave when both assignment listings were read whole: the state and objects JSON and
    the cells."""
    state: dict[str, dict[int, object]] = {
        "contacts": client.fetch_last_updated("contacts"),
        "contact_roles": client.fetch_last_updated("contact_roles"),
    }
    objects: dict[str, dict[int, object]] = {}
    records: list[ContactAssignmentRecord] = []
    for listing, object_type in fetch.ASSIGNMENT_LISTINGS.items():
        mine = client.fetch_contact_assignments(object_type)
        state[listing] = {a.id: a.last_updated for a in mine}
        objects[listing] = {a.id: a.object_id for a in mine}
        records += mine
    return json.dumps(state).encode(), json.dumps(objects).encode(), render.contacts_by_object(records)


def test_a_full_listing_folded_page_by_page_gives_the_records_read_at_once(netbox):
    client = client_of(netbox, page_size=7)
    listed = fetch._fetch_contacts(client, None)
    assert listed is not None and listed.complete
    state_json, objects_json, cells = listed_at_once(client)
    assert listed.state_json == state_json
    assert listed.assignments_json == objects_json
    assert listed.cells == cells
    assert list(listed.cells) == list(cells)  # the snapshot stores them in this order


def test_contacts_folder_renders_the_cells_of_render_contacts():
    """Odd assignments (no contact, no role, unknown or missing priority, the same entry twice, several objects
    sharing one set of contacts) render as ``render_contacts`` renders them."""
    rows = [
        (1, DEVICE_OBJECT_TYPE, 5, "Ann", "Owner", "secondary"),
        (2, DEVICE_OBJECT_TYPE, 5, "Bob", "", "primary"),
        (3, DEVICE_OBJECT_TYPE, 6, "Ann", "Owner", "secondary"),
        (4, DEVICE_OBJECT_TYPE, 5, "Ann", "Owner", "Secondary"),
        (5, DEVICE_OBJECT_TYPE, 7, "", "Owner", "primary"),
        (6, DEVICE_OBJECT_TYPE, 6, "Cid", "Ops", "weird"),
        (7, DEVICE_OBJECT_TYPE, 6, "Dan", "Ops", ""),
        (8, VM_OBJECT_TYPE, 5, "Ann", "Owner", "secondary"),
    ]
    records = [ContactAssignmentRecord(*row) for row in rows]
    folders = [render.ContactsFolder(), render.ContactsFolder()]
    for record in records:
        folders[record.object_type == VM_OBJECT_TYPE].add(record)
    cells = render.ContactsFolder.cells(folders)
    assert cells == render.contacts_by_object(records)
    assert list(cells) == list(render.contacts_by_object(records))
    assert cells[(DEVICE_OBJECT_TYPE, 5)] == "Bob, Ann (Owner)"


def test_an_assignment_listing_that_changes_during_the_walk_is_read_again(netbox):
    netbox.latency = 0.05  # pages slow enough for the deletion to land between them
    client = client_of(netbox, page_size=5, workers=1)
    first = min(a["id"] for a in netbox.contact_assignments if a["object_type"] == DEVICE_OBJECT_TYPE)
    netbox.reset_log()
    stop = threading.Event()

    def delete_after_the_first_page() -> None:
        while not stop.wait(0.002):
            if any(
                r.path == ASSIGNMENTS and r.query.get("object_type") == [DEVICE_OBJECT_TYPE] and "offset" in r.query
                for r in netbox.requests
            ):
                netbox.delete_contact_assignment(first)
                return

    watcher = threading.Thread(target=delete_after_the_first_page)
    watcher.start()
    warnings: list[str] = []
    try:
        listed = fetch._fetch_contacts(client, None, warnings.append)
    finally:
        stop.set()
        watcher.join()
    assert any("changed while they were read" in warning for warning in warnings), warnings
    device_pages = [
        r for r in netbox.requests if r.path == ASSIGNMENTS and r.query.get("object_type") == [DEVICE_OBJECT_TYPE]
    ]
    assert len([r for r in device_pages if "offset" not in r.query]) == 2
    netbox.latency = 0.0
    assert listed is not None
    state_json, objects_json, cells = listed_at_once(client)
    assert str(first) not in json.loads(listed.assignments_json)["device_contacts"]
    assert (listed.state_json, listed.assignments_json, listed.cells) == (state_json, objects_json, cells)
