import pytest

from suggestions.models import Suggestion, SuggestionComment, SuggestionLike
from suggestions.services import (
    SuggestionForbidden,
    SuggestionInvalid,
    classification_parse,
    status_parse,
    suggestion_comment_create,
    suggestion_comment_delete,
    suggestion_comment_update,
    suggestion_create,
    suggestion_delete,
    suggestion_like,
    suggestion_status_bulk_set,
    suggestion_unlike,
    suggestion_update,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("given", "expected"),
    [("must have", "Must have"), ("  SHOULD NOT HAVE ", "Should not have"), ("Nice to Have", "Nice to have")],
)
def test_classification_matches_names_case_insensitively(given, expected):
    assert classification_parse(given) == expected


def test_unknown_classification_names_the_allowed_values():
    with pytest.raises(SuggestionInvalid) as exc:
        classification_parse("Won't have")
    assert exc.value.field == "classification"
    assert "'Must have', 'Should have', 'Could have', 'Nice to have', 'Should not have'" in exc.value.message


@pytest.mark.parametrize(
    ("given", "expected"),
    [("new", "new"), ("In Progress", "in progress"), ("in_progress", "in progress"), ("DONE", "done")],
)
def test_status_matches_values_and_labels(given, expected):
    assert status_parse(given) == expected


def test_unknown_status_names_the_allowed_values():
    with pytest.raises(SuggestionInvalid) as exc:
        status_parse("rejected")
    assert exc.value.field == "status"
    assert "'new', 'accepted', 'in progress', 'done', 'denied'" in exc.value.message


def test_create_trims_the_title_and_applies_defaults(make_user):
    author = make_user("viewer")
    suggestion = suggestion_create(author=author, title="  Dark mode  ", summary=" please ")
    assert (suggestion.title, suggestion.summary) == ("Dark mode", "please")
    assert suggestion.classification == "Could have" and suggestion.status == "new"
    assert suggestion.author == author


@pytest.mark.parametrize(
    ("title", "message"),
    [("", "may not be empty"), ("   \t", "may not be empty"), ("x" * 201, "201 characters long; at most 200")],
)
def test_create_rejects_empty_and_long_titles(make_user, title, message):
    with pytest.raises(SuggestionInvalid) as exc:
        suggestion_create(author=make_user("member"), title=title)
    assert exc.value.field == "title" and message in exc.value.message
    assert not Suggestion.objects.exists()


def test_create_accepts_a_title_of_exactly_200_characters(make_user):
    assert len(suggestion_create(author=make_user("member"), title="x" * 200).title) == 200


def test_create_with_a_status_needs_manage(make_user):
    with pytest.raises(SuggestionForbidden):
        suggestion_create(author=make_user("member"), title="t", status="accepted")
    assert suggestion_create(author=make_user("admin"), title="t", status="accepted").status == "accepted"
    assert suggestion_create(author=make_user("member"), title="t", status="new").status == "new"


def test_author_edits_but_cannot_change_the_status(make_user, make_suggestion):
    author = make_user("member")
    suggestion = make_suggestion(author=author)
    suggestion_update(suggestion=suggestion, user=author, title="Darker mode", classification="MUST HAVE")
    suggestion.refresh_from_db()
    assert (suggestion.title, suggestion.classification) == ("Darker mode", "Must have")
    with pytest.raises(SuggestionForbidden, match=r"suggestions\.manage"):
        suggestion_update(suggestion=suggestion, user=author, status="done")
    # Sending the current status back (a form with every field) is not a change.
    suggestion_update(suggestion=suggestion, user=author, status="new", title="Darkest mode")
    suggestion.refresh_from_db()
    assert suggestion.status == "new" and suggestion.title == "Darkest mode"


def test_other_users_cannot_edit_or_delete_but_managers_can(make_user, make_suggestion):
    suggestion = make_suggestion()
    stranger = make_user("member")
    with pytest.raises(SuggestionForbidden):
        suggestion_update(suggestion=suggestion, user=stranger, title="Mine now")
    with pytest.raises(SuggestionForbidden):
        suggestion_delete(suggestion=suggestion, user=stranger)
    manager = make_user("admin")
    suggestion_update(suggestion=suggestion, user=manager, status="accepted")
    assert Suggestion.objects.get().status == "accepted"
    suggestion_delete(suggestion=suggestion, user=manager)
    assert not Suggestion.objects.exists()


def test_like_and_unlike_are_idempotent(make_user, make_suggestion):
    suggestion, user = make_suggestion(), make_user("viewer")
    assert suggestion_like(suggestion=suggestion, user=user) is True
    assert suggestion_like(suggestion=suggestion, user=user) is False
    assert SuggestionLike.objects.filter(suggestion=suggestion).count() == 1
    assert suggestion_unlike(suggestion=suggestion, user=user) is True
    assert suggestion_unlike(suggestion=suggestion, user=user) is False
    assert not SuggestionLike.objects.exists()


def test_comments_need_text_and_only_their_author_or_a_manager_changes_them(make_user, make_suggestion):
    suggestion, writer = make_suggestion(), make_user("viewer")
    with pytest.raises(SuggestionInvalid) as exc:
        suggestion_comment_create(suggestion=suggestion, author=writer, text="  ")
    assert exc.value.field == "text"
    with pytest.raises(SuggestionInvalid, match="at most 2000"):
        suggestion_comment_create(suggestion=suggestion, author=writer, text="x" * 2001)
    comment = suggestion_comment_create(suggestion=suggestion, author=writer, text=" +1 ")
    assert comment.text == "+1"
    with pytest.raises(SuggestionForbidden):
        suggestion_comment_update(comment=comment, user=suggestion.author, text="-1")
    with pytest.raises(SuggestionForbidden):
        suggestion_comment_delete(comment=comment, user=suggestion.author)
    suggestion_comment_update(comment=comment, user=writer, text="+2")
    assert SuggestionComment.objects.get().text == "+2"
    suggestion_comment_delete(comment=comment, user=make_user("admin"))
    assert not SuggestionComment.objects.exists()


def test_bulk_status_change_needs_manage_and_counts_changes(make_user, make_suggestion):
    first, second = make_suggestion(title="a"), make_suggestion(title="b")
    suggestion_update(suggestion=second, user=make_user("admin"), status="done")
    with pytest.raises(SuggestionForbidden):
        suggestion_status_bulk_set(suggestions=Suggestion.objects.all(), status="done", user=make_user("member"))
    changed = suggestion_status_bulk_set(suggestions=Suggestion.objects.all(), status="Done", user=make_user("admin"))
    assert changed == 1
    first.refresh_from_db()
    assert first.status == "done" and first.updated > first.created
