import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from suggestions.models import Suggestion, SuggestionComment, SuggestionLike
from suggestions.services import suggestion_comment_create, suggestion_like

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(make_user):
    return make_user("member", display_name="Mia Member")


@pytest.fixture
def browser(member):
    """A client that enforces CSRF like a real browser: forms must carry the token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    return client


def csrf_post(client, page_url, action_url, data):
    """Load a page, take the CSRF token from its forms, and submit ``data`` to ``action_url`` like a browser."""
    page = client.get(page_url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return client.post(action_url, {"csrfmiddlewaretoken": token, **data}, follow=True)


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/suggestions/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_board_shows_cards_with_letter_badge_status_likes_and_comment_count(
    browser, member, make_suggestion, make_user
):
    suggestion = make_suggestion(title="Dark mode", classification="Must have")
    suggestion_like(suggestion=suggestion, user=member)
    suggestion_comment_create(suggestion=suggestion, author=member, text="a")
    suggestion_comment_create(suggestion=suggestion, author=member, text="b")
    make_suggestion(title="Nice extra", classification="Nice to have")
    response = browser.get("/suggestions/")
    page = response.content.decode()
    assert response.status_code == 200
    card = page[page.index(f'id="suggestion-{suggestion.pk}"') :]
    card = card[: card.index("</article>")]
    assert 'class="letter-badge badge-must-have"' in card and ">M</span>" in card
    assert "New</span>" in card and "2 comments" in card
    assert 'value="unlike"' in card and "♥ 1" in card
    assert f'href="/suggestions/{suggestion.pk}/"' in card
    assert 'name="csrfmiddlewaretoken"' in page
    assert '<a href="/suggestions/">Suggestions</a>' in page


def test_board_filters_and_reports_a_bad_filter(browser, make_suggestion):
    make_suggestion(title="Dark mode", classification="Must have")
    make_suggestion(title="Light mode", classification="Could have")
    page = browser.get("/suggestions/?classification=must+have").content.decode()
    assert "Dark mode" in page and "Light mode" not in page
    page = browser.get("/suggestions/?q=light").content.decode()
    assert "Light mode" in page and "Dark mode" not in page
    page = browser.get("/suggestions/?status=closed").content.decode()
    assert "Unknown status" in page and "Dark mode" in page and "Light mode" in page


def test_board_query_count_does_not_grow(browser, make_suggestion, make_user, django_assert_max_num_queries):
    for n in range(15):
        suggestion = make_suggestion(title=f"s{n}")
        for _ in range(3):
            suggestion_like(suggestion=suggestion, user=make_user("viewer"))
        suggestion_comment_create(suggestion=suggestion, author=suggestion.author, text="c")
    # Session, user, messages-free page: count + page of cards; the nav's capability check (the Chat link): one,
    # made once per request whatever the number of cards.
    with django_assert_max_num_queries(6):
        assert browser.get("/suggestions/").status_code == 200


def test_create_through_the_form(browser, member):
    response = csrf_post(
        browser,
        "/suggestions/",
        "/suggestions/new/",
        {"title": " Dark mode ", "summary": "x", "classification": "Should have"},
    )
    suggestion = Suggestion.objects.get()
    assert response.redirect_chain == [(f"/suggestions/{suggestion.pk}/", 302)]
    assert (suggestion.title, suggestion.classification, suggestion.author) == ("Dark mode", "Should have", member)
    assert "Suggestion “Dark mode” added." in response.content.decode()


def test_create_form_shows_the_service_message_for_a_blank_title(browser):
    response = csrf_post(
        browser, "/suggestions/new/", "/suggestions/new/", {"title": "   ", "classification": "Could have"}
    )
    assert response.status_code == 400
    assert "Enter a title: it may not be empty or only spaces." in response.content.decode()
    assert not Suggestion.objects.exists()


def test_form_post_without_csrf_token_is_refused(browser):
    assert browser.post("/suggestions/new/", {"title": "t", "classification": "Could have"}).status_code == 403
    assert not Suggestion.objects.exists()


def test_like_button_toggles_and_returns_to_the_page(browser, member, make_suggestion):
    suggestion = make_suggestion()
    response = csrf_post(
        browser,
        "/suggestions/",
        f"/suggestions/{suggestion.pk}/like/",
        {"action": "like", "next": "/suggestions/?q=dark"},
    )
    assert response.redirect_chain == [("/suggestions/?q=dark", 302)]
    assert SuggestionLike.objects.filter(user=member).count() == 1
    csrf_post(browser, "/suggestions/", f"/suggestions/{suggestion.pk}/like/", {"action": "like"})
    assert SuggestionLike.objects.count() == 1
    response = csrf_post(
        browser,
        "/suggestions/",
        f"/suggestions/{suggestion.pk}/like/",
        {"action": "unlike", "next": "https://evil.example/"},
    )
    assert response.redirect_chain == [(f"/suggestions/{suggestion.pk}/", 302)]
    assert not SuggestionLike.objects.exists()


def test_detail_page_adds_and_deletes_comments(browser, member, make_suggestion):
    suggestion = make_suggestion(title="Dark mode", summary="Easier on the eyes")
    url = f"/suggestions/{suggestion.pk}/"
    page = browser.get(url).content.decode()
    assert "Dark mode" in page and "Easier on the eyes" in page and "No comments yet." in page
    assert "Edit this suggestion" not in page  # not the author
    response = csrf_post(browser, url, f"{url}comments/", {"text": "Yes please"})
    comment = SuggestionComment.objects.get()
    assert response.redirect_chain == [(f"{url}#comment-{comment.pk}", 302)]
    assert "Yes please" in response.content.decode() and "1 comment" in response.content.decode()
    response = csrf_post(browser, url, f"{url}comments/{comment.pk}/delete/", {})
    assert response.redirect_chain == [(url, 302)] and not SuggestionComment.objects.exists()


def test_empty_comment_is_shown_as_an_error(browser, make_suggestion):
    suggestion = make_suggestion()
    url = f"/suggestions/{suggestion.pk}/"
    response = csrf_post(browser, url, f"{url}comments/", {"text": "  "})
    assert response.status_code == 400 and "Enter a comment" in response.content.decode()


def test_author_edits_and_deletes_but_cannot_change_status(browser, member, make_suggestion):
    suggestion = make_suggestion(author=member)
    url = f"/suggestions/{suggestion.pk}/"
    page = browser.get(url).content.decode()
    assert "Edit this suggestion" in page and 'name="status"' not in page
    response = csrf_post(browser, url, f"{url}edit/", {"title": "Darker", "summary": "", "classification": "Must have"})
    assert response.redirect_chain == [(url, 302)]
    assert Suggestion.objects.get().title == "Darker"
    response = csrf_post(
        browser, url, f"{url}edit/", {"title": "Darker", "classification": "Must have", "status": "done"}
    )
    assert response.status_code == 403 and Suggestion.objects.get().status == "new"
    response = csrf_post(browser, url, f"{url}delete/", {})
    assert response.redirect_chain == [("/suggestions/", 302)] and not Suggestion.objects.exists()


def test_manager_changes_the_status_on_the_page(make_user, make_suggestion):
    manager = Client()
    manager.force_login(make_user("admin"))
    suggestion = make_suggestion()
    url = f"/suggestions/{suggestion.pk}/"
    assert 'name="status"' in manager.get(url).content.decode()
    manager.post(f"{url}edit/", {"title": "t", "classification": "Could have", "status": "in progress"})
    assert Suggestion.objects.get().status == "in progress"
    assert "In Progress" in manager.get("/suggestions/").content.decode()


def test_others_cannot_edit_delete_or_remove_comments(browser, make_user, make_suggestion):
    suggestion = make_suggestion()
    comment = suggestion_comment_create(suggestion=suggestion, author=suggestion.author, text="mine")
    url = f"/suggestions/{suggestion.pk}/"
    assert csrf_post(browser, url, f"{url}edit/", {"title": "x", "classification": "Could have"}).status_code == 403
    assert csrf_post(browser, url, f"{url}delete/", {}).status_code == 403
    assert csrf_post(browser, url, f"{url}comments/{comment.pk}/delete/", {}).status_code == 403
    assert Suggestion.objects.get().title == "Dark mode" and SuggestionComment.objects.exists()


def test_unknown_ids_are_404(browser, make_suggestion):
    other = make_suggestion()
    comment = suggestion_comment_create(suggestion=other, author=other.author, text="c")
    suggestion = make_suggestion()
    assert browser.get("/suggestions/999999/").status_code == 404
    response = csrf_post(
        browser, f"/suggestions/{suggestion.pk}/", f"/suggestions/{suggestion.pk}/comments/{comment.pk}/delete/", {}
    )
    assert response.status_code == 404 and SuggestionComment.objects.exists()


def test_detail_page_query_count_does_not_grow_with_comments(browser, make_suggestion, make_user):
    few, many = make_suggestion(title="few"), make_suggestion(title="many")
    for n in range(12):
        writer = make_user("viewer")
        suggestion_like(suggestion=many, user=writer)
        suggestion_comment_create(suggestion=many, author=writer, text=f"comment {n}")
    with CaptureQueriesContext(connection) as baseline:
        browser.get(f"/suggestions/{few.pk}/")
    with CaptureQueriesContext(connection) as loaded:
        page = browser.get(f"/suggestions/{many.pk}/").content.decode()
    assert "comment 11" in page and "12 comments" in page
    assert len(loaded) == len(baseline)


def test_deleting_a_comment_asks_first(browser, member):
    suggestion = Suggestion.objects.create(author=member, title="Ask before deleting")
    suggestion_comment_create(suggestion=suggestion, author=member, text="mine")
    page = browser.get(f"/suggestions/{suggestion.pk}/").content.decode()
    form = re.search(r"<form[^>]*comments/\d+/delete/[^>]*>", page).group(0)
    assert 'data-confirm="Delete this comment?"' in form and "js/confirm.js" in page
