"""Rate limits on failed sign-ins and failed token authentications (cache-based, shared by all processes).

A fixed window per identity: after ``limit`` failures within ``window`` seconds of the first one, further
attempts are refused until the window ends, even with the right password or token.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


class FailureLimiter:
    """Counts failures per identity (``username|ip``, ``ip``...) in Django's cache."""

    def __init__(self, scope: str, *, limit_setting: str, window_setting: str) -> None:
        self.scope = scope
        self.limit_setting = limit_setting
        self.window_setting = window_setting

    @property
    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    @property
    def window(self) -> int:
        return int(getattr(settings, self.window_setting))

    def _key(self, ident: str) -> str:
        # Hashed: usernames and addresses are personal data and may hold characters cache backends reject.
        return f"enreach:failures:{self.scope}:{hashlib.sha256(ident.encode()).hexdigest()}"

    def blocked_for(self, ident: str) -> int:
        """Seconds until ``ident`` may try again; 0 when it is not blocked."""
        if self.limit <= 0:
            return 0
        state = cache.get(self._key(ident))
        if not state or state["count"] < self.limit:
            return 0
        return max(1, int(state["until"] - time.time()))

    def record(self, ident: str) -> None:
        """Count one failure."""
        now = time.time()
        state = cache.get(self._key(ident))
        if not state or state["until"] <= now:
            state = {"count": 0, "until": now + self.window}
        state["count"] += 1
        cache.set(self._key(ident), state, timeout=max(1, int(state["until"] - now) + 1))

    def reset(self, ident: str) -> None:
        """Forget the failures (after a success)."""
        cache.delete(self._key(ident))


login_failures = FailureLimiter("login", limit_setting="LOGIN_FAILURE_LIMIT", window_setting="LOGIN_FAILURE_WINDOW")
token_failures = FailureLimiter("token", limit_setting="TOKEN_FAILURE_LIMIT", window_setting="TOKEN_FAILURE_WINDOW")


def wait_text(seconds: int) -> str:
    """ "3 minutes" / "40 seconds"."""
    if seconds >= 60:
        minutes = -(-seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
