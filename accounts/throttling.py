"""Rate limits on failed sign-ins, current-password checks and token authentications.

Counting is atomic: each attempt or failure is one ``add`` + ``incr`` on a fixed-window key in Django's cache
(Redis ``INCR``; on the database cache the row is locked for the read-modify-write, see ``_incr_locked``), and the
caller acts on the count that increment returned, so 20 parallel attempts cannot all read "under the limit".

Who is counted:

- **Passwords** (sign-in page, admin sign-in, current-password checks): an attempt is counted *before* the password
  is checked, per username (or account) at the client's address and per address across usernames; an attempt
  over either limit is refused without checking. A success gives its attempt back. Only failures from the same
  address count, so another client's failures never lock anybody out.
- **Tokens**: the token is looked up *first*; a valid token always works. Failures are counted per address and per
  token prefix, and a failure over the limit answers 429 instead of 401.

The client's address is ``REMOTE_ADDR`` unless it is a trusted proxy (``TRUSTED_PROXIES``), see ``client_ip``.

The cache may be down (Redis outage): every limiter then lets requests through and logs a warning, it never
answers an error of its own.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router, transaction
from django.http import HttpRequest

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- The client's address ----------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _trusted(setting: str) -> tuple[int, tuple[Network, ...]]:
    """``TRUSTED_PROXIES`` parsed: a number of proxies in front of the app, or networks whose hops are trusted."""
    value = setting.strip()
    if not value:
        return 0, ()
    if value.isdigit():
        return int(value), ()
    return 0, tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_ip(request: HttpRequest | None) -> str:
    """The real client's address.

    ``X-Forwarded-For`` is read only through ``TRUSTED_PROXIES``: with a count N, the Nth address from the right
    (each proxy appends the address it saw); with networks, the right-most address that is not a trusted proxy,
    and only when ``REMOTE_ADDR`` itself is one. Anything a client could have forged is ignored.
    """
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    count, networks = _trusted(str(getattr(settings, "TRUSTED_PROXIES", "") or ""))
    if not count and not networks:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if count:
        # REMOTE_ADDR is the last proxy; the client is the address the first proxy appended.
        return hops[-count] if len(hops) >= count and _is_ip(hops[-count]) else remote

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not trusted(remote):
        return remote
    for hop in reversed(hops):
        if not trusted(hop):
            return hop if _is_ip(hop) else remote
    return hops[0] if hops else remote


# --- Atomic counters -----------------------------------------------------------------------------------------------


def _db_cache() -> DatabaseCache | None:
    """Django's database cache behind ``cache`` (the default alias is a proxy), or None for other backends."""
    backend = caches["default"]
    return backend if isinstance(backend, DatabaseCache) else None


def _incr_locked(db_cache: DatabaseCache, key: str, timeout: int, delta: int) -> int:
    """``incr`` on Django's database cache, which implements it as get + set: lock the row for the round trip.

    SQLite runs transactions as ``BEGIN IMMEDIATE`` here (settings), which serialises writers; PostgreSQL locks the
    row with ``SELECT ... FOR UPDATE``.
    """
    db = router.db_for_write(db_cache.cache_model_class)
    db_cache.add(key, 0, timeout=timeout)
    with transaction.atomic(using=db):
        connection = connections[db]
        if connection.features.has_select_for_update:
            table = connection.ops.quote_name(db_cache._table)  # type: ignore[attr-defined]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT cache_key FROM {table} WHERE cache_key = %s FOR UPDATE",  # noqa: S608 (quoted name)
                    [db_cache.make_and_validate_key(key)],
                )
        value = db_cache.get(key)
        if value is None:
            raise ValueError("The cache lost the counter.")
        value = int(value) + delta
        db_cache.set(key, value, timeout=timeout)
    return value


def _incr(key: str, timeout: int, delta: int = 1) -> int | None:
    """Add ``delta`` to ``key`` (created for ``timeout`` seconds); the new count, or None when the cache fails."""
    try:
        db_cache = _db_cache()
        if db_cache is not None:
            return _incr_locked(db_cache, key, timeout, delta)
        cache.add(key, 0, timeout=timeout)
        try:
            return int(cache.incr(key, delta))
        except ValueError:
            # Expired between add and incr, or a cache that answers every call with a miss (Redis down).
            if cache.add(key, delta, timeout=timeout):
                return delta
            return int(cache.incr(key, delta))
    except Exception as exc:  # a limiter must never take the site down with the cache
        logger.warning("Rate limiting is off for this request: the cache failed (%s).", type(exc).__name__)
        return None


