"""What messages say and link to."""

from __future__ import annotations

from django.urls import reverse

from exports.models import ExportRun
from notifications.messages import absolute, run_brief


def test_run_links_are_the_run_page_and_its_api_on_the_base_url(db, settings):
    settings.ENREACH_BASE_URL = "https://cmdb.example.test/"
    run = ExportRun.objects.create(trigger="api", status="failed", active=None)
    brief = run_brief(run)
    assert brief is not None
    assert brief["url"] == absolute(reverse("exports:run-detail", args=[run.pk]))
    assert brief["url"] == f"https://cmdb.example.test/exports/runs/{run.pk}/"
    assert brief["api_url"] == absolute(reverse("export-run-detail", args=[run.pk]))
