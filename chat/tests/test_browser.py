"""The chat page in a real browser: Debian's Chromium driven by Playwright, against a live server, the
OpenAI-compatible test provider and a real export of the NetBox test server.

Screenshots go to var/screenshots/chat-*.png. Select these tests with ``-m browser``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from accounts.roles import Role
from accounts.services import user_create
from accounts.tests.test_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)
from chat import tools
from chat.models import ChatMessage, ChatSession
from devtools.llm import error, text, tool_call
from exports import selectors as export_selectors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Chat-browser-passphrase-88"
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
WIDTHS = {"desktop": (1366, 900), "phone": (375, 812)}


def _latest_rows() -> list[dict[str, str]]:
    """The merged CSV of the newest successful export, read with the csv module (what the CMDB holds)."""
    artifact = export_selectors.artifact_latest(name="netbox_merged_export.csv")
    assert artifact is not None
    with export_selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _sign_in(chromium: Any, base: str, username: str, *, width: int = 1366, height: int = 900) -> Any:
    page = chromium.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.set_default_timeout(15_000)
    page.goto(f"{base}/accounts/login/?next=/chat/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/chat/")
    return page


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def members(db: None) -> tuple[Any, Any]:
    alice = user_create(username="alice", password=PASSWORD, role=Role.MEMBER)
    bob = user_create(username="bob", password=PASSWORD, role=Role.MEMBER)
    return alice, bob


@pytest.fixture
def page(browser: Any, live_server: Any, members: Any) -> Iterator[Any]:  # noqa: F811
    browser.clear_cookies()
    page = _sign_in(browser, live_server.url, "alice")
    yield page
    page.close()


def _expected_rows(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, NetBox id) of the rows the tool returns, from the CMDB the test export wrote."""
    result = json.loads(tools.tool_run(name="search_inventory", arguments=json.dumps(arguments)))
    rows = _latest_rows()
    ids = {(row["Name"], row["netbox_type"]): row["ID"] for row in rows}
    return [(found["Name"], ids[(found["Name"], "vms")]) for found in result["results"]]


