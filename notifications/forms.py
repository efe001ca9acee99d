"""The profile page's form to subscribe oneself (to one's own e-mail)."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import User
from exports.models import ExportChange
from notifications.models import EventKind
from notifications.selectors import EVENT_CAPABILITY


class SubscriptionForm(forms.Form):
    """An event and, for changes and quality, the most useful filters; the API takes every filter key."""

    event = forms.ChoiceField(choices=EventKind.choices)
    dataset = forms.ChoiceField(
        required=False, choices=[("", "Devices and VMs"), ("devices", "Devices"), ("vms", "VMs")], label="Dataset"
    )
    site = forms.CharField(required=False, max_length=200, help_text="Changes: only objects at this site.")
    change = forms.MultipleChoiceField(
        required=False,
        choices=ExportChange.Change.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Changes: none checked means all.",
    )
    columns = forms.CharField(
        required=False, max_length=500, help_text="Changes: only these columns, comma separated (e.g. Status, Tenant)."
    )
    min_count = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="At least")
    rules = forms.CharField(
        required=False, max_length=500, help_text="Data quality: only these rule ids, comma separated."
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event"].choices = [  # type: ignore[attr-defined]
            (value, label) for value, label in EventKind.choices if user.has_capability(EVENT_CAPABILITY[value])
        ]

    def filter(self) -> dict[str, Any]:
        """The subscription's filter from the fields that apply to the chosen event."""
        data = self.cleaned_data
        event = data["event"]
        split = [part.strip() for part in (data.get("columns") or "").split(",") if part.strip()]
        rules = [part.strip() for part in (data.get("rules") or "").split(",") if part.strip()]
        if event == EventKind.EXPORT_CHANGES:
            flt = {
                "dataset": data.get("dataset"),
                "site": data.get("site"),
                "change": data.get("change") or None,
                "columns": split or None,
                "min_count": data.get("min_count"),
            }
        elif event == EventKind.QUALITY_CHANGED:
            flt = {"rules": rules or None, "min_count": data.get("min_count")}
        else:
            flt = {}
        return {key: value for key, value in flt.items() if value not in (None, "", [])}
