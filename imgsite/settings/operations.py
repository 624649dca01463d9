"""Operating it: log lines, error reports (Sentry, only with a DSN), metrics and health checks."""
import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from imgsite.logs import LOG_FORMATS, logging_config, under_journald
from imgsite.settings.env import envfloat, envint, envstr

# LOG_FORMAT=json: one JSON object per line, with task ids where a task logs (imgsite/logs.py).
LOG_FORMAT = envstr("LOG_FORMAT", "plain")
LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be plain or json")
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL, journald=under_journald())

# Errors go to Sentry only when a DSN is given; sentry_sdk is not even imported otherwise.
SENTRY_DSN = envstr("SENTRY_DSN")
SENTRY_ENVIRONMENT = envstr("SENTRY_ENVIRONMENT", "production")
SENTRY_TRACES_SAMPLE_RATE = envfloat("SENTRY_TRACES_SAMPLE_RATE", 0)
if not 0 <= SENTRY_TRACES_SAMPLE_RATE <= 1:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1")
if SENTRY_DSN:
    if urlsplit(SENTRY_DSN).scheme not in ("http", "https") or not urlsplit(SENTRY_DSN).username:
        raise ImproperlyConfigured("SENTRY_DSN must look like https://KEY@o0.ingest.sentry.io/PROJECT")
    from imgsite.sentry import start_sentry

    start_sentry(SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_TRACES_SAMPLE_RATE)

# /metrics and /healthz/deep are off (404) until one of these says who may call them.
METRICS_TOKEN = envstr("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 20:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 20 characters, e.g. "
                               "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")


def networks(name):
    try:
        return [ipaddress.ip_network(item.strip(), strict=False) for item in envstr(name).split(",") if item.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (use addresses or networks, e.g. 10.0.0.0/16,127.0.0.1)") from None


METRICS_ALLOWED_IPS = networks("METRICS_ALLOWED_IPS")
# Rates, failure counts and latency histograms cover the images finished this long ago or less.
METRICS_WINDOW_SECONDS = envint("METRICS_WINDOW_SECONDS", 300)
HEALTH_CACHE_SECONDS = envfloat("HEALTH_CACHE_SECONDS", 5)
if METRICS_WINDOW_SECONDS < 1 or HEALTH_CACHE_SECONDS < 0:
    raise ImproperlyConfigured("METRICS_WINDOW_SECONDS must be at least 1, HEALTH_CACHE_SECONDS 0 or more")