def test_question_streams_shows_its_lookups_and_survives_a_reload(
    llm,
    export,
    netbox,
    page,
    live_server,
    browser,  # noqa: F811
):
    base = live_server.url
    arguments = {"site": "FRA1", "type": "vm"}
    expected = _expected_rows(arguments)
    assert expected, "the test export has VMs in FRA1"
    answer = (
        f"There are **{len(expected)} VMs** in FRA1, for example:\n\n| Name | Site |\n|---|---|\n"
        + "".join(f"| {name} | FRA1 |\n" for name, _ in expected[:3])
        + "\nSee [NetBox](https://netbox.example.com/) for more. <script>alert(1)</script>"
    )
    llm.script(tool_call("search_inventory", arguments), text(answer, chunk_delay=0.05))

    page.fill("#chat-input", "Which VMs run in FRA1?")
    page.keyboard.press("Enter")

    # While the reply streams its Markdown is already formatted (rendered and sanitised by the server, no script),
    # and the footer lists the look-ups without claiming no export was available (checked in one step).
    state = page.wait_for_function(
        """() => {
            const answer = document.querySelector('.chat-assistant.streaming');
            const text = answer && answer.querySelector('.chat-streamed');
            if (!text || !text.querySelector('strong') || !answer.classList.contains('streaming')) return false;
            const footer = answer.querySelector('.chat-grounding-export');
            return { strong: text.querySelector('strong').textContent, text: text.textContent,
                     footer: footer ? footer.textContent : '', scripts: text.querySelectorAll('script').length };
        }"""
    ).json_value()
    assert state["strong"] == f"{len(expected)} VMs" and state["scripts"] == 0
    assert "No export was available" not in state["footer"] and "Look-ups so far" in state["footer"]
    assert len(state["text"]) < len(answer)
    _shot(page, "chat-streaming-markdown-1366")
    page.wait_for_selector(".chat-assistant:not(.streaming) .chat-grounding", timeout=30_000)

    session = ChatSession.objects.get(owner__username="alice")
    assert page.url == f"{base}/chat/{session.pk}/"
    assert page.inner_text("#chat-sessions").startswith("Which VMs run in FRA1?")
    final = page.locator(".chat-assistant .chat-markdown")
    assert final.locator("strong").inner_text() == f"{len(expected)} VMs"
    assert final.locator("table tbody tr").count() == 3
    assert final.locator("script").count() == 0 and "<script>alert(1)</script>" in final.inner_text()
    assert final.locator("a").get_attribute("href") == "https://netbox.example.com/"

    _check_lookup_panel(page, expected, export, netbox.url)
    assert page.locator("#chat-not-configured, #chat-no-export").count() == 0
    for width, height in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": height})
        _shot(page, f"chat-{width}")
        # The chat itself fits the width (the site's top bar is the layout's business).
        assert page.evaluate("document.getElementById('chat').scrollWidth") <= width

    # Reload: the same conversation, exactly as stored, with its look-ups.
    page.set_viewport_size({"width": 1366, "height": 900})
    page.reload()
    page.wait_for_selector(".chat-assistant .chat-grounding")
    assert page.inner_text("#chat-title") == "Which VMs run in FRA1?"
    assert page.locator("#chat-sessions a[aria-current=page]").count() == 1
    assert page.locator(".chat-user .chat-text").inner_text() == "Which VMs run in FRA1?"
    stored = ChatMessage.objects.filter(session=session, role="assistant").exclude(content="").get()
    assert stored.content == answer
    _check_lookup_panel(page, expected, export, netbox.url)

    # Another member cannot open it (one cookie jar in this browser: alice signs out first).
    browser.clear_cookies()
    other = _sign_in(browser, base, "bob")
    response = other.goto(f"{base}/chat/{session.pk}/")
    assert response.status == 404
    other.goto(f"{base}/chat/")
    other.wait_for_selector("#chat-sessions-empty:not([hidden])")
    assert "Which VMs" not in other.inner_text("#chat-sessions")
    other.close()


def _check_lookup_panel(page: Any, expected: list[tuple[str, str]], export: Any, netbox_url: str) -> None:
    grounding = page.locator(".chat-assistant .chat-grounding")
    assert f"CMDB of export #{export.pk}" in grounding.locator(".chat-grounding-export").inner_text()
    lookup = grounding.locator("details.chat-lookup")
    assert lookup.count() == 1
    summary = lookup.locator("summary")
    assert "search_inventory" in summary.inner_text() and "site=FRA1" in summary.inner_text()
    assert f"{len(expected)} rows matched" in summary.inner_text()
    assert not lookup.locator("table").is_visible()  # collapsed
    summary.focus()
    page.keyboard.press("Enter")  # keyboard only
    rows = lookup.locator("table tbody tr")
    assert rows.count() == len(expected)
    links = lookup.locator("table tbody td:first-child a")
    assert [links.nth(i).inner_text() for i in range(links.count())] == [name for name, _ in expected]
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        f"{netbox_url.rstrip('/')}/virtualization/virtual-machines/{netbox_id}/" for _, netbox_id in expected
    ]
    history = lookup.locator("table tbody a.chat-history-link")
    assert [history.nth(i).get_attribute("href") for i in range(history.count())] == [
        f"/cmdb/vms/vms-{netbox_id}/" for _, netbox_id in expected
    ]


