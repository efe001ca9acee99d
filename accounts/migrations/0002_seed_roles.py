"""Seed the four roles once. Later edits by an admin are never re-applied: this runs a single time."""

from django.db import migrations

CAPABILITIES = {
    "export_run": "Run exports",
    "export_download": "Download exports",
    "chat_use": "Use the chat assistant",
    "suggestions_manage": "Manage suggestions",
    "keys_manage": "Manage global keys",
}
ROLES = {
    "admin": tuple(CAPABILITIES),
    "member": ("export_run", "export_download", "chat_use"),
    "operator": ("export_run", "export_download"),
    "viewer": ("export_download",),
}


def seed(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # Permissions are normally created after all migrations (post_migrate); create ours now to seed the groups.
    content_type, _ = ContentType.objects.get_or_create(app_label="accounts", model="user")
    perms = {
        codename: Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )[0]
        for codename, name in CAPABILITIES.items()
    }
    for role, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*(perms[codename] for codename in codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
