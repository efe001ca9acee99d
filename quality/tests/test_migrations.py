"""The move of the data-quality and publication models out of exports loses no row and no permission.

A database is taken back to the state before the move (``exports 0009``: the models in exports, their content types
``exports.<model>``, the roles' grants of exports 0006), filled with rows there through the historical models, and
migrated forward again with Django's ``MigrationExecutor``: every row is read back, field by field, through the
models of their new apps, and the grants follow the content types. Runs on SQLite and on PostgreSQL
(``make test-postgres``).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps as current_apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import User
from exports.models import ExportRun
from publishing.models import ExportPublication
from quality.models import QualityAllowedValues, QualityRuleCount, QualityRuleSetting

BEFORE = [("exports", "0009_run_after_run")]
MOVED = {
    "quality": ("qualityrulesetting", "qualityallowedvalues", "qualityrulecount"),
    "publishing": ("exportpublication",),
}
FINISHED = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate to ``targets``; the apps (historical models) of the state reached."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return executor.loader.project_state(targets).apps


def leaves() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def old_database(old: Any) -> dict[str, Any]:
    """What a database of the release before the move holds: rows of the four models, their exports content types
    and permissions (exports 0006 seeded them), and a user granted one of them directly."""
    for app, models in MOVED.items():  # this database never had the new apps: no content types of theirs
        ContentType.objects.filter(app_label=app, model__in=models).delete()
    importlib.import_module("exports.migrations.0006_data_quality").grant(old, None)
    old_content_type = old.get_model("contenttypes", "ContentType")
    old_permission = old.get_model("auth", "Permission")
    publication_type, _ = old_content_type.objects.get_or_create(app_label="exports", model="exportpublication")
    view_publication = old_permission.objects.get_or_create(
        content_type=publication_type, codename="view_exportpublication", defaults={"name": "Can view publication"}
    )[0]
    auditor = User.objects.create(username="auditor")
    old.get_model("accounts", "User").objects.get(pk=auditor.pk).user_permissions.add(view_publication)

    run_model = old.get_model("exports", "ExportRun")
    runs = [
        run_model.objects.create(trigger="command", status="succeeded", active=None, finished=FINISHED)
        for _ in range(2)
    ]
    counts = old.get_model("exports", "QualityRuleCount").objects
    rows: dict[str, list[dict[str, Any]]] = {"counts": [], "settings": [], "allowed": [], "publications": []}
    for run in runs:
        for number, rule in enumerate(("device_no_serial", "warranty_expiring", "allowed_dtap_state")):
            counts.create(
                run=run, rule=rule, label=f"Label of {rule}", severity="warning", columns=["Serial number", "Ünïcode"],
                threshold=90 if rule == "warranty_expiring" else None, count=run.pk * 10 + number,
                error="KeyError: column 'x'" if number == 2 else "",
            )  # fmt: skip
    settings_model = old.get_model("exports", "QualityRuleSetting").objects
    settings_model.create(rule="warranty_expiring", enabled=True, threshold=30)
    settings_model.create(rule="hardware_old", enabled=False, threshold=None)
    old.get_model("exports", "QualityAllowedValues").objects.create(
        column="DTAP state", values="Production\nTest\n", enabled=True
    )
    publications = old.get_model("exports", "ExportPublication").objects
    publications.create(run=runs[0], target="confluence", status="succeeded", detail="cmdb: updated",
                        outcome={"parts": [{"part": "cmdb", "action": "updated"}]}, finished=FINISHED)  # fmt: skip
    publications.create(run=runs[1], target="backup", status="failed", detail="disk full\nsecond line", outcome={})
    for key, model in (("counts", "QualityRuleCount"), ("settings", "QualityRuleSetting"),
                       ("allowed", "QualityAllowedValues"), ("publications", "ExportPublication")):  # fmt: skip
        rows[key] = list(old.get_model("exports", model).objects.order_by("pk").values())
    return {"runs": [run.pk for run in runs], "rows": rows, "auditor": auditor.pk}


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_every_quality_and_publication_row_and_grant(seeded_roles):
    latest = leaves()
    old = migrate(BEFORE)
    assert not {"quality", "publishing"} & {model._meta.app_label for model in old.get_models()}
    before = old_database(old)
    viewer = User.objects.create(username="viewer-after-the-move", role="viewer")
    viewer.groups.add(Group.objects.get(name="viewer"))

    migrate(latest)

    rows = before["rows"]
    assert list(QualityRuleCount.objects.order_by("pk").values()) == rows["counts"]
    assert list(QualityRuleSetting.objects.order_by("pk").values()) == rows["settings"]
    assert list(QualityAllowedValues.objects.order_by("pk").values()) == rows["allowed"]
    assert list(ExportPublication.objects.order_by("pk").values()) == rows["publications"]
    assert len(rows["counts"]) == 6 and len(rows["publications"]) == 2
    first = ExportRun.objects.get(pk=before["runs"][0])
    assert first.quality_counts.count() == 3 and first.publications.get().detail == "cmdb: updated"
    assert QualityAllowedValues.objects.get().allowed == ["Production", "Test"]

    # The content types moved with the models; nothing of them is left under exports.
    for app, models in MOVED.items():
        for model in models:
            assert ContentType.objects.get_for_model(current_apps.get_model(app, model)).app_label == app
        assert not ContentType.objects.filter(app_label="exports", model__in=models).exists()
    # The grants followed: the roles' (exports 0006) and a user's own.
    assert (
        Group.objects.get(name="viewer")
        .permissions.filter(content_type__app_label="quality", codename="view_qualityrulecount")
        .exists()
    )
    admin_perms = Permission.objects.filter(group__name="admin", content_type__app_label="quality")
    assert {"change_qualityrulesetting", "view_qualityallowedvalues"} <= set(
        admin_perms.values_list("codename", flat=True)
    )
    viewer = User.objects.get(pk=viewer.pk)
    assert viewer.has_perm("quality.view_qualityrulecount")
    assert not viewer.has_perm("quality.change_qualityrulesetting")
    assert User.objects.get(pk=before["auditor"]).has_perm("publishing.view_exportpublication")


@pytest.mark.django_db(transaction=True)
def test_migrating_twice_or_with_the_new_apps_content_types_present_changes_nothing(seeded_roles):
    """A database that already has the new apps' content types (a `migrate` that created them first) ends with one
    content type per model and the grants of both merged."""
    latest = leaves()
    old = migrate(BEFORE)
    importlib.import_module("exports.migrations.0006_data_quality").grant(old, None)  # exports.* beside quality.*
    assert ContentType.objects.filter(app_label="exports", model="qualityrulecount").exists()
    assert ContentType.objects.filter(app_label="quality", model="qualityrulecount").exists()

    migrate(latest)
    migrate(latest)

    for model in MOVED["quality"]:
        assert ContentType.objects.filter(model=model).count() == 1
    assert (
        Group.objects.get(name="viewer")
        .permissions.filter(content_type__app_label="quality", codename="view_qualityrulecount")
        .exists()
    )
