"""API authentication: knox's hashed tokens, sent as `Authorization: Token <key>`."""
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox import auth


class TokenAuthentication(auth.TokenAuthentication):
    """knox's TokenAuthentication (expired tokens are refused and deleted), recording each token's last use."""

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        token.record_use(timezone.now())
        return user, token


class TokenScheme(KnoxTokenScheme):
    """How the OpenAPI schema describes the header."""

    target_class = "accounts.auth.TokenAuthentication"
    name = "tokenAuth"
