"""Suggestions: operators propose improvements, vote on them with likes and discuss them in comments."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models

TITLE_MAX_LENGTH = 200
SUMMARY_MAX_LENGTH = 5000
COMMENT_MAX_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class ClassificationStyle:
    """How a classification is shown: a one-letter badge in its colour."""

    color: str
    letter: str
    # The badge text colour that stays readable on ``color`` (amber and green need dark text).
    text_color: str = "#ffffff"


class Suggestion(models.Model):
    """An improvement proposed by a user, with a MoSCoW-style classification and a workflow status."""

    class Classification(models.TextChoices):
        MUST = "Must have", "Must have"
        SHOULD = "Should have", "Should have"
        COULD = "Could have", "Could have"
        NICE = "Nice to have", "Nice to have"
        SHOULD_NOT = "Should not have", "Should not have"

    class Status(models.TextChoices):
        NEW = "new", "New"
        ACCEPTED = "accepted", "Accepted"
        IN_PROGRESS = "in progress", "In Progress"
        DONE = "done", "Done"
        DENIED = "denied", "Denied"

    STYLES: dict[str, ClassificationStyle] = {
        Classification.MUST: ClassificationStyle("#7c3aed", "M"),
        Classification.SHOULD: ClassificationStyle("#2563eb", "S"),
        Classification.COULD: ClassificationStyle("#fbbf24", "C", "#1f2937"),
        Classification.NICE: ClassificationStyle("#22c55e", "N", "#1f2937"),
        Classification.SHOULD_NOT: ClassificationStyle("#ef4444", "X"),
    }

    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    summary = models.TextField(blank=True, max_length=SUMMARY_MAX_LENGTH)
    classification = models.CharField(
        max_length=20, choices=Classification.choices, default=Classification.COULD, db_index=True
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    # SET_NULL: a suggestion and its votes outlive the account of whoever proposed it.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="suggestions"
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def style(self) -> ClassificationStyle:
        return self.STYLES[self.classification]

    @property
    def classification_color(self) -> str:
        return self.style.color

    @property
    def classification_letter(self) -> str:
        return self.style.letter


class SuggestionComment(models.Model):
    """A comment on a suggestion."""

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="suggestion_comments"
    )
    text = models.TextField(max_length=COMMENT_MAX_LENGTH)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        verbose_name = "comment"

    def __str__(self) -> str:
        return f"Comment #{self.pk} on suggestion #{self.suggestion_id}"


class SuggestionLike(models.Model):
    """One user's vote for a suggestion; at most one per user and suggestion."""

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suggestion_likes")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["suggestion", "user"], name="suggestion_like_once_per_user")]
        verbose_name = "like"

    def __str__(self) -> str:
        return f"{self.user_id} likes #{self.suggestion_id}"
