"""Template tags of the home dashboard."""

from __future__ import annotations

from django import template
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag(takes_context=True)
def optional_include(context: Context, name: str) -> SafeString:
    """Render the template ``name`` with this context if it exists, else nothing.

    The dashboard's slots for panels other apps provide (the data-quality panel of issue #18:
    ``templates/quality/_dashboard_panel.html``) without making the home page depend on them.
    """
    try:
        panel = get_template(name)
    except TemplateDoesNotExist:
        return SafeString("")
    # A template renders to a SafeString: its own autoescaping already applied.
    return SafeString(panel.render(dict(context.flatten()), context.get("request")))  # type: ignore[arg-type]
