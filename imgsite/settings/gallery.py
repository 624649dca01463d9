"""The gallery's pages and the REST API (Django REST Framework and drf-spectacular)."""
from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envfloat, envint, envstr

# Requests per user, e.g. 300/min; DRF counts them in the default cache (CACHES: shared).
API_RATE_LIMIT = envstr("API_RATE_LIMIT", "300/min")
if not (API_RATE_LIMIT.partition("/")[0].isdigit() and API_RATE_LIMIT.partition("/")[2][:1] in ("s", "m", "h", "d")):
    raise ImproperlyConfigured(f"API_RATE_LIMIT={API_RATE_LIMIT!r} must look like 300/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.TokenAuthentication",  # knox: hashed, expiring, named (see Accounts below)
        "rest_framework.authentication.SessionAuthentication",  # the gallery's uploader, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["classifier.api_conventions.UserRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "classifier.api_conventions.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "classifier.api_conventions.exception_handler",
    # X-Forwarded-For entries to believe, counted from the right: one per proxy in front (1 behind
    # an ALB). 0 trusts none, so a client cannot pick the address it is counted under.
    "NUM_PROXIES": envint("NUM_PROXIES", 0),
}
if REST_FRAMEWORK["NUM_PROXIES"] < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 or more")
SPECTACULAR_SETTINGS = {
    "TITLE": "imgsite API",
    "DESCRIPTION": "Upload images, follow their classification and read their labels. "
                   "Send `Authorization: Token <key>`. Make a key on your account page (/accounts/) or with "
                   "`manage.py create_api_token`: it is shown once, stored only as a hash, and expires.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- The gallery's batch and image pages, and the labels they show (#18). ---
# A batch holds at most this many images; uploads refuse the rest (Batch.room()), so that no
# page, poll, API answer or export has to handle an unbounded batch.
MAX_BATCH_IMAGES = envint("MAX_BATCH_IMAGES", 10_000)
# Cards per page of a batch; its status polls answer for the page on screen only.
BATCH_PAGE_SIZE = envint("BATCH_PAGE_SIZE", 100)
# A label whose probability is below this is marked as a guess (pages, API, exports).
LOW_CONFIDENCE_BELOW = envfloat("LOW_CONFIDENCE_BELOW", 0.2)
if MAX_BATCH_IMAGES < 1 or not 1 <= BATCH_PAGE_SIZE <= 1000 or not 0 <= LOW_CONFIDENCE_BELOW <= 1:
    raise ImproperlyConfigured("Need MAX_BATCH_IMAGES >= 1, BATCH_PAGE_SIZE from 1 to 1000 and "
                               "LOW_CONFIDENCE_BELOW from 0 to 1 (e.g. 0.2)")
