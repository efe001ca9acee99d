"""The ``columns.manage`` capability (the CMDB column sets), granted to the admin role once (``grant``, also run by
the test suite's role seeding: idempotent)."""

from django.db import migrations


def grant(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="accounts", model="user")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="columns_manage", defaults={"name": "Manage the CMDB column sets"}
    )
    for group in Group.objects.filter(name="admin"):
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_labels"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="user",
            options={
                "permissions": [
                    ("export_run", "Run exports"),
                    ("export_download", "Download exports"),
                    ("chat_use", "Use the chat assistant"),
                    ("suggestions_manage", "Manage suggestions"),
                    ("keys_manage", "Manage global keys"),
                    ("columns_manage", "Manage the CMDB column sets"),
                ],
                "verbose_name": "user",
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
