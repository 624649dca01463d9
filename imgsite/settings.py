"""imgsite settings: one module, driven by the environment, failing loudly on bad values."""
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from boto3.s3.transfer import TransferConfig
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name, default=""):
    return os.environ.get(name, default)


def envbool(name, default="False"):
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def envint(name, default):
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def envfloat(name, default):
    value = os.environ.get(name, str(default))
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None


def require(name, value):
    if not value:
        raise ImproperlyConfigured(f"{name} must be set")
    return value


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

# Where local state lives: the SQLite database and the built model artifacts.
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "imgsite",
    "classifier",
    "scaling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
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

# --- AWS: S3 for images, SQS for jobs. An empty endpoint means real AWS. ---
AWS_ENDPOINT_URL = envstr("AWS_ENDPOINT_URL")
if AWS_ENDPOINT_URL and urlsplit(AWS_ENDPOINT_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"AWS_ENDPOINT_URL={AWS_ENDPOINT_URL!r} must be an http(s) URL")
AWS_REGION = require("AWS_REGION", envstr("AWS_REGION", "us-east-1"))
IMAGE_BUCKET = require("IMAGE_BUCKET", envstr("IMAGE_BUCKET", "imgsite-images"))
CLASSIFY_QUEUE = require("CLASSIFY_QUEUE", envstr("CLASSIFY_QUEUE", "imgsite-classify"))
DEAD_LETTER_QUEUE = require("DEAD_LETTER_QUEUE", envstr("DEAD_LETTER_QUEUE", "imgsite-classify-dlq"))
# A message that crashes its worker this many times moves to the dead-letter queue.
MAX_RECEIVE_COUNT = envint("MAX_RECEIVE_COUNT", 3)
# Seconds a received message stays hidden; far above the longest task (a group takes ~1 s).
SQS_VISIBILITY_TIMEOUT = envint("SQS_VISIBILITY_TIMEOUT", 300)
PRESIGNED_URL_EXPIRY = envint("PRESIGNED_URL_EXPIRY", 300)

STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": IMAGE_BUCKET,
            "region_name": AWS_REGION,
            "endpoint_url": AWS_ENDPOINT_URL or None,
            "signature_version": "s3v4",
            "addressing_style": "path" if AWS_ENDPOINT_URL else "virtual",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": PRESIGNED_URL_EXPIRY,
            # Keys are fresh UUIDs, so there is nothing to overwrite: skip the HEAD per upload.
            "file_overwrite": True,
            # Images are small: one PutObject in the calling thread beats a transfer-manager
            # thread pool per file (bench/pipeline.py).
            "transfer_config": TransferConfig(use_threads=False, multipart_threshold=64 * 1024 * 1024),
            "object_parameters": {"ServerSideEncryption": "AES256"},
        },
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Uploads: every file goes to a temporary file, never into memory. ---
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
MAX_FILES_PER_REQUEST = envint("MAX_FILES_PER_REQUEST", 500)
# Uploads of one request stream to S3 this many at a time (round trips overlap).
UPLOAD_STORE_THREADS = envint("UPLOAD_STORE_THREADS", 4)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_REQUEST
# Images per SQS message: fewer, larger messages keep SQS cheap and let workers batch.
IMAGES_PER_MESSAGE = envint("IMAGES_PER_MESSAGE", 16)


def broker_url():
    """Derive the kombu SQS URL from AWS_ENDPOINT_URL unless CELERY_BROKER_URL is given."""
    if envstr("CELERY_BROKER_URL"):
        return envstr("CELERY_BROKER_URL")
    if not AWS_ENDPOINT_URL:
        return "sqs://"
    endpoint = urlsplit(AWS_ENDPOINT_URL)
    key = envstr("AWS_ACCESS_KEY_ID", "testing")
    secret = envstr("AWS_SECRET_ACCESS_KEY", "testing")
    return f"sqs://{key}:{secret}@{endpoint.netloc}//"


