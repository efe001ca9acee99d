"""Data quality in the Django admin: rule settings and allowed values (overriding the settings), counts per run."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from exports.admin import run_admin_extend
from exports.column_sets import column_set_current
from quality.models import QualityAllowedValues, QualityRequiredColumn, QualityRuleCount, QualityRuleSetting
from quality.rules import BUILTIN_RULES

_RULES = {rule.id: rule for rule in BUILTIN_RULES}


class QualityRuleCountInline(admin.TabularInline):
    """A run's data-quality counts, on the run's page."""

    model = QualityRuleCount
    fields = ("rule", "label", "severity", "count", "threshold", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "data quality"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


run_admin_extend(inlines=[QualityRuleCountInline])


@admin.register(QualityRuleSetting)
class QualityRuleSettingAdmin(admin.ModelAdmin):
    """Switch a built-in rule on or off and set its threshold; rules without a row follow the settings."""

    list_display = ["rule", "label", "enabled", "threshold", "unit", "severity", "columns", "updated"]
    list_editable = ["enabled", "threshold"]
    list_filter = ["enabled"]
    readonly_fields = ["updated", "default"]

    @admin.display(description="Label")
    def label(self, row: QualityRuleSetting) -> str:
        return row.get_rule_display()

    @admin.display(description="Unit")
    def unit(self, row: QualityRuleSetting) -> str:
        return _RULES[row.rule].threshold_unit if row.rule in _RULES else ""

    @admin.display(description="Severity")
    def severity(self, row: QualityRuleSetting) -> str:
        return _RULES[row.rule].severity if row.rule in _RULES else ""

    @admin.display(description="Reads")
    def columns(self, row: QualityRuleSetting) -> str:
        return ", ".join(_RULES[row.rule].columns) if row.rule in _RULES else ""

    @admin.display(description="Without this row")
    def default(self, row: QualityRuleSetting) -> str:
        rule = _RULES.get(row.rule)
        if rule is None:
            return "—"
        enabled = rule.default_enabled and rule.id not in settings.QUALITY_DISABLED_RULES
        threshold = rule.default_threshold
        if rule.id == "warranty_expiring":
            threshold = settings.QUALITY_WARRANTY_DAYS
        if rule.id == "hardware_old" and settings.QUALITY_HARDWARE_MAX_AGE_YEARS > 0:
            enabled, threshold = True, settings.QUALITY_HARDWARE_MAX_AGE_YEARS
        text = "on" if enabled else "off"
        return f"{text}, threshold {threshold} {rule.threshold_unit}" if rule.threshold_unit else text


class ColumnChoiceForm(forms.ModelForm):
    """A rule's column: one of the CMDB's columns now (a header of the column sets, the operator's own included)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        headers = column_set_current().merged_columns[:-1]
        self.fields["column"] = forms.ChoiceField(
            choices=[(header, header) for header in sorted(headers, key=str.casefold)],
            help_text="A column of the CMDB, as the column sets name it.",
        )


@admin.register(QualityAllowedValues)
class QualityAllowedValuesAdmin(admin.ModelAdmin):
    """Allowed values of any column (replacing QUALITY_ALLOWED_VALUES for that column)."""

    form = ColumnChoiceForm
    list_display = ["column", "allowed_values", "enabled", "updated"]
    list_editable = ["enabled"]
    readonly_fields = ["updated"]

    @admin.display(description="Allowed values")
    def allowed_values(self, row: QualityAllowedValues) -> str:
        return ", ".join(row.allowed)


@admin.register(QualityRequiredColumn)
class QualityRequiredColumnAdmin(admin.ModelAdmin):
    """Columns that must not be empty (any column, the operator's own included): a missing-value rule each."""

    form = ColumnChoiceForm
    list_display = ["column", "kinds", "severity", "enabled", "updated"]
    list_editable = ["enabled"]
    list_filter = ["kinds", "severity", "enabled"]
    readonly_fields = ["updated"]
