"""Authorization matrix rows for the integrations API (see enreach/tests/test_authorization_matrix.py)."""

ALL_READERS = {"anonymous": 401, "viewer": 503, "operator": 503, "member": 503, "admin": 503, "read_only_token": 503}


def make_objects(*, owner, other) -> dict[str, object]:
    return {}


CASES = [
    # No NetBox configured in the matrix: an allowed caller gets the clear 503, a refused one 401/403.
    ("GET", "/api/integrations/netbox/status/", None, ALL_READERS),
]