CELERY_BROKER_URL = broker_url()
if not CELERY_BROKER_URL.startswith("sqs://"):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} must be an sqs:// URL")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "region": AWS_REGION,
    "is_secure": urlsplit(AWS_ENDPOINT_URL).scheme == "https" if AWS_ENDPOINT_URL else True,
    "visibility_timeout": SQS_VISIBILITY_TIMEOUT,
    "wait_time_seconds": envint("SQS_WAIT_TIME_SECONDS", 10),
    "polling_interval": 0,
}
CELERY_TASK_DEFAULT_QUEUE = CLASSIFY_QUEUE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # SQS has no broadcast; busy state lives in the database
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is killed well before its message becomes visible again, so a claim older than
# this belongs to a dead worker and may be taken over by the redelivered message.
TASK_TIME_LIMIT = int(SQS_VISIBILITY_TIMEOUT * 0.8)
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMIT
# An image claimed this long ago, or queued this long ago while the queue is empty, has lost
# its message: every delivery SQS would make (maxReceiveCount of them) has run out by then.
STALE_AFTER_SECONDS = envint("STALE_AFTER_SECONDS", SQS_VISIBILITY_TIMEOUT * (MAX_RECEIVE_COUNT + 1) + 60)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- The classifier. ---
CLASSIFIER_MODEL = envstr("CLASSIFIER_MODEL", "efficientnet_lite0")
# LiteRT runs the same converted model ~2-4x faster than Keras on CPU, in a sixth of the
# memory (bench/model.py); TensorFlow stays the source of the model. ResNet50 is Keras-only.
CLASSIFIER_RUNTIME = envstr("CLASSIFIER_RUNTIME", "litert" if CLASSIFIER_MODEL == "efficientnet_lite0" else "keras")
if CLASSIFIER_RUNTIME not in ("keras", "litert"):
    raise ImproperlyConfigured(f"CLASSIFIER_RUNTIME={CLASSIFIER_RUNTIME!r} must be keras or litert")
MODEL_DIR = Path(envstr("MODEL_DIR", str(VAR_DIR / "models")))
RESNET50_WEIGHTS = envstr("RESNET50_WEIGHTS", str(MODEL_DIR / "resnet50_imagenet.weights.h5"))
CLASSIFIER_TOP_K = envint("CLASSIFIER_TOP_K", 5)
# Inference threads per worker process; 0 means one per core. With several worker
# processes on one machine, keep processes × threads ≤ cores.
CLASSIFIER_THREADS = envint("CLASSIFIER_THREADS", 0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- The autoscaler and its fleets. ---
AUTOSCALE_BACKEND = envstr("AUTOSCALE_BACKEND", "local")
if AUTOSCALE_BACKEND not in ("local", "ec2", "asg"):
    raise ImproperlyConfigured(f"AUTOSCALE_BACKEND={AUTOSCALE_BACKEND!r} must be local, ec2 or asg")
AUTOSCALE_MIN_NODES = envint("AUTOSCALE_MIN_NODES", 0)
# 2 suits one machine (the local backend); a production fleet uses e.g. 30 (see docs/deploy.md).
AUTOSCALE_MAX_NODES = envint("AUTOSCALE_MAX_NODES", 2)
AUTOSCALE_INTERVAL = envfloat("AUTOSCALE_INTERVAL", 15)
AUTOSCALE_ACCEPTABLE_LATENCY = envfloat("AUTOSCALE_ACCEPTABLE_LATENCY", 5)
AUTOSCALE_SECONDS_PER_IMAGE = envfloat("AUTOSCALE_SECONDS_PER_IMAGE", 0.5)
AUTOSCALE_MAX_STEP = envint("AUTOSCALE_MAX_STEP", 30)
AUTOSCALE_STABILIZATION_SECONDS = envfloat("AUTOSCALE_STABILIZATION_SECONDS", 120)
AUTOSCALE_SCALE_TO_ZERO_SECONDS = envfloat("AUTOSCALE_SCALE_TO_ZERO_SECONDS", 60)
AUTOSCALE_TOLERANCE = envfloat("AUTOSCALE_TOLERANCE", 0.1)
# A node that is still busy this long after it was asked to drain is retired anyway;
# SQS then redelivers its task.
AUTOSCALE_DRAIN_TIMEOUT = envfloat("AUTOSCALE_DRAIN_TIMEOUT", TASK_TIME_LIMIT + 30)
if not 0 <= AUTOSCALE_MIN_NODES <= AUTOSCALE_MAX_NODES:
    raise ImproperlyConfigured("AUTOSCALE_MIN_NODES must be between 0 and AUTOSCALE_MAX_NODES")
if AUTOSCALE_ACCEPTABLE_LATENCY <= 0 or AUTOSCALE_SCALE_TO_ZERO_SECONDS <= 0 or AUTOSCALE_MAX_STEP < 1:
    raise ImproperlyConfigured("AUTOSCALE_ACCEPTABLE_LATENCY and AUTOSCALE_SCALE_TO_ZERO_SECONDS must be "
                               "positive, and AUTOSCALE_MAX_STEP at least 1")
WORKER_HEARTBEAT_SECONDS = envfloat("WORKER_HEARTBEAT_SECONDS", 5)
WORKER_STALE_SECONDS = envfloat("WORKER_STALE_SECONDS", 60)
# Names the workers' instances, role and launch template; the autoscaler terminates what carries
# it, so two deployments must never share it by default.
FLEET_NAME = envstr("FLEET_NAME", "imgsite-workers" if AUTOSCALE_BACKEND == "local" else "")
if not FLEET_NAME:
    raise ImproperlyConfigured(f"FLEET_NAME must be set with AUTOSCALE_BACKEND={AUTOSCALE_BACKEND} "
                               "(it names this deployment's worker instances)")
EC2_LAUNCH_TEMPLATE = envstr("EC2_LAUNCH_TEMPLATE")
EC2_AMI_ID = envstr("EC2_AMI_ID")
EC2_INSTANCE_TYPE = envstr("EC2_INSTANCE_TYPE", "c7i.large")
EC2_INSTANCE_PROFILE = envstr("EC2_INSTANCE_PROFILE")
EC2_SUBNET_ID = envstr("EC2_SUBNET_ID")
EC2_SECURITY_GROUP_IDS = [g for g in envstr("EC2_SECURITY_GROUP_IDS").split(",") if g]
EC2_USER_DATA_FILE = envstr("EC2_USER_DATA_FILE")
ASG_NAME = envstr("ASG_NAME", "imgsite-workers")

# --- The gallery, the REST API (Django REST Framework + drf-spectacular) and .zip uploads. ---
INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "drf_spectacular", "drf_spectacular_sidecar"]
# A request body larger than this is refused with 413 before it is read. The gallery sends
# large selections in several requests of at most UPLOAD_REQUEST_FILES files / UPLOAD_REQUEST_BYTES.
MAX_REQUEST_BYTES = envint("MAX_REQUEST_BYTES", 256 * 1024 * 1024)
UPLOAD_REQUEST_FILES = envint("UPLOAD_REQUEST_FILES", 20)
UPLOAD_REQUEST_BYTES = envint("UPLOAD_REQUEST_BYTES", 16 * 1024 * 1024)
# A .zip is expanded on the server, one member at a time, within these limits.
MAX_ARCHIVE_BYTES = envint("MAX_ARCHIVE_BYTES", 200 * 1024 * 1024)
MAX_ARCHIVE_MEMBERS = envint("MAX_ARCHIVE_MEMBERS", MAX_FILES_PER_REQUEST)
MAX_ARCHIVE_UNCOMPRESSED_BYTES = envint("MAX_ARCHIVE_UNCOMPRESSED_BYTES", 1024 * 1024 * 1024)
MAX_ARCHIVE_RATIO = envint("MAX_ARCHIVE_RATIO", 100)
if not MAX_UPLOAD_BYTES <= MAX_ARCHIVE_BYTES <= MAX_REQUEST_BYTES:
    raise ImproperlyConfigured("Need MAX_UPLOAD_BYTES <= MAX_ARCHIVE_BYTES <= MAX_REQUEST_BYTES")
