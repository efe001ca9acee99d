"""Account API shapes. The management command prints the same shapes (``UserSerializer``, ``GlobalKeySerializer``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import ApiToken, GlobalKey, User
from accounts.preferences import preferences_effective
from accounts.roles import CAPABILITIES, Role


class UserSerializer(serializers.ModelSerializer):
    """A user as ``/api/auth/me``, ``/api/admin/users/`` and ``manage.py users --json`` show them."""

    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    created = serializers.DateTimeField(source="date_joined", read_only=True)
    # Plain text in the schema: an account without an address has "" (not a valid "format: email" value).
    email = serializers.CharField(read_only=True, help_text="An email address, or empty.")

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "display_name",
            "email",
            "role",
            "capabilities",
            "is_active",
            "created",
            "last_login",
        ]
        read_only_fields = fields


class UserCredentialsEndedSerializer(UserSerializer):
    """A user after a password reset or deactivation: their API tokens were revoked, this many."""

    tokens_revoked = serializers.IntegerField(read_only=True, help_text="API tokens revoked by this change.")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "tokens_revoked"]
        read_only_fields = fields


class PasswordChangedSerializer(serializers.Serializer):
    """The answer to one's own password change: other sessions ended and one's API tokens were revoked."""

    detail = serializers.CharField()
    tokens_revoked = serializers.IntegerField()


# The signed-in user as ``/api/auth/me`` shows them.
MeSerializer = UserSerializer


class ProfileSerializer(UserSerializer):
    """One's own profile: identity plus preferences (defaults filled in)."""

    preferences = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "preferences"]
        read_only_fields = fields

    def get_preferences(self, user: User) -> dict[str, Any]:
        return preferences_effective(user.preferences)


class ProfileUpdateSerializer(serializers.Serializer):
    """What a PATCH of the profile may send; absent fields are left alone."""

    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    preferences = serializers.DictField(
        required=False,
        help_text="time_zone (IANA name), theme (system/light/dark), export_dataset (devices/vms/merged)",
    )


class PasswordChangeSerializer(serializers.Serializer):
    current_password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
    new_password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})


class ApiTokenSerializer(serializers.ModelSerializer):
    """A personal token as listed: never the secret."""

    active = serializers.BooleanField(source="is_usable", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "prefix", "label", "read_only", "created", "expires", "last_used", "revoked", "active"]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    """The answer to creating a token: the only time ``token`` (the secret) is shown."""

    token = serializers.CharField(read_only=True)

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")  # type: ignore[assignment]
    expires = serializers.DateTimeField(required=False, allow_null=True, default=None)
    read_only = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class UserUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class PasswordResetSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})


class RoleSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    users = serializers.IntegerField(read_only=True, help_text="Active users holding the role.")


class RoleUpdateSerializer(serializers.Serializer):
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=list(CAPABILITIES)), allow_empty=True, help_text="The role's capabilities"
    )


class GlobalKeySerializer(serializers.ModelSerializer):
    """A global key as shown anywhere: a masked hint, never the value."""

    value = serializers.CharField(source="masked", read_only=True, help_text="Masked: ••••abcd.")
    updated_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = GlobalKey
        fields = ["name", "label", "url", "value", "updated", "updated_by"]
        read_only_fields = fields


class GlobalKeyWriteSerializer(serializers.Serializer):
    value = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The secret; omit to keep the stored one.", max_length=10000
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=150)  # type: ignore[assignment]
    url = serializers.CharField(required=False, allow_blank=True, max_length=500)
