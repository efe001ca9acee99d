import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.tokens import api_token_create
from suggestions.models import Suggestion, SuggestionComment
from suggestions.services import suggestion_comment_create, suggestion_like, suggestion_update

pytestmark = pytest.mark.django_db

META = {
    "classifications": [
        {"name": "Must have", "color": "#7c3aed", "letter": "M"},
        {"name": "Should have", "color": "#2563eb", "letter": "S"},
        {"name": "Could have", "color": "#fbbf24", "letter": "C"},
        {"name": "Nice to have", "color": "#22c55e", "letter": "N"},
        {"name": "Should not have", "color": "#ef4444", "letter": "X"},
    ],
    "statuses": [
        {"value": "new", "label": "New"},
        {"value": "accepted", "label": "Accepted"},
        {"value": "in progress", "label": "In Progress"},
        {"value": "done", "label": "Done"},
        {"value": "denied", "label": "Denied"},
    ],
}
ITEM_KEYS = {
    "id", "title", "summary", "classification", "classification_color", "classification_letter", "status",
    "status_label", "likes", "liked_by_me", "author", "created", "updated", "comments",
}  # fmt: skip


def client_of(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def member(make_user):
    return make_user("member", display_name="Mia Member")


@pytest.fixture
def member_client(member):
    return client_of(member)


def test_create_returns_the_item_with_every_field(member_client, member):
    response = member_client.post(
        "/api/suggestions/",
        {"title": "  Dark mode ", "summary": "Easier on the eyes", "classification": "should HAVE"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"item"}
    item = body["item"]
    assert set(item) == ITEM_KEYS
    suggestion = Suggestion.objects.get()
    assert item["id"] == suggestion.pk
    assert {k: item[k] for k in ITEM_KEYS - {"id", "created", "updated"}} == {
        "title": "Dark mode",
        "summary": "Easier on the eyes",
        "classification": "Should have",
        "classification_color": "#2563eb",
        "classification_letter": "S",
        "status": "new",
        "status_label": "New",
        "likes": 0,
        "liked_by_me": False,
        "author": {"username": member.username, "display_name": "Mia Member"},
        "comments": [],
    }
    assert item["created"].startswith(str(suggestion.created.date()))


def test_create_defaults_to_could_have(member_client):
    item = member_client.post("/api/suggestions/", {"title": "t"}, format="json").json()["item"]
    assert (item["classification"], item["classification_color"], item["classification_letter"]) == (
        "Could have",
        "#fbbf24",
        "C",
    )


def test_list_has_items_total_and_meta(member_client, make_suggestion):
    make_suggestion(title="One")
    body = member_client.get("/api/suggestions/").json()
    assert set(body) == {"items", "total", "meta"}
    assert body["total"] == 1 and body["meta"] == META
    assert [item["title"] for item in body["items"]] == ["One"]
    assert set(body["items"][0]) == ITEM_KEYS


def test_detail_has_item_with_comments_and_meta(member_client, make_suggestion, make_user):
    suggestion = make_suggestion()
    writer = make_user("viewer", display_name="")
    comment = suggestion_comment_create(suggestion=suggestion, author=writer, text="Yes please")
    body = member_client.get(f"/api/suggestions/{suggestion.pk}/").json()
    assert set(body) == {"item", "meta"} and body["meta"] == META
    assert body["item"]["comments"] == [
        {
            "id": comment.pk,
            "text": "Yes please",
            "author": {"username": writer.username, "display_name": writer.username},
            "created": body["item"]["comments"][0]["created"],
        }
    ]


def test_total_counts_all_matches_under_pagination_and_filters(member_client, make_suggestion, make_user):
    manager = make_user("admin")
    for n in range(7):
        suggestion = make_suggestion(title=f"Idea {n}", classification="Must have" if n % 2 else "Could have")
        if n < 3:
            suggestion_update(suggestion=suggestion, user=manager, status="accepted")
    page = member_client.get("/api/suggestions/?limit=2&offset=2").json()
    assert page["total"] == 7 and [i["title"] for i in page["items"]] == ["Idea 4", "Idea 3"]
    filtered = member_client.get("/api/suggestions/?status=accepted&limit=1").json()
    assert filtered["total"] == 3 and len(filtered["items"]) == 1
    both = member_client.get("/api/suggestions/?status=accepted&classification=must%20HAVE").json()
    assert both["total"] == 1 and both["items"][0]["title"] == "Idea 1"
    beyond = member_client.get("/api/suggestions/?offset=50").json()
    assert beyond["total"] == 7 and beyond["items"] == []


def test_q_searches_title_and_summary(member_client, make_suggestion):
    make_suggestion(title="Dark mode")
    make_suggestion(title="Export", summary="Add a DARK theme to the workbook")
    make_suggestion(title="Other")
    body = member_client.get("/api/suggestions/?q=dark").json()
    assert body["total"] == 2 and {i["title"] for i in body["items"]} == {"Dark mode", "Export"}


def test_orderings(member_client, make_suggestion, make_user):
    old, popular, edited = (make_suggestion(title=t) for t in ("old", "popular", "edited"))
    for _ in range(2):
        suggestion_like(suggestion=popular, user=make_user("viewer"))
    suggestion_update(suggestion=old, user=old.author, summary="touched")
    suggestion_update(suggestion=edited, user=edited.author, summary="touched later")

    def titles(ordering):
        return [i["title"] for i in member_client.get(f"/api/suggestions/?ordering={ordering}").json()["items"]]

    assert titles("-created") == ["edited", "popular", "old"] == titles("")
    assert titles("-likes") == ["popular", "edited", "old"]
    assert titles("-updated") == ["edited", "old", "popular"]


def test_like_is_idempotent_and_per_user(member_client, make_suggestion, make_user):
    suggestion = make_suggestion()
    url = f"/api/suggestions/{suggestion.pk}/like/"
    for _ in range(2):
        response = member_client.post(url)
        assert response.status_code == 200
        assert set(response.json()) == {"item"}
        assert (response.json()["item"]["likes"], response.json()["item"]["liked_by_me"]) == (1, True)
    other = client_of(make_user("viewer")).get(f"/api/suggestions/{suggestion.pk}/").json()["item"]
    assert (other["likes"], other["liked_by_me"]) == (1, False)
    for _ in range(2):
        item = member_client.delete(url).json()["item"]
        assert (item["likes"], item["liked_by_me"]) == (0, False)


def test_comment_create_and_delete(member_client, member, make_suggestion):
    suggestion = make_suggestion()
    response = member_client.post(f"/api/suggestions/{suggestion.pk}/comments/", {"text": " +1 "}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"item", "comment"}
    comment = SuggestionComment.objects.get()
    assert body["comment"]["id"] == comment.pk and body["comment"]["text"] == "+1"
    assert body["comment"]["author"] == {"username": member.username, "display_name": "Mia Member"}
    assert body["item"]["comments"] == [body["comment"]]
    response = member_client.delete(f"/api/suggestions/{suggestion.pk}/comments/{comment.pk}/")
    assert response.status_code == 200 and response.json() == {"item": response.json()["item"]}
    assert response.json()["item"]["comments"] == []


def test_comment_edit_by_its_author(member_client, member, make_suggestion):
    suggestion = make_suggestion()
    comment = suggestion_comment_create(suggestion=suggestion, author=member, text="typo")
    response = member_client.patch(
        f"/api/suggestions/{suggestion.pk}/comments/{comment.pk}/", {"text": "fixed"}, format="json"
    )
    assert response.status_code == 200 and response.json()["comment"]["text"] == "fixed"


def test_delete_returns_204(member_client, member, make_suggestion):
    suggestion = make_suggestion(author=member)
    response = member_client.delete(f"/api/suggestions/{suggestion.pk}/")
    assert response.status_code == 204 and not Suggestion.objects.exists()


# --- Permissions ---------------------------------------------------------------------------------------------------


def test_only_author_or_manager_may_edit_or_delete(make_user, make_suggestion):
    author = make_user("member")
    suggestion = make_suggestion(author=author)
    url = f"/api/suggestions/{suggestion.pk}/"
    stranger = client_of(make_user("member"))
    assert stranger.patch(url, {"title": "Hijacked"}, format="json").status_code == 403
    assert stranger.delete(url).status_code == 403
    assert client_of(author).patch(url, {"title": "Better"}, format="json").json()["item"]["title"] == "Better"
    assert client_of(make_user("admin")).patch(url, {"title": "Best"}, format="json").status_code == 200
    assert Suggestion.objects.get().title == "Best"


def test_only_managers_change_the_status(make_user, make_suggestion):
    author = make_user("member")
    suggestion = make_suggestion(author=author)
    url = f"/api/suggestions/{suggestion.pk}/"
    response = client_of(author).patch(url, {"status": "accepted"}, format="json")
    assert response.status_code == 403 and "suggestions.manage" in response.json()["detail"]
    assert (
        client_of(author).post("/api/suggestions/", {"title": "t", "status": "done"}, format="json").status_code == 403
    )
    item = client_of(make_user("admin")).patch(url, {"status": "In Progress"}, format="json").json()["item"]
    assert (item["status"], item["status_label"]) == ("in progress", "In Progress")


def test_only_comment_author_or_manager_deletes_a_comment(make_user, make_suggestion):
    suggestion, writer = make_suggestion(), make_user("viewer")
    comment = suggestion_comment_create(suggestion=suggestion, author=writer, text="hi")
    url = f"/api/suggestions/{suggestion.pk}/comments/{comment.pk}/"
    # Not even the suggestion's author may remove someone else's comment.
    assert client_of(suggestion.author).delete(url).status_code == 403
    assert client_of(make_user("admin")).delete(url).status_code == 200
    assert not SuggestionComment.objects.exists()


def test_read_only_token_reads_but_cannot_write(make_user, make_suggestion):
    admin = make_user("admin")
    suggestion = make_suggestion()
    _, secret = api_token_create(user=admin, read_only=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/suggestions/").status_code == 200
    assert client.post("/api/suggestions/", {"title": "t"}, format="json").status_code == 403
    assert client.post(f"/api/suggestions/{suggestion.pk}/like/").status_code == 403
    assert Suggestion.objects.count() == 1 and not suggestion.likes.exists()


def test_anonymous_gets_401(api_client):
    assert api_client.get("/api/suggestions/").status_code == 401
    assert api_client.post("/api/suggestions/", {"title": "t"}, format="json").status_code == 401


# --- Bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "title", "This field is required."),
        ({"title": ""}, "title", "may not be empty"),
        ({"title": "   "}, "title", "may not be empty"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"title": None}, "title", "may not be null"),
        ({"title": "t", "summary": "x" * 5001}, "summary", "at most 5000"),
        ({"title": "t", "classification": "Won't have"}, "classification", "'Must have', 'Should have'"),
        ({"title": "t", "classification": ""}, "classification", "Unknown classification"),
        ({"title": "t", "status": "rejected"}, "status", "'new', 'accepted', 'in progress', 'done', 'denied'"),
        ({"title": "t", "titel": "typo"}, "titel", "Unknown field; allowed: title, summary, classification, status."),
    ],
)
def test_create_rejects_bad_input_with_a_readable_message(member_client, body, field, message):
    response = member_client.post("/api/suggestions/", body, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not Suggestion.objects.exists()


def test_create_rejects_a_body_that_is_not_an_object(member_client):
    response = member_client.post("/api/suggestions/", ["title"], format="json")
    assert response.status_code == 400 and "Expected a dictionary" in str(response.json())


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": " "}, "title", "may not be empty"),
        ({"title": "x" * 300}, "title", "300 characters long"),
        ({"classification": "Maybe"}, "classification", "choose one of"),
        ({"status": "closed"}, "status", "choose one of"),
        ({"likes": 99}, "likes", "Unknown field"),
    ],
)
def test_update_rejects_bad_input(make_user, make_suggestion, body, field, message):
    manager = make_user("admin")
    suggestion = make_suggestion(title="Keep me")
    response = client_of(manager).patch(f"/api/suggestions/{suggestion.pk}/", body, format="json")
    assert response.status_code == 400 and message in " ".join(response.json()[field])
    assert Suggestion.objects.get().title == "Keep me"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=closed", "status", "Unknown status 'closed'; choose one of 'new', 'accepted'"),
        ("classification=Won%27t", "classification", "choose one of 'Must have'"),
        ("ordering=likes", "ordering", "Unknown ordering 'likes'; choose one of '-created', '-likes', '-updated'."),
        ("ordering=title", "ordering", "Unknown ordering"),
        ("limit=abc", "limit", "limit must be a whole number, not 'abc'."),
        ("limit=0", "limit", "limit must be between 1 and 200; got 0."),
        ("limit=201", "limit", "between 1 and 200"),
        ("offset=-1", "offset", "offset must be between 0"),
        ("offset=1.5", "offset", "whole number"),
        ("offset=99999999999999999999999", "offset", "between 0 and"),
    ],
)
def test_list_rejects_bad_parameters(member_client, query, field, message):
    response = member_client.get(f"/api/suggestions/?{query}")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])


