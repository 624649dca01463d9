"""Accounts: API tokens (django-rest-knox), login lockout (django-axes), password reset by mail."""
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envbool, envint, envstr, require

# Tokens are hashed at rest, named, and expire; a user holds a few at most.
KNOX_TOKEN_MODEL = "accounts.ApiToken"
# knox's own token model is swapped for that one: its migrations would only add an unused table
# whose foreign key to users keeps PostgreSQL from truncating them (a test database's flush).
MIGRATION_MODULES = {"knox": None}
API_TOKEN_DAYS = envint("API_TOKEN_DAYS", 90)
API_TOKEN_MAX_DAYS = envint("API_TOKEN_MAX_DAYS", 365)
API_TOKENS_PER_USER = envint("API_TOKENS_PER_USER", 10)
if not 1 <= API_TOKEN_DAYS <= API_TOKEN_MAX_DAYS or API_TOKENS_PER_USER < 1:
    raise ImproperlyConfigured("Need 1 <= API_TOKEN_DAYS <= API_TOKEN_MAX_DAYS and API_TOKENS_PER_USER >= 1")
REST_KNOX = {"TOKEN_TTL": timedelta(days=API_TOKEN_DAYS), "AUTO_REFRESH": False}
# After LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, the site's login
# and the admin's refuse that pair (429) for LOGIN_LOCKOUT_MINUTES, even with the right password.
# Keyed by the pair, so that neither a shared address nor a guessed username locks others out.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.views.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() <= 0:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be positive")
# Password reset exists only when mail can reach people: set EMAIL_HOST (and DEFAULT_FROM_EMAIL).
EMAIL_HOST = envstr("EMAIL_HOST")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "True")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL")
PASSWORD_RESET_ENABLED = bool(EMAIL_HOST)
if PASSWORD_RESET_ENABLED:
    require("DEFAULT_FROM_EMAIL (with EMAIL_HOST)", DEFAULT_FROM_EMAIL)
# Reset mails a client or an address may ask for per hour; more are dropped without a word.
PASSWORD_RESET_RATE = envint("PASSWORD_RESET_RATE", 5)