def test_stop_keeps_what_arrived_and_history_says_it_was_interrupted(llm, page, live_server):
    words = " ".join(f"word{i}" for i in range(200))
    llm.script(text(words, chunk_delay=0.05))
    page.fill("#chat-input", "Talk a lot")
    page.click("#chat-send")
    page.wait_for_function("() => (document.querySelector('.chat-streamed') || {}).textContent?.split(' ').length > 3")
    assert page.is_visible("#chat-stop") and page.is_disabled("#chat-send")
    _shot(page, "chat-streaming-1366")
    page.focus("#chat-stop")
    page.keyboard.press("Enter")
    page.wait_for_selector(".chat-interrupted")
    assert "Stopped" in page.inner_text(".chat-interrupted")
    shown = page.inner_text(".chat-streamed")
    assert words.startswith(shown)

    session = ChatSession.objects.get(owner__username="alice")
    page.wait_for_function("() => !document.getElementById('chat-send').disabled")
    # The server notices the closed connection at its next write and stores what it had sent.
    for _ in range(100):
        if ChatMessage.objects.filter(session=session, role="assistant").exists():
            break
        page.wait_for_timeout(100)
    page.goto(f"{live_server.url}/chat/{session.pk}/")
    page.wait_for_selector(".chat-assistant .chat-interrupted")
    stopped = ChatMessage.objects.get(session=session, role="assistant")
    assert stopped.interrupted and words.startswith(stopped.content) and stopped.content
    assert "stopped" in page.inner_text(".chat-assistant .chat-interrupted")