def test_comment_needs_text(member_client, make_suggestion):
    suggestion = make_suggestion()
    url = f"/api/suggestions/{suggestion.pk}/comments/"
    assert "may not be empty" in member_client.post(url, {"text": " "}, format="json").json()["text"][0]
    assert member_client.post(url, {}, format="json").json() == {"text": ["This field is required."]}
    assert member_client.post(url, {"text": "x" * 2001}, format="json").status_code == 400
    assert not SuggestionComment.objects.exists()


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "like/"),
        ("delete", "like/"),
        ("post", "comments/"),
        ("delete", "comments/1/"),
    ],
)
def test_unknown_suggestion_is_404(member_client, method, suffix):
    for pk in (12345, 99999999999999999999999):
        request = getattr(member_client, method)
        response = request(f"/api/suggestions/{pk}/{suffix}", {"text": "x"}, format="json")
        assert response.status_code == 404
        assert "does not exist" in response.json()["detail"]


def test_unknown_comment_or_a_comment_of_another_suggestion_is_404(member_client, member, make_suggestion):
    first, second = make_suggestion(title="first"), make_suggestion(title="second")
    comment = suggestion_comment_create(suggestion=second, author=member, text="on the second")
    for comment_id in (comment.pk + 100, 99999999999999999999999):
        response = member_client.delete(f"/api/suggestions/{second.pk}/comments/{comment_id}/")
        assert response.status_code == 404
    response = member_client.delete(f"/api/suggestions/{first.pk}/comments/{comment.pk}/")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Suggestion {first.pk} has no comment {comment.pk}."}
    assert SuggestionComment.objects.count() == 1


