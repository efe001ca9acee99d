"""The publication models, taken over from the exports app without touching their tables (state only: the tables keep
their names through ``Meta.db_table``, and every row stays). Their content types move with them, so the
permissions granted on them (the roles' groups, users) stay granted.
"""

import django.db.models.deletion
from django.db import migrations, models

MODELS = ("exportpublication",)


def move_content_types(apps, schema_editor):
    """``exports.<model>`` content types become ``publishing.<model>``; where both exist (permissions created by a
    ``migrate`` of the new app before this ran), the grants of the old permissions join the new ones."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model in MODELS:
        old = ContentType.objects.filter(app_label="exports", model=model).first()
        if old is None:
            continue
        new = ContentType.objects.filter(app_label="publishing", model=model).first()
        if new is None:
            old.app_label = "publishing"
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
                    name='ExportPublication',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('target', models.CharField(choices=[('confluence', 'Confluence'), ('backup', 'Backup')], max_length=16)),
                        ('status', models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('skipped', 'Skipped')], default='running', max_length=16)),
                        ('detail', models.TextField(blank=True, help_text='What was done, or why it failed.')),
                        ('outcome', models.JSONField(blank=True, default=dict, help_text='Per page / per file results.')),
                        ('started', models.DateTimeField(auto_now_add=True)),
                        ('finished', models.DateTimeField(blank=True, null=True)),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='publications', to='exports.exportrun')),
                    ],
                    options={
                        'db_table': 'exports_exportpublication',
                        'ordering': ['-started', '-id'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
