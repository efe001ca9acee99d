"""Test settings: django-q2 runs tasks inline (it reads Q_CLUSTER at import, so this cannot be a fixture)."""

import os

os.environ.setdefault("DEBUG", "true")

from enreach.settings import *  # noqa: F403
from enreach.settings import DATABASES, Q_CLUSTER, VAR_DIR

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file rather than memory, so a subprocess (cache_stats, metrics) can open the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