# --- Query counts --------------------------------------------------------------------------------------------------


def _populate(make_suggestion, make_user, *, suggestions, likes, comments):
    users = [make_user("viewer") for _ in range(max(likes, 1))]
    created = []
    for n in range(suggestions):
        suggestion = make_suggestion(author=users[n % len(users)], title=f"s{n}")
        for user in users[:likes]:
            suggestion_like(suggestion=suggestion, user=user)
        for c in range(comments):
            suggestion_comment_create(suggestion=suggestion, author=users[c % len(users)], text=f"c{c}")
        created.append(suggestion)
    return created


def _queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/api/suggestions/", "/api/suggestions/?ordering=-likes&q=s"])
def test_list_makes_a_constant_number_of_queries(
    member_client, make_suggestion, make_user, url, django_assert_max_num_queries
):
    _populate(make_suggestion, make_user, suggestions=1, likes=1, comments=1)
    baseline = _queries(member_client, url)
    _populate(make_suggestion, make_user, suggestions=12, likes=5, comments=4)
    # Session, user, count, page, comments with their authors.
    with django_assert_max_num_queries(5):
        body = member_client.get(url).json()
    assert body["total"] == 13 and len(body["items"]) == 13
    assert sum(len(item["comments"]) for item in body["items"]) == 1 + 12 * 4
    assert _queries(member_client, url) == baseline


def test_detail_makes_a_constant_number_of_queries(
    member_client, make_suggestion, make_user, django_assert_max_num_queries
):
    [few] = _populate(make_suggestion, make_user, suggestions=1, likes=0, comments=0)
    [many] = _populate(make_suggestion, make_user, suggestions=1, likes=8, comments=10)
    baseline = _queries(member_client, f"/api/suggestions/{few.pk}/")
    # Session, user, the suggestion, its comments with their authors.
    with django_assert_max_num_queries(4):
        item = member_client.get(f"/api/suggestions/{many.pk}/").json()["item"]
    assert item["likes"] == 8 and len(item["comments"]) == 10
    assert _queries(member_client, f"/api/suggestions/{many.pk}/") == baseline