def test_a_reply_failing_mid_stream_keeps_what_arrived_and_says_so(llm, page, live_server):
    llm.script(text("Three servers run in FRA1 today.", fail_after=3, chunk_delay=0.05))
    page.fill("#chat-input", "FRA1?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".chat-assistant .chat-interrupted")
    assert page.inner_text(".chat-assistant .chat-markdown") == "Three servers run"
    assert "error while generating the response" in page.inner_text(".chat-assistant .chat-interrupted")
    assert page.is_visible("#chat-retry")
    page.reload()
    page.wait_for_selector(".chat-assistant .chat-interrupted")
    assert page.inner_text(".chat-assistant .chat-markdown") == "Three servers run"


def test_rate_limit_offers_retry_which_answers(llm, export, page, live_server):
    llm.script(error(429), text("Forty devices."))
    page.focus("#chat-input")
    page.keyboard.type("How many devices")
    page.keyboard.press("Shift+Enter")  # a new line, not sent
    page.keyboard.type("in FRA1?")
    assert page.input_value("#chat-input") == "How many devices\nin FRA1?" and not llm.requests
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat-error:not([hidden])")
    assert "rate limiting" in page.inner_text("#chat-error-text")
    _shot(page, "chat-retry-1366")
    page.focus("#chat-retry")
    page.keyboard.press("Enter")
    page.wait_for_selector(".chat-assistant:not(.streaming) .chat-markdown")
    assert page.inner_text(".chat-assistant .chat-markdown") == "Forty devices."
    assert page.locator("#chat-error").is_hidden()
    assert llm.requests[-1].messages[-1] == {"role": "user", "content": "How many devices\nin FRA1?"}
    # Asked once, shown once, stored once.
    assert page.locator(".chat-user").count() == 1
    assert list(ChatMessage.objects.values_list("role", flat=True)) == ["user", "assistant"]


def test_states_without_provider_or_export_say_what_to_do(no_provider, page, live_server):
    page.goto(f"{live_server.url}/chat/")
    banner = page.inner_text("#chat-not-configured")
    assert "CHAT_API_KEY" in banner and "CHAT_API_BASE_URL" in banner
    assert page.get_attribute("#chat-no-export a", "href") == "/exports/"
    for width, height in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": height})
        _shot(page, f"chat-empty-{width}")


def test_own_key_is_set_replaced_and_removed_showing_only_a_mask(page, live_server, llm):
    key_one, key_two = "sk-own-first-key-0123456789-WXYZ", "sk-own-second-key-987654-ABCD"
    page.click("#chat-key summary")
    page.fill("#chat-key-value", key_one)
    page.click("#chat-key-save")
    page.wait_for_selector("#chat-key-state code")
    assert page.inner_text("#chat-key-state code") == "••••WXYZ" and key_one not in page.content()
    page.fill("#chat-key-value", key_two)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#chat-key-state code')?.textContent === '••••ABCD'")
    page.reload()
    assert "••••ABCD" in page.text_content("#chat-key-state") and key_two not in page.content()
    page.click("#chat-key summary")
    page.click("#chat-key-remove")
    page.wait_for_function("() => document.getElementById('chat-key-state').textContent === 'none'")


def test_conversations_are_renamed_searched_and_deleted_with_the_keyboard(page, live_server, llm, members):
    alice, _ = members
    for title in ("Backups in AMS1", "FRA1 hypervisors", "Old question"):
        ChatSession.objects.create(owner=alice, title=title, context={"site": "FRA1"})
    page.reload()
    page.wait_for_selector("#chat-sessions a")
    assert page.locator("#chat-sessions a").count() == 3
    page.focus("#chat-search")
    page.keyboard.type("fra1")
    assert [t.split("\n")[0] for t in page.locator("#chat-sessions a").all_inner_texts()] == ["FRA1 hypervisors"]
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('chat-title').textContent === 'FRA1 hypervisors'")
    session = ChatSession.objects.get(title="FRA1 hypervisors")
    assert page.url.endswith(f"/chat/{session.pk}/")

    page.focus("#chat-rename")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+A")
    page.keyboard.type("FRA1 hosts")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('chat-title').textContent === 'FRA1 hosts'")
    assert ChatSession.objects.get(pk=session.pk).title == "FRA1 hosts"

    page.click("#chat-context summary")
    assert page.input_value(".chat-context-value") == "FRA1"
    page.fill(".chat-context-value", "AMS1")
    page.click("#chat-context-save")
    page.wait_for_function("() => document.getElementById('chat-context-message').textContent === 'Saved.'")
    assert ChatSession.objects.get(pk=session.pk).context == {"site": "AMS1"}

    page.once("dialog", lambda dialog: dialog.accept())
    page.focus("#chat-delete")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/chat/")
    assert not ChatSession.objects.filter(pk=session.pk).exists()
    page.fill("#chat-search", "")
    page.wait_for_function("() => document.querySelectorAll('#chat-sessions a').length === 2")


def test_nav_link_shows_only_to_users_who_may_chat(browser, live_server, members):  # noqa: F811
    # An operator exports but does not chat.
    user_create(username="olga", password=PASSWORD, role=Role.OPERATOR)
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("nav a[href='/chat/']").count() == 0
    assert page.goto(f"{live_server.url}/chat/").status == 403
    page.close()


def test_times_follow_the_users_time_zone_and_the_list_stays_put_in_a_long_chat(page, live_server, members):
    from datetime import UTC, datetime

    from accounts.services import profile_update

    alice = members[0]
    profile_update(user=alice, preferences={"time_zone": "Asia/Tokyo"})
    session = ChatSession.objects.create(owner=alice, title="A long conversation")
    for i in range(30):
        ChatMessage.objects.create(session=session, role="user", content=f"Question {i}\n" * 3)
        ChatMessage.objects.create(session=session, role="assistant", content=f"Answer {i}", grounding={})
    ChatSession.objects.filter(pk=session.pk).update(updated=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    page.goto(f"{live_server.url}/chat/{session.pk}/")
    page.wait_for_selector(".chat-assistant")
    assert page.inner_text("#chat-sessions .chat-session-when") == "2026-06-01 21:00 GMT+9"
    # The conversation scrolls in its own box: the page does not, and the list stays at the top.
    before = page.locator("#chat-sessions").bounding_box()["y"]
    page.mouse.move(900, 500)
    page.mouse.wheel(0, 5000)
    page.wait_for_timeout(300)
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight + 1")
    assert page.locator("#chat-sessions").bounding_box()["y"] == before
    assert page.evaluate("document.getElementById('chat-messages').scrollHeight > "
                         "document.getElementById('chat-messages').clientHeight")  # fmt: skip
    assert page.locator("#chat-input").is_visible()
    _shot(page, "chat-long-1366")
