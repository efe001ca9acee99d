"""Account API shapes."""

from rest_framework import serializers

from accounts.models import User


class MeSerializer(serializers.ModelSerializer):
    """The signed-in user as ``/api/auth/me`` shows them."""

    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    created = serializers.DateTimeField(source="date_joined", read_only=True)

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
