"""Board page forms. They only collect text: ``suggestions.services`` validates it, as for the API."""

from __future__ import annotations

from django import forms

from suggestions.models import COMMENT_MAX_LENGTH, SUMMARY_MAX_LENGTH, TITLE_MAX_LENGTH, Suggestion


def _text(label: str, max_length: int, *, required: bool = False, rows: int | None = None) -> forms.CharField:
    # The HTML attributes help the browser; the service has the last word (and its messages).
    attrs: dict[str, object] = {"maxlength": max_length}
    if required:
        attrs["required"] = True
    widget = forms.Textarea(attrs={**attrs, "rows": rows}) if rows else forms.TextInput(attrs=attrs)
    return forms.CharField(label=label, required=False, strip=False, widget=widget)


class SuggestionForm(forms.Form):
    """Propose or edit a suggestion."""

    title = _text("Title", TITLE_MAX_LENGTH, required=True)
    summary = _text("Summary", SUMMARY_MAX_LENGTH, rows=4)
    classification = forms.ChoiceField(
        label="Classification", choices=Suggestion.Classification.choices, initial=Suggestion.Classification.COULD
    )


class SuggestionEditForm(SuggestionForm):
    """Edit a suggestion; the status select is only shown to managers."""

    status = forms.ChoiceField(label="Status", choices=Suggestion.Status.choices, required=False)


class CommentForm(forms.Form):
    """Add a comment."""

    text = _text("Comment", COMMENT_MAX_LENGTH, required=True, rows=3)


def add_service_error(form: forms.Form, field: str, message: str) -> None:
    """Attach a service's validation message to its field (or to the whole form)."""
    form.add_error(field if field in form.fields else None, message)
