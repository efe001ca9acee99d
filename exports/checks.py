"""System checks for export settings: a bad value is reported by `manage.py check`, not at 2 a.m."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from exports import columns


@register()
def export_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from django.core.exceptions import ImproperlyConfigured

    from exports.errors import ExportError
    from exports.limits import rate_parse
    from exports.schedule import export_schedule_parse

    errors: list[CheckMessage] = []
    if settings.EXPORT_SCHEDULE:
        try:
            export_schedule_parse(settings.EXPORT_SCHEDULE)
        except ExportError as exc:
            errors.append(Error(str(exc), id="exports.E001"))
    order = settings.EXPORT_WORKBOOK_COLUMNS
    if order and not (len(order) == 1 and order[0].lower().endswith(".xlsx")):
        try:
            columns.workbook_column_order(order)
        except ValueError as exc:
            errors.append(Error(f"EXPORT_WORKBOOK_COLUMNS: {exc}", id="exports.E002"))
    for name in ("EXPORT_START_LIMIT_USER", "EXPORT_START_LIMIT_GLOBAL"):
        try:
            rate_parse(getattr(settings, name), setting=name)
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="exports.E003"))
    return errors
