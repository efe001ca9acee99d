"""Chat sessions, their messages, and users' own provider keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models

DEFAULT_TITLE = "New chat"


class ChatSession(models.Model):
    """One conversation of one user with the assistant."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, default=DEFAULT_TITLE)
    context = models.JSONField(
        default=dict, blank=True, help_text="Context variables given to the assistant (e.g. a site or tenant)."
    )
    provider = models.CharField(max_length=200, blank=True, help_text="Host of the provider that last answered.")
    model = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True, db_index=True, help_text="Last activity; retention counts from it.")

    class Meta:
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["owner", "-updated"], name="chat_session_owner_updated")]

    def __str__(self) -> str:
        return f"{self.title} ({self.owner_id})"


class ChatMessage(models.Model):
    """A message of a session: the user's, the assistant's (text or tool calls), or a tool's result."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System"
        TOOL = "tool", "Tool"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # Assistant messages calling tools, in the provider's shape: [{"id", "type": "function", "function": {...}}].
    tool_calls = models.JSONField(default=list, blank=True)
    # Tool messages: which call they answer and the tool's name.
    tool_call_id = models.CharField(max_length=200, blank=True)
    tool_name = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Assistant answers: what the answer rests on (``chat.grounding``): the export run read and the look-ups made.
    grounding = models.JSONField(default=dict, blank=True)
    # Assistant answers cut short (provider error, dropped connection, stop): why; the content is what arrived.
    interrupted = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class ChatUserKey(models.Model):
    """A user's own provider key, tried before the global key. Encrypted like the global keys
    (``accounts.keys``); never shown back, only a hint of its last characters."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_key")
    value_encrypted = models.TextField(editable=False)
    hint = models.CharField(max_length=4, blank=True, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "chat user key"

    def __str__(self) -> str:
        return f"chat key of user {self.user_id}"

    @property
    def masked(self) -> str:
        return "••••" + self.hint
