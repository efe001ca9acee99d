"""Account API: who am I, one's profile and tokens, and the admin API over users, roles and global keys.

Each view validates input with a serializer and calls one service; ``AccountError`` becomes a 400 naming the
field, ``GuardRailError`` a 409.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import update_session_auth_hash
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, Throttled, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    GlobalKeySerializer,
    GlobalKeyWriteSerializer,
    MeSerializer,
    PasswordChangedSerializer,
    PasswordChangeSerializer,
    PasswordResetSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    RoleSerializer,
    RoleUpdateSerializer,
    UserCreateSerializer,
    UserCredentialsEndedSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from accounts.audit import AuditContext
from accounts.errors import AccountError, AccountThrottled, GuardRailError
from accounts.global_keys import global_key_delete, global_key_set
from accounts.models import AuditEntry, User
from accounts.permissions import IsAdminRole, capability_required
from accounts.roles import Role
from accounts.tokens import api_token_create, api_token_revoke
from enreach.api import ErrorSerializer
from enreach.schema import ERROR_400, ERROR_409


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The change conflicts with the current state."
    default_code = "conflict"


def _error_body(exc: AccountError) -> dict[str, Any]:
    if not exc.field:
        return {"detail": exc.message}
    if "." in exc.field:
        outer, inner = exc.field.split(".", 1)
        return {outer: {inner: [exc.message]}}
    return {exc.field: [exc.message]}


class AccountErrorsMixin:
    """Map domain errors to HTTP: ``GuardRailError`` -> 409, ``AccountError`` -> 400 with the field named."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, AccountThrottled):
            exc = Throttled(wait=exc.wait, detail=exc.message)
        elif isinstance(exc, GuardRailError):
            # The documented conflict shape ({"detail"}), with the field at fault named as well.
            exc = Conflict({"detail": exc.message, **_error_body(exc)})
        elif isinstance(exc, AccountError):
            exc = ValidationError(_error_body(exc))
        return super().handle_exception(exc)  # type: ignore[misc]

    def audit(self, request: Request) -> AuditContext:
        return AuditContext.from_request(request, source=AuditEntry.Source.API)


def _me(request: Request) -> User:
    """The signed-in user (every view here requires authentication)."""
    return cast(User, request.user)


