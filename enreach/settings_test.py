"""Test settings: django-q2 runs tasks inline (it reads Q_CLUSTER at import, so this cannot be a fixture)."""

import os

os.environ.setdefault("DEBUG", "true")

from enreach.settings import *  # noqa: F403
from enreach.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
