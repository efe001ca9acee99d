"""The answer renderer: Markdown in, HTML without anything a hostile answer could use to run code or leak data."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from chat.markdown import markdown_html

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "[click](//evil.example/x)",
    "[click](/admin/)",
    "[mail](mailto:someone@example.com)",
    "![pixel](https://evil.example/track.png)",
    "<iframe src=https://evil.example></iframe>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<svg><script>alert(1)</script></svg>",
    "<style>body{display:none}</style>",
    "<!-- <script>alert(1)</script> -->",
    '[x](https://ok.example "title" onclick="alert(1)")',
    '<https://ok.example/" onmouseover="alert(1)>',
    "```html\n<script>alert(1)</script>\n```",
    "| a | b |\n|---|---|\n| <script>alert(1)</script> | [x](javascript:alert(1)) |",
    "<form action=https://evil.example><input name=password></form>",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
]
ALLOWED_TAGS = {"p", "br", "hr", "strong", "em", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h1",
                "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip


class _Elements(HTMLParser):
    """The elements a browser would build from the HTML: (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_comment(self, data: str) -> None:
        self.elements.append(("!--", {}))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_yields_no_script_handler_or_foreign_link(text):
    html = markdown_html(text)
    for tag, attributes in _elements(html):
        assert tag in ALLOWED_TAGS, html
        if tag == "a":
            assert set(attributes) <= {"href", "title", "rel"}, html
            assert (attributes.get("href") or "https://").startswith(("https://", "http://")), html
        elif tag == "ol":
            assert set(attributes) <= {"start"}, html
        else:
            assert not attributes, html


def test_raw_html_is_shown_as_text_not_dropped():
    assert markdown_html("<script>alert(1)</script>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


def test_http_links_are_kept_and_open_safely():
    html = markdown_html("See [NetBox](https://netbox.example.com/dcim/devices/7/).")
    assert '<a href="https://netbox.example.com/dcim/devices/7/" rel="noopener noreferrer nofollow">NetBox</a>' in html


def test_tables_lists_and_code_render():
    html = markdown_html(
        "**2 VMs**:\n\n- a\n- b\n\n1. one\n\n| Name | Site |\n|:--|--:|\n| vm1 | FRA1 |\n\n"
        "`x < y`\n\n```\nif a < b:\n```"
    )
    assert "<strong>2 VMs</strong>" in html
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in html and "<ol>" in html
    assert "<table>" in html and "<th>Name</th>" in html and "<td>FRA1</td>" in html
    assert "<code>x &lt; y</code>" in html and "<pre><code>if a &lt; b:\n</code></pre>" in html


def test_empty_content_is_empty_html():
    assert markdown_html("") == ""