class MeView(APIView):
    """The signed-in user: identity, role and capabilities."""

    @extend_schema(tags=["auth"], responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


# --- Profile ----------------------------------------------------------------------------------------------------


@extend_schema(tags=["profile"])
class ProfileView(AccountErrorsMixin, APIView):
    """One's own profile: display name, email and preferences."""

    @extend_schema(responses=ProfileSerializer)
    def get(self, request: Request) -> Response:
        return Response(ProfileSerializer(request.user).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=ProfileSerializer)
    def patch(self, request: Request) -> Response:
        data = ProfileUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.profile_update(user=_me(request), by=self.audit(request), **data.validated_data)
        return Response(ProfileSerializer(user).data)


@extend_schema(tags=["profile"])
class PasswordChangeView(AccountErrorsMixin, APIView):
    """Change one's password. Other sessions end; a session making this request stays signed in."""

    @extend_schema(
        request=PasswordChangeSerializer,
        responses={
            200: PasswordChangedSerializer,
            400: ERROR_400,
            429: OpenApiResponse(ErrorSerializer, description="Too many wrong current passwords; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        """Other sessions end and every API token of the user is revoked (the token making this request too)."""
        data = PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.password_change(user=_me(request), by=self.audit(request), **data.validated_data)
        if request.auth is None:  # signed in by session (a token request has none to keep)
            update_session_auth_hash(request._request, _me(request))
        revoked = user.tokens_revoked  # type: ignore[attr-defined]
        detail = f"Password changed: other sessions ended, {revoked} API token{'s' if revoked != 1 else ''} revoked."
        return Response(PasswordChangedSerializer({"detail": detail, "tokens_revoked": revoked}).data)


@extend_schema(tags=["profile"])
class TokenListView(AccountErrorsMixin, APIView):
    """One's personal API tokens: list them, or create one (its secret is answered this once)."""

    @extend_schema(responses=ApiTokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ApiTokenSerializer(selectors.api_token_list(user=_me(request)), many=True).data)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = api_token_create(user=_me(request), by=self.audit(request), **data.validated_data)
        token.token = secret  # type: ignore[attr-defined]
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["profile"])
class TokenDetailView(AccountErrorsMixin, APIView):
    """Revoke one of one's tokens (other people's tokens are 404 here; admins revoke them in the admin)."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        token = selectors.api_token_list(user=_me(request)).filter(pk=pk).first()
        if token is None:
            raise Http404("No such token.")
        api_token_revoke(token=token, by=self.audit(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Admin API -----------------------------------------------------------------------------------------------------


@extend_schema(tags=["admin"])
class UserAdminViewSet(AccountErrorsMixin, viewsets.GenericViewSet):
    """Provision users (admins only): list, create, update role/active/email/name, deactivate, reset password.

    There is no delete: deactivate instead, which keeps the user's history.
    """

    permission_classes = [IsAdminRole]
    serializer_class = UserSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return User.objects.none()
        role = self.request.query_params.get("role")
        if role and role not in Role.values:
            raise ValidationError({"role": [f"Choose one of: {', '.join(Role.values)}."]})
        active = self.request.query_params.get("is_active")
        if active not in (None, "", "true", "false"):
            raise ValidationError({"is_active": ["Use true or false."]})
        return selectors.user_list(role=role, is_active=None if not active else active == "true")

    def _user(self) -> User:
        return self.get_object()

    @extend_schema(
        parameters=[OpenApiParameter("role", str, enum=Role.values), OpenApiParameter("is_active", bool)],
        responses=UserSerializer(many=True),
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(UserSerializer(page, many=True).data)

    @extend_schema(responses=UserSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(UserSerializer(self._user()).data)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request: Request) -> Response:
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(by=self.audit(request), **data.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer, 409: OpenApiResponse()})
    def partial_update(self, request: Request, pk: str) -> Response:
        data = UserUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_update(user=self._user(), by=self.audit(request), **data.validated_data)
        return Response(UserSerializer(user).data)

    @extend_schema(request=None, responses={200: UserCredentialsEndedSerializer, 409: ERROR_409})
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, pk: str) -> Response:
        """Deactivate a user: sign-in and sessions stop, every API token is revoked (``tokens_revoked``)."""
        user = services.user_deactivate(user=self._user(), by=self.audit(request))
        user.tokens_revoked = getattr(user, "tokens_revoked", 0)  # type: ignore[attr-defined]
        return Response(UserCredentialsEndedSerializer(user).data)

    @extend_schema(request=PasswordResetSerializer, responses={200: UserCredentialsEndedSerializer, 400: ERROR_400})
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request: Request, pk: str) -> Response:
        """Set a new password: the user's sessions end and every API token is revoked (``tokens_revoked``)."""
        data = PasswordResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_set_password(user=self._user(), by=self.audit(request), **data.validated_data)
        return Response(UserCredentialsEndedSerializer(user).data)


@extend_schema(tags=["admin"])
class RoleAdminViewSet(AccountErrorsMixin, viewsets.ViewSet):
    """Roles and their capabilities (admins only). The admin role always holds every capability."""

    permission_classes = [IsAdminRole]
    lookup_field = "name"
    lookup_value_regex = r"[a-z]+"

    @extend_schema(responses=RoleSerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(RoleSerializer(selectors.role_list(), many=True).data)

    def _role(self, name: str) -> dict[str, object]:
        role = next((r for r in selectors.role_list() if r["name"] == name), None)
        if role is None:
            raise Http404("No such role.")
        return role

    @extend_schema(responses=RoleSerializer)
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(RoleSerializer(self._role(name)).data)

    @extend_schema(request=RoleUpdateSerializer, responses=RoleSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        self._role(name)
        data = RoleUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.role_set_capabilities(role=name, by=self.audit(request), **data.validated_data)
        return Response(RoleSerializer(self._role(name)).data)


@extend_schema(tags=["admin"])
class GlobalKeyViewSet(AccountErrorsMixin, viewsets.ViewSet):
    """Global keys (``keys.manage``): listed masked, set with PUT, removed with DELETE. Values are never shown."""

    permission_classes = [capability_required("keys.manage")]
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9][a-z0-9_-]*"

    @extend_schema(responses=GlobalKeySerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(GlobalKeySerializer(selectors.global_key_list(), many=True).data)

    @extend_schema(responses=GlobalKeySerializer)
    def retrieve(self, request: Request, name: str) -> Response:
        key = selectors.global_key_list().filter(name=name).first()
        if key is None:
            raise Http404("No such key.")
        return Response(GlobalKeySerializer(key).data)

    @extend_schema(request=GlobalKeyWriteSerializer, responses={200: GlobalKeySerializer, 201: GlobalKeySerializer})
    def update(self, request: Request, name: str) -> Response:
        data = GlobalKeyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        existed = selectors.global_key_list().filter(name=name).exists()
        key = global_key_set(name=name, by=self.audit(request), **data.validated_data)
        return Response(
            GlobalKeySerializer(key).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        if not selectors.global_key_list().filter(name=name).exists():
            raise Http404("No such key.")
        global_key_delete(name=name, by=self.audit(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
