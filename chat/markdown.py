"""Assistant answers as safe HTML: Markdown rendered by markdown-it-py, then sanitised by nh3 (Ammonia).

Two independent layers, so a mistake in one is caught by the other: markdown-it-py runs with raw HTML off (an
``<script>`` in the text comes out as text), and nh3 keeps only the tags and attributes below and links whose
address is absolute http(s). Images are not rendered (no requests to addresses the model chose).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "commonmark" + tables and strikethrough (GitHub's flavour as models write it); html=False escapes raw HTML.
    return (
        MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"]).disable("image")
    )


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name == "href":
        # Absolute http(s) only: no javascript:, data:, mailto: or relative links into this application.
        return value if value.lower().startswith(("http://", "https://")) else None
    return value


def markdown_html(text: str) -> str:
    """``text`` (Markdown from the model) as sanitised HTML."""
    html = _parser().render(text or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        attribute_filter=_attribute,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
