"""The data-quality models, taken over from the exports app without touching their tables (state only: the tables keep
their names through ``Meta.db_table``, and every row stays). Their content types move with them, so the
permissions granted on them (the roles' groups, users) stay granted.

``grant`` (also run by the test suite's role seeding) gives every role the view permission of the counts and
the admin role the management of the rule settings and allowed values, as exports 0006 did: idempotent.
"""

import django.db.models.deletion
from django.db import migrations, models

MODELS = ("qualityallowedvalues", "qualityrulesetting", "qualityrulecount")


def move_content_types(apps, schema_editor):
    """``exports.<model>`` content types become ``quality.<model>``; where both exist (permissions created by a
    ``migrate`` of the new app before this ran), the grants of the old permissions join the new ones."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model in MODELS:
        old = ContentType.objects.filter(app_label="exports", model=model).first()
        if old is None:
            continue
        new = ContentType.objects.filter(app_label="quality", model=model).first()
        if new is None:
            old.app_label = "quality"
            old.save(update_fields=["app_label"])
            continue
        for permission in Permission.objects.filter(content_type=old):
            target = Permission.objects.filter(content_type=new, codename=permission.codename).first()
            if target is None:
                permission.content_type = new
                permission.save(update_fields=["content_type"])
                continue
            target.group_set.add(*permission.group_set.all())
            target.user_set.add(*permission.user_set.all())
            permission.delete()
        old.delete()


MANAGE = ("qualityrulesetting", "qualityallowedvalues")


def grant(apps, schema_editor):
    """Admins manage the quality settings; every role may read the counts (as exports 0006 did, on this app)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")

    def permission(model, action):
        content_type, _ = ContentType.objects.get_or_create(app_label="quality", model=model)
        return Permission.objects.get_or_create(
            content_type=content_type, codename=f"{action}_{model}", defaults={"name": f"Can {action} {model}"}
        )[0]

    manage = [permission(model, action) for model in MANAGE for action in ("add", "change", "delete", "view")]
    view = permission("qualityrulecount", "view")
    for group in Group.objects.filter(name="admin"):
        group.permissions.add(*manage)
    for group in Group.objects.filter(name__in=["admin", "member", "operator", "viewer"]):
        group.permissions.add(view)


def forwards(apps, schema_editor):
    move_content_types(apps, schema_editor)
    grant(apps, schema_editor)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("exports", "0010_quality_publishing_moved"),
        ("accounts", "0004_role_proxy"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='QualityAllowedValues',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('column', models.CharField(choices=[('Backup', 'Backup'), ('CPU', 'CPU'), ('DTAP state', 'DTAP state'), ('HW buy date', 'HW buy date'), ('HW warranty expiration', 'HW warranty expiration'), ('Harddisk', 'Harddisk'), ('Memory', 'Memory'), ('Monitor hardware', 'Monitor hardware'), ('Server Group', 'Server Group'), ('Warranty type', 'Warranty type'), ('open actions', 'open actions')], help_text='A custom-field column of the CMDB.', max_length=64, unique=True)),
                        ('values', models.TextField(help_text='One allowed value per line (compared case-insensitively).')),
                        ('enabled', models.BooleanField(default=True)),
                        ('updated', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'verbose_name_plural': 'quality allowed values',
                        'db_table': 'exports_qualityallowedvalues',
                        'ordering': ['column'],
                    },
                ),
                migrations.CreateModel(
                    name='QualityRuleSetting',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('rule', models.CharField(choices=[('device_no_serial', 'Devices without serial number'), ('device_no_primary_ip', 'Devices without primary IP'), ('device_no_contacts', 'Devices without contacts'), ('device_no_tenant', 'Devices without tenant'), ('device_no_rack', 'Physical devices without rack'), ('vm_no_cluster', 'VMs without cluster'), ('vm_no_primary_ip', 'VMs without primary IP'), ('duplicate_name', 'Duplicate names within a kind'), ('duplicate_serial', 'Duplicate serial numbers'), ('warranty_expired', 'Warranty expired'), ('warranty_expiring', 'Warranty expiring soon'), ('hardware_old', 'Hardware older than the limit'), ('date_unreadable', 'Unreadable warranty or buy dates')], help_text='The rule.', max_length=64, unique=True)),
                        ('enabled', models.BooleanField(default=True)),
                        ('threshold', models.PositiveIntegerField(blank=True, help_text="Days for 'Warranty expiring soon', years for 'Hardware older than the limit'; empty: the setting.", null=True)),
                        ('updated', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'exports_qualityrulesetting',
                        'ordering': ['rule'],
                    },
                ),
                migrations.CreateModel(
                    name='QualityRuleCount',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('rule', models.CharField(max_length=64)),
                        ('label', models.CharField(max_length=200)),
                        ('severity', models.CharField(choices=[('error', 'Error'), ('warning', 'Warning'), ('info', 'Info')], max_length=16)),
                        ('columns', models.JSONField(blank=True, default=list, help_text='The columns the rule reads.')),
                        ('threshold', models.PositiveIntegerField(blank=True, null=True)),
                        ('count', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True, help_text='Why the rule could not run (it then flagged nothing).')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='quality_counts', to='exports.exportrun')),
                    ],
                    options={
                        'db_table': 'exports_qualityrulecount',
                        'ordering': ['run', 'id'],
                        'constraints': [models.UniqueConstraint(fields=('run', 'rule'), name='exports_quality_count_unique_rule')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
