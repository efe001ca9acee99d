from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportRun

pytestmark = pytest.mark.django_db


def test_netbox_update_runs_inline_and_prints_a_summary(netbox):
    out = StringIO()
    call_command("netbox_update", stdout=out)
    output = out.getvalue()
    run = ExportRun.objects.get()
    assert run.status == "succeeded" and run.trigger == "command"
    assert f"Export #{run.pk} succeeded (full" in output
    assert "40 devices, 60 VMs" in output
    assert "Systems CMDB.xlsx: 100 rows" in output
    assert "[fetch]" in output


def test_netbox_update_fails_with_a_one_line_reason(netbox):
    netbox.revoke_token()
    with pytest.raises(CommandError) as failure:
        call_command("netbox_update", stdout=StringIO())
    message = str(failure.value)
    assert message.startswith("Export #") and "failed" in message and "\n" not in message


@pytest.mark.django_db(transaction=True)
def test_netbox_update_queue_goes_through_django_q(netbox):
    out = StringIO()
    call_command("netbox_update", "--queue", "--no-publish", "--force", "--timeout", "60", stdout=out)
    run = ExportRun.objects.get()
    assert run.status == "succeeded" and run.force and not run.publish
    assert "queued" in out.getvalue()
    from django_q.models import Task

    assert Task.objects.filter(name=f"export-run-{run.pk}", success=True).exists()