def _count(key: str) -> int:
    try:
        return int(cache.get(key) or 0)
    except Exception as exc:
        logger.warning("Rate limiting is off for this request: the cache failed (%s).", type(exc).__name__)
        return 0


@dataclass(frozen=True, slots=True)
class Limit:
    """A named limit: at most ``limit`` per ``window`` seconds (fixed windows aligned on the clock)."""

    scope: str
    limit_setting: str
    window_setting: str

    @property
    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    @property
    def window(self) -> int:
        return max(1, int(getattr(settings, self.window_setting)))

    def _bucket(self) -> tuple[int, int]:
        """(window number, seconds until it ends)."""
        now = time.time()
        number = int(now // self.window)
        return number, max(1, int((number + 1) * self.window - now))

    def key(self, ident: str) -> str:
        # Hashed: usernames and addresses are personal data and may hold characters cache backends reject.
        digest = hashlib.sha256(ident.encode()).hexdigest()
        return f"enreach:limit:{self.scope}:{self._bucket()[0]}:{digest}"

    def hit(self, ident: str) -> tuple[bool, int]:
        """Count one attempt or failure: (over the limit?, seconds until the window ends). Open when the cache fails."""
        if self.limit <= 0:
            return False, 0
        wait = self._bucket()[1]
        count = _incr(self.key(ident), wait + 1)
        if count is None:
            return False, 0
        return count > self.limit, wait

    def give_back(self, ident: str) -> None:
        """Take one attempt back (it succeeded)."""
        if self.limit > 0 and self.count(ident) > 0:
            _incr(self.key(ident), self._bucket()[1] + 1, delta=-1)

    def reset(self, ident: str) -> None:
        """Forget the attempts of ``ident`` in this window."""
        try:
            cache.delete(self.key(ident))
        except Exception as exc:
            logger.warning("Could not reset a rate limit: the cache failed (%s).", type(exc).__name__)

    def count(self, ident: str) -> int:
        """Attempts or failures counted for ``ident`` in this window (0 when the cache fails)."""
        return _count(self.key(ident))


# Passwords: per username (or account) at an address, and per address across usernames.
password_attempts = Limit("password", "LOGIN_FAILURE_LIMIT", "LOGIN_FAILURE_WINDOW")
address_password_attempts = Limit("password-address", "LOGIN_ADDRESS_FAILURE_LIMIT", "LOGIN_FAILURE_WINDOW")
# Tokens: failures per address and per token prefix.
token_failures = Limit("token", "TOKEN_FAILURE_LIMIT", "TOKEN_FAILURE_WINDOW")
token_prefix_failures = Limit("token-prefix", "TOKEN_FAILURE_LIMIT", "TOKEN_FAILURE_WINDOW")


class TooManyAttempts(Exception):
    """Refused without checking: too many attempts from this address. ``wait`` is in seconds."""

    def __init__(self, wait: int, message: str) -> None:
        super().__init__(message)
        self.wait = wait
        self.message = message


@dataclass(slots=True)
class PasswordAttempt:
    """One counted password attempt; ``succeeded()`` gives it back."""

    ident: str
    address: str
    _open: bool = True

    def succeeded(self) -> None:
        if self._open:
            self._open = False
            password_attempts.reset(self.ident)
            address_password_attempts.give_back(self.address)


def password_attempt_begin(*, account: str, address: str, what: str = "sign-ins") -> PasswordAttempt:
    """Count an attempt to check a password for ``account`` from ``address``; raise ``TooManyAttempts`` when over.

    Call before checking the password, and ``succeeded()`` on the result when it was right.
    """
    ident = f"{account.strip().lower()}|{address}"
    over_account, wait_account = password_attempts.hit(ident)
    over_address, wait_address = address_password_attempts.hit(f"addr|{address}")
    if over_account or over_address:
        wait = max(wait_account if over_account else 0, wait_address if over_address else 0)
        scope = "for this account from your address" if over_account else "from your address"
        raise TooManyAttempts(wait, f"Too many failed {what} {scope}. Try again in {wait_text(wait)}.")
    return PasswordAttempt(ident=ident, address=f"addr|{address}")


def token_failure_record(*, address: str, prefix: str) -> int:
    """Count a failed token authentication; the seconds to wait when over the limit, else 0."""
    over_address, wait_address = token_failures.hit(address)
    over_prefix, wait_prefix = token_prefix_failures.hit(prefix) if prefix else (False, 0)
    if over_address or over_prefix:
        return max(wait_address, wait_prefix)
    return 0


def wait_text(seconds: int) -> str:
    """ "3 minutes" / "40 seconds"."""
    if seconds >= 60:
        minutes = -(-seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
