import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

# Requests are counted in the shared metrics, which live in the database cache.
pytestmark = pytest.mark.django_db


def test_netbox_status_reports_version_token_and_counts(netbox):
    out = StringIO()
    call_command("netbox_status", stdout=out)
    output = out.getvalue()
    assert "Version:          4.6.8" in output
    assert "Token:            valid" in output
    assert "Devices:          40" in output and "Virtual machines: 60" in output
    assert netbox.token not in output


def test_netbox_status_json(netbox):
    out = StringIO()
    call_command("netbox_status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["devices"] == 40 and status["virtual_machines"] == 60 and status["netbox_version"] == "4.6.8"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("revoked", "Invalid v1 token"),
        ("down", "127.0.0.1:9"),
        ("unconfigured", "NETBOX_URL"),
    ],
)
def test_netbox_status_fails_with_a_clear_reason(netbox, settings, setup, message):
    if setup == "revoked":
        netbox.revoke_token()
    elif setup == "down":
        settings.NETBOX_URL = "http://127.0.0.1:9"
    else:
        settings.NETBOX_URL = ""
    with pytest.raises(CommandError) as failure:
        call_command("netbox_status", stdout=StringIO())
    assert message in str(failure.value)
    assert str(failure.value).startswith("NetBox check failed:")