# Requests per user, e.g. 300/min; DRF counts them in the default cache (CACHES: shared).
API_RATE_LIMIT = envstr("API_RATE_LIMIT", "300/min")
if not (API_RATE_LIMIT.partition("/")[0].isdigit() and API_RATE_LIMIT.partition("/")[2][:1] in ("s", "m", "h", "d")):
    raise ImproperlyConfigured(f"API_RATE_LIMIT={API_RATE_LIMIT!r} must look like 300/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
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
                   "Send `Authorization: Token <key>`; get a key from an admin or `manage.py create_api_token`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Deployment (worker_ami/, docs/deploy.md): worker secrets, the health check, HTTPS. ---
# Worker machines read DATABASE_URL and SECRET_KEY from SSM Parameter Store under this path.
SSM_PARAMETER_PREFIX = envstr("SSM_PARAMETER_PREFIX", "/imgsite")
if not SSM_PARAMETER_PREFIX.startswith("/") or not SSM_PARAMETER_PREFIX.strip("/"):
    raise ImproperlyConfigured(f"SSM_PARAMETER_PREFIX={SSM_PARAMETER_PREFIX!r} must be a path such as /imgsite")
# Given the queue's URL, kombu neither lists nor creates queues (no sqs:ListQueues or CreateQueue).
CLASSIFY_QUEUE_URL = envstr("CLASSIFY_QUEUE_URL")
if CLASSIFY_QUEUE_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"] = {CLASSIFY_QUEUE: {"url": CLASSIFY_QUEUE_URL}}
# Load balancers probe /healthz by IP address over plain HTTP: it answers before the host check.
MIDDLEWARE = ["imgsite.health.answer_health_checks", *MIDDLEWARE]
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a load balancer that terminates TLS, e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
if envstr("SECURE_PROXY_SSL_HEADER"):
    _header, _, _value = envstr("SECURE_PROXY_SSL_HEADER").partition(",")
    if not (_header.startswith("HTTP_") and _value):
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO,https")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "True")
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "True")
