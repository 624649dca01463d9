"""The site's URLs as they are when mail is configured (EMAIL_HOST set): password reset exists."""
from django.urls import include, path

from accounts.urls import account_patterns

urlpatterns = [
    path("accounts/", include(account_patterns(password_reset=True))),
    path("", include("classifier.urls")),
]
