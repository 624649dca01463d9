from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People's accounts: API tokens, the account page, login protection and password reset."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
