"""``directory_sync``: ask the LDAP directory about every user it manages and deactivate those it no longer grants
a role (removed, disabled, or out of every mapped group), revoking their API tokens; roles follow the groups.

The same function runs from ``manage.py directory_sync`` and from a daily django-q2 schedule that exists while
``AUTH_LDAP_SERVER_URI`` is set (``directory_sync_schedule_sync``, on every ``migrate``). A directory that cannot
be reached fails the run and changes nobody.
"""

from __future__ import annotations

import logging

from django.conf import settings

from accounts.directory import ReconcileResult, directory_users_reconcile
from accounts.models import User
from integrations.exceptions import DirectoryError

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "Directory sync (LDAP)"


def directory_sync() -> ReconcileResult:
    """Reconcile the LDAP-managed users with the directory. Raises ``DirectoryError`` when LDAP is off or down."""
    from integrations.directory.config import ldap_configured, ldap_role_mapping
    from integrations.directory.ldap import ldap_users_lookup

    if not ldap_configured():
        raise DirectoryError("LDAP sign-in is not configured (AUTH_LDAP_SERVER_URI is empty): nothing to sync.")
    usernames = list(
        User.objects.filter(source=User.Source.LDAP, is_active=True)
        .order_by("username")
        .values_list("username", flat=True)
    )
    lookup = ldap_users_lookup(usernames=usernames)
    result = directory_users_reconcile(source=User.Source.LDAP, lookup=lookup, mapping=ldap_role_mapping())
    logger.info(
        "directory sync: %d checked, %d deactivated, %d role changes",
        result.checked,
        len(result.deactivated),
        len(result.role_changed),
    )
    return result


def directory_sync_schedule_sync() -> str:
    """Create the daily sync schedule while LDAP is configured, remove it otherwise. Safe to call repeatedly."""
    from django_q.models import Schedule

    if not settings.AUTH_LDAP_SERVER_URI:
        deleted, _ = Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        return "removed" if deleted else "none"
    _, created = Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "integrations.directory.tasks.directory_sync_task",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
    return "created" if created else "updated"
