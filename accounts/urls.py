"""Sign-in, password change, the account page; password reset only when mail is configured."""
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views


def password_reset_patterns():
    return [
        path("password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
        path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
        path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
        path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    ]


def account_patterns(password_reset):
    """Without mail a reset link cannot reach anybody: then the reset pages do not exist."""
    return [
        path("", views.account, name="account"),
        path("tokens/revoke/", views.revoke_token, name="revoke-token"),
        path("tokens/revoke-all/", views.revoke_all_tokens, name="revoke-all-tokens"),
        path("login/", auth_views.LoginView.as_view(), name="login"),
        path("logout/", auth_views.LogoutView.as_view(), name="logout"),
        path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
        path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
        *(password_reset_patterns() if password_reset else []),
    ]


urlpatterns = account_patterns(password_reset=settings.PASSWORD_RESET_ENABLED)
