"""Django itself: debug and the secret key, hosts and origins, apps and middleware, templates,
the database, passwords, time, the shared cache and static files."""
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envbool, envstr, require

BASE_DIR = Path(__file__).resolve().parents[2]

# Off unless asked for: `make run`, `make test` and tests/settings.py set DEBUG=true.
DEBUG = envbool("DEBUG", "False")
# Known to everyone who reads this file, so accepted with DEBUG on only.
DEV_SECRET_KEY = "dev-only-secret-key-not-for-production"
SECRET_KEY = envstr("SECRET_KEY", DEV_SECRET_KEY if DEBUG else "")
require("SECRET_KEY", SECRET_KEY)
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY == DEV_SECRET_KEY
                  or SECRET_KEY.startswith("django-insecure-")):
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters with DEBUG off, e.g. "
                               "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'")
ALLOWED_HOSTS = envstr("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in envstr("CSRF_TRUSTED_ORIGINS").split(",") if o]


def site_origins():
    """The origins the site's pages are served from, which browsers upload to the bucket from
    (the bucket's CORS rule): UPLOAD_ORIGINS, else CSRF_TRUSTED_ORIGINS, else https:// and each
    ALLOWED_HOSTS name; in DEBUG, any port of this machine."""
    if origins := [o for o in envstr("UPLOAD_ORIGINS").split(",") if o]:
        return origins
    if CSRF_TRUSTED_ORIGINS:
        return CSRF_TRUSTED_ORIGINS
    if DEBUG:
        return ["http://127.0.0.1:*", "http://localhost:*"]
    return [f"https://{'*' if host.startswith('.') else ''}{host}" for host in ALLOWED_HOSTS if host and host != "*"]


UPLOAD_ORIGINS = site_origins()
for _origin in UPLOAD_ORIGINS:
    if urlsplit(_origin.replace("*", "x")).scheme not in ("http", "https") or _origin.count("*") > 1:
        raise ImproperlyConfigured(f"UPLOAD_ORIGINS: {_origin!r} must be an http(s) origin with at most one *")

# Where local state lives: the SQLite database and the built model artifacts.
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "classifier",
    "scaling",
    "deploy",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "knox",
    "axes",
    "accounts",
]

MIDDLEWARE = [
    # Load balancers probe /healthz by IP address over plain HTTP: it answers before the host check.
    "imgsite.health.answer_health_checks",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # login lockout (imgsite/settings/accounts.py)
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy (imgsite/settings/security.py)
]

ROOT_URLCONF = "imgsite.urls"
WSGI_APPLICATION = "imgsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


SQLITE_OPTIONS = {
    # WAL lets the web and the workers read while one writes; IMMEDIATE transactions
    # plus a busy timeout turn lock contention into waiting instead of errors.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}


def database_from_url(url):
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    try:
        database = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.update(OPTIONS=SQLITE_OPTIONS, CONN_MAX_AGE=0)
    return database


DATABASES = {"default": database_from_url(envstr("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "classifier:batches"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Shared by every process on every host, so the API's rate limits count across gunicorn workers
# and web hosts: the database (`manage.py createcachetable` makes the table), or Redis.
REDIS_URL = envstr("REDIS_URL")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must be a redis://, rediss:// or unix:// URL")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
          if REDIS_URL else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "imgsite_cache"}}

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
