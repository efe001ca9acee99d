"""Let every role read export runs and files in the admin (model view permissions), once."""

from django.db import migrations

VIEW = {"exportrun": "Can view export run", "exportartifact": "Can view export artifact"}


def grant(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = []
    for model, name in VIEW.items():
        content_type, _ = ContentType.objects.get_or_create(app_label="exports", model=model)
        perms.append(
            Permission.objects.get_or_create(
                content_type=content_type, codename=f"view_{model}", defaults={"name": name}
            )[0]
        )
    for group in Group.objects.filter(name__in=["admin", "member", "operator", "viewer"]):
        group.permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [("exports", "0001_initial"), ("accounts", "0002_seed_roles")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
