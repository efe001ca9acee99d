"""Why a single sign-on could not complete."""

from __future__ import annotations


class SignInError(Exception):
    """Single sign-on could not complete; ``message`` is for the person, ``status`` the page's HTTP status and
    ``code`` the reason in the audit trail."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
