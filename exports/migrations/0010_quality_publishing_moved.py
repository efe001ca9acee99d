"""The data-quality models moved to the quality app and the publications to the publishing app.

State only: their tables stay as they are (the models keep the table names through ``Meta.db_table``), so not a row
is lost. quality 0001 and publishing 0001 take the models over, with their content types and permissions.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0009_run_after_run"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="QualityAllowedValues"),
                migrations.DeleteModel(name="QualityRuleSetting"),
                migrations.DeleteModel(name="QualityRuleCount"),
                migrations.DeleteModel(name="ExportPublication"),
            ],
            database_operations=[],
        ),
    ]
