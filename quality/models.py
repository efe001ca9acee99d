"""Data quality: the admin's rule settings and allowed values, and each run's count per rule."""

from __future__ import annotations

from django.db import models

from exports.models import ExportRun
from quality.rules import BUILTIN_RULES, SEVERITIES


class QualityRuleSetting(models.Model):
    """An admin's override of a built-in data-quality rule: on or off, and its threshold (days or years).

    The settings (``QUALITY_*``) give the defaults; a row here wins over them for its rule.
    """

    rule = models.CharField(
        max_length=64, unique=True, choices=[(rule.id, rule.label) for rule in BUILTIN_RULES], help_text="The rule."
    )
    enabled = models.BooleanField(default=True)
    threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days for 'Warranty expiring soon', years for 'Hardware older than the limit'; empty: the setting.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "exports_qualityrulesetting"  # the tables kept the names they had in exports (migration 0001)
        ordering = ["rule"]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} ({'on' if self.enabled else 'off'})"


class QualityAllowedValues(models.Model):
    """The allowed values of a column: values outside the set are data-quality findings.

    A row here replaces ``QUALITY_ALLOWED_VALUES``'s list for its column; switch it off to drop the rule. Any
    column of the column sets (its header: a contract column, a custom field or a path the operator added).
    """

    column = models.CharField(max_length=255, unique=True, help_text="A column of the CMDB (its header).")
    values = models.TextField(help_text="One allowed value per line (compared case-insensitively).")
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "exports_qualityallowedvalues"
        ordering = ["column"]
        verbose_name_plural = "quality allowed values"

    def __str__(self) -> str:
        return f"{self.column}: {', '.join(self.allowed)}"

    @property
    def allowed(self) -> list[str]:
        return [line.strip() for line in self.values.splitlines() if line.strip()]


class QualityRequiredColumn(models.Model):
    """A column that must not be empty: each device or VM (or both) without a value is a data-quality finding. Any
    column of the column sets, the operator's own included (beside the built-in missing-value rules)."""

    class Kinds(models.TextChoices):
        DEVICES = "device", "Devices"
        VMS = "vm", "Virtual machines"
        BOTH = "both", "Devices and VMs"

    column = models.CharField(max_length=255, unique=True, help_text="A column of the CMDB (its header).")
    kinds = models.CharField(max_length=8, choices=Kinds.choices, default=Kinds.BOTH)
    severity = models.CharField(max_length=16, choices=[(s, s.capitalize()) for s in SEVERITIES], default=SEVERITIES[1])
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["column"]

    def __str__(self) -> str:
        return f"{self.column} required ({self.get_kinds_display()})"


class QualityRuleCount(models.Model):
    """How many objects one data-quality rule flagged in a run (the trend across runs), or why it failed."""

    run = models.ForeignKey(ExportRun, on_delete=models.CASCADE, related_name="quality_counts")
    rule = models.CharField(max_length=64)
    label = models.CharField(max_length=200)
    severity = models.CharField(max_length=16, choices=[(s, s.capitalize()) for s in SEVERITIES])
    columns = models.JSONField(default=list, blank=True, help_text="The columns the rule reads.")
    threshold = models.PositiveIntegerField(null=True, blank=True)
    count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the rule could not run (it then flagged nothing).")

    class Meta:
        db_table = "exports_qualityrulecount"
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "rule"], name="exports_quality_count_unique_rule")]

    def __str__(self) -> str:
        return f"{self.rule}: {self.count} (run {self.run_id})"
