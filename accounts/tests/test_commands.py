from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User

pytestmark = pytest.mark.django_db


def run_ensure_admin() -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_ensure_admin_generates_a_password_once(settings):
    settings.ENREACH_ADMIN_USERNAME = "boss"
    settings.ENREACH_ADMIN_PASSWORD = ""
    output = run_ensure_admin()
    password = output.split("generated password: ")[1].split()[0]
    admin = User.objects.get(username="boss")
    assert admin.role == "admin" and admin.is_superuser and admin.check_password(password)
    assert "exists already" in run_ensure_admin()
    assert User.objects.count() == 1


def test_ensure_admin_uses_configured_password_and_never_prints_it(settings):
    settings.ENREACH_ADMIN_USERNAME = "root2"
    settings.ENREACH_ADMIN_PASSWORD = "s3cret-Configured-pass"
    output = run_ensure_admin()
    assert "s3cret-Configured-pass" not in output
    assert User.objects.get(username="root2").check_password("s3cret-Configured-pass")
