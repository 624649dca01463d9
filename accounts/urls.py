"""Sign-in, password change and the account page."""
from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views


def account_patterns():
    return [
        path("", views.account, name="account"),
        path("tokens/revoke/", views.revoke_token, name="revoke-token"),
        path("tokens/revoke-all/", views.revoke_all_tokens, name="revoke-all-tokens"),
        path("login/", auth_views.LoginView.as_view(), name="login"),
        path("logout/", auth_views.LogoutView.as_view(), name="logout"),
        path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
        path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    ]


urlpatterns = account_patterns()
