import pytest

from suggestions.models import Suggestion
from suggestions.services import suggestion_like

pytestmark = pytest.mark.django_db


def test_changelist_shows_like_counts_with_filters_and_search(
    client_for, make_suggestion, make_user, django_assert_max_num_queries
):
    client = client_for("admin")
    popular = make_suggestion(title="Popular idea", classification="Must have")
    for _ in range(3):
        suggestion_like(suggestion=popular, user=make_user("viewer"))
    make_suggestion(title="Quiet idea")
    response = client.get("/admin/suggestions/suggestion/")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<td class="field-likes">3</td>' in page and '<td class="field-likes">0</td>' in page
    assert "By classification" in page and "By status" in page
    searched = client.get("/admin/suggestions/suggestion/?q=quiet").content.decode()
    assert "Quiet idea" in searched and "Popular idea" not in searched
    filtered = client.get("/admin/suggestions/suggestion/?classification__exact=Must+have").content.decode()
    assert "Popular idea" in filtered and "Quiet idea" not in filtered
    for _ in range(10):
        make_suggestion(title="More")
    with django_assert_max_num_queries(12):
        assert client.get("/admin/suggestions/suggestion/?o=-6").status_code == 200


def test_bulk_status_action_uses_the_service(client_for, make_suggestion):
    client = client_for("admin")
    first, second, untouched = make_suggestion(title="a"), make_suggestion(title="b"), make_suggestion(title="c")
    response = client.post(
        "/admin/suggestions/suggestion/",
        {"action": "mark_in_progress", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 suggestion(s) marked In Progress." in response.content.decode()
    assert sorted(Suggestion.objects.filter(status="in progress").values_list("title", flat=True)) == ["a", "b"]
    untouched.refresh_from_db()
    assert untouched.status == "new"


def test_change_form_saves_through_the_service(client_for, make_suggestion):
    client = client_for("admin")
    suggestion = make_suggestion(title="Old")
    url = f"/admin/suggestions/suggestion/{suggestion.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "title": "  New  ",
            "summary": "",
            "classification": "Should have",
            "status": "done",
            "comments-TOTAL_FORMS": "0",
            "comments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    suggestion.refresh_from_db()
    assert (suggestion.title, suggestion.classification, suggestion.status) == ("New", "Should have", "done")
    assert client.get("/admin/suggestions/suggestion/add/").status_code == 403
