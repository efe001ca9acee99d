"""Every API URL rejects anonymous users; only the documented public ones answer them."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

PUBLIC = {"api/health/"}
# HTML pages under /api/ send anonymous people to the sign-in page instead.
PAGES = {"api/docs/", "api/redoc/"}


def iter_routes(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from iter_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def _sample(group: re.Match) -> str:
    """A value the route's parameter pattern accepts (ids, names, keys)."""
    return next((value for value in ("1", "admin", "netbox", "x") if re.fullmatch(group.group(1), value)), "1")


def concrete(route: str) -> str | None:
    """A request path for a route, with every parameter filled in; None for format-suffix variants."""
    if "format" in route:
        return None
    path = re.sub(r"\(\?P<\w+>([^)]*)\)", _sample, route)
    path = re.sub(r"<(?:(\w+):)?(\w+)>", "1", path)
    path = path.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "/")
    return "/" + path


API_PATHS = sorted({p for p in map(concrete, iter_routes()) if p and p.startswith("/api/")})


def test_the_api_has_routes():
    assert "/api/auth/me/" in API_PATHS and "/api/schema/" in API_PATHS


@pytest.mark.django_db
@pytest.mark.parametrize("path", [p for p in API_PATHS if p.lstrip("/") not in PUBLIC])
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_is_rejected(path, method):
    response = getattr(APIClient(), method)(path)
    if path.lstrip("/") in PAGES:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    else:
        assert response.status_code in (401, 403), f"{method.upper()} {path} answered {response.status_code}"


@pytest.mark.django_db
def test_bad_bearer_token_is_rejected_with_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert client.get("/api/auth/me").status_code == 401


@pytest.mark.django_db
def test_signed_in_user_reads_schema_and_docs(client_for):
    client = client_for("viewer")
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_web_pages_redirect_anonymous_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/admin/").status_code == 302
