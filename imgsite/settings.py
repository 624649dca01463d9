"""imgsite settings: one module, driven by the environment, failing loudly on bad values.

Every variable read here has a line in imgsite/settings_reference.py, the source of docs/settings.md;
tests/imgsite/test_settings_reference.py fails on one that does not."""
import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from boto3.s3.transfer import TransferConfig
from django.core.exceptions import ImproperlyConfigured

from imgsite.logs import LOG_FORMATS, logging_config, under_journald

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


def envparsed(name, default, parse, kind):
    value = os.environ.get(name, str(default))
    try:
        return parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}") from None


def envint(name, default):
    return envparsed(name, default, int, "an integer")


def envfloat(name, default):
    return envparsed(name, default, float, "a number")


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

# --- AWS: S3 for images, SQS for jobs. An empty endpoint means real AWS. ---
AWS_ENDPOINT_URL = envstr("AWS_ENDPOINT_URL")
if AWS_ENDPOINT_URL and urlsplit(AWS_ENDPOINT_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"AWS_ENDPOINT_URL={AWS_ENDPOINT_URL!r} must be an http(s) URL")
AWS_REGION = require("AWS_REGION", envstr("AWS_REGION", "us-east-1"))
IMAGE_BUCKET = require("IMAGE_BUCKET", envstr("IMAGE_BUCKET", "imgsite-images"))
CLASSIFY_QUEUE = require("CLASSIFY_QUEUE", envstr("CLASSIFY_QUEUE", "imgsite-classify"))
DEAD_LETTER_QUEUE = require("DEAD_LETTER_QUEUE", envstr("DEAD_LETTER_QUEUE", "imgsite-classify-dlq"))
# A message that crashes its worker this many times moves to the dead-letter queue, and an
# image claimed this many times is failed at its next claim.
MAX_RECEIVE_COUNT = envint("MAX_RECEIVE_COUNT", 3)
# Seconds a received message stays hidden, and an image's claim holds, unless the worker
# extends both (it does, every third of this, while the task runs): so a dead worker's images
# are picked up by another worker this many seconds after its last heartbeat.
SQS_VISIBILITY_TIMEOUT = envint("SQS_VISIBILITY_TIMEOUT", 30)
if SQS_VISIBILITY_TIMEOUT < 6:
    raise ImproperlyConfigured("SQS_VISIBILITY_TIMEOUT must be at least 6 seconds")
# An image's claim lapses before its message comes back, so the redelivery can take it over.
CLAIM_LEASE_SECONDS = SQS_VISIBILITY_TIMEOUT * 2 // 3
PRESIGNED_URL_EXPIRY = envint("PRESIGNED_URL_EXPIRY", 300)
# Uploads straight to S3 (classifier/direct_uploads.py): a presigned POST may start this long after
# it is issued, and its upload may be committed for twice this long (well within ORPHAN_GRACE_SECONDS).
PRESIGNED_UPLOAD_EXPIRY = envint("PRESIGNED_UPLOAD_EXPIRY", 900)

STORAGES = {
    "default": {
        "BACKEND": "imgsite.storage.ImageStorage",
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
            # thread pool per file (bench/README.md).
            "transfer_config": TransferConfig(use_threads=False, multipart_threshold=64 * 1024 * 1024),
            "object_parameters": {"ServerSideEncryption": "AES256"},
        },
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Uploads: every file goes to a temporary file, never into memory. ---
# (imgsite.filenames: Django's temporary-file handler, undoing browsers' escapes in file names.)
FILE_UPLOAD_HANDLERS = ["imgsite.filenames.UploadHandler"]
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# Pixels per image (width × height, as the header says); larger images are refused unread.
MAX_IMAGE_PIXELS = envint("MAX_IMAGE_PIXELS", 40_000_000)
MAX_FILES_PER_REQUEST = envint("MAX_FILES_PER_REQUEST", 500)
# Uploads of one request stream to S3 this many at a time (round trips overlap).
UPLOAD_STORE_THREADS = envint("UPLOAD_STORE_THREADS", 4)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_REQUEST
# Images per SQS message: fewer, larger messages keep SQS cheap and let workers batch.
IMAGES_PER_MESSAGE = envint("IMAGES_PER_MESSAGE", 16)
# Fair share: accepted images wait in the database (the outbox) and are sent so that each
# user has at most this many messages waiting in SQS; a busy user cannot put more than that
# ahead of anyone else, and workers refill it as they claim.
DISPATCH_WAITING_PER_USER = envint("DISPATCH_WAITING_PER_USER", 2)
# A sent image still unclaimed after this long (or claimed by a worker whose lease ran out this
# long ago) has lost its message: it goes back to the outbox and is sent again.
RESEND_AFTER_SECONDS = envint("RESEND_AFTER_SECONDS", 900)
if IMAGES_PER_MESSAGE < 1 or DISPATCH_WAITING_PER_USER < 1:
    raise ImproperlyConfigured("IMAGES_PER_MESSAGE and DISPATCH_WAITING_PER_USER must be at least 1")


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
# A crashed, killed or timed-out task is rejected without re-publishing (classifier.tasks.SqsRequest):
# SQS redelivers the same message, counting receives, and dead-letters it after MAX_RECEIVE_COUNT.
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # SQS has no broadcast; busy state lives in the database
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is killed well before its message becomes visible again, so a claim older than
# this belongs to a dead worker and may be taken over by the redelivered message.
# A group that runs longer than the soft limit fails its remaining images with a reason; the
# hard limit (prefork) kills a task stuck past it, and the worker stops extending its message
# then in every pool, so that SQS hands it to another worker.
TASK_SOFT_TIME_LIMIT = envint("TASK_SOFT_TIME_LIMIT", 120)
TASK_TIME_LIMIT = envint("TASK_TIME_LIMIT", TASK_SOFT_TIME_LIMIT + 30)
if not 0 < TASK_SOFT_TIME_LIMIT < TASK_TIME_LIMIT:
    raise ImproperlyConfigured("Need 0 < TASK_SOFT_TIME_LIMIT < TASK_TIME_LIMIT")
CELERY_TASK_SOFT_TIME_LIMIT = TASK_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMIT
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- The classifier. ---
CLASSIFIER_MODEL = envstr("CLASSIFIER_MODEL", "efficientnet_lite0")
# LiteRT runs the same converted model faster than Keras on CPU, in less memory
# (bench/README.md); TensorFlow stays the source of the model. ResNet50 is Keras-only.
# litert-int8 (EfficientNet only) runs an int8 model, faster still, but its top label differs
# from the float model's too often to be the default (bench/README.md, bench/int8.py).
CLASSIFIER_RUNTIME = envstr("CLASSIFIER_RUNTIME", "litert" if CLASSIFIER_MODEL == "efficientnet_lite0" else "keras")
if CLASSIFIER_RUNTIME not in ("keras", "litert", "litert-int8"):
    raise ImproperlyConfigured(f"CLASSIFIER_RUNTIME={CLASSIFIER_RUNTIME!r} must be keras, litert or litert-int8")
MODEL_DIR = Path(envstr("MODEL_DIR", str(VAR_DIR / "models")))
RESNET50_WEIGHTS = envstr("RESNET50_WEIGHTS", str(MODEL_DIR / "resnet50_imagenet.weights.h5"))
CLASSIFIER_TOP_K = envint("CLASSIFIER_TOP_K", 5)
# Inference threads per worker process; 0 means one per core. With several worker
# processes on one machine, keep processes × threads ≤ cores.
CLASSIFIER_THREADS = envint("CLASSIFIER_THREADS", 0)

# --- The autoscaler and its fleets. ---
AUTOSCALE_BACKEND = envstr("AUTOSCALE_BACKEND", "local")
if AUTOSCALE_BACKEND not in ("local", "ec2", "asg"):
    raise ImproperlyConfigured(f"AUTOSCALE_BACKEND={AUTOSCALE_BACKEND!r} must be local, ec2 or asg")
AUTOSCALE_MIN_NODES = envint("AUTOSCALE_MIN_NODES", 0)
# 2 suits one machine (the local backend); a production fleet uses e.g. 30 (see docs/deploy.md).
AUTOSCALE_MAX_NODES = envint("AUTOSCALE_MAX_NODES", 2)
# The autoscaler's model of the fleet (scaling/policy.py; README, "The autoscaler").
AUTOSCALE_INTERVAL = envfloat("AUTOSCALE_INTERVAL", 15)  # between passes while nothing moves
AUTOSCALE_BUSY_INTERVAL = envfloat("AUTOSCALE_BUSY_INTERVAL", 5)  # while nodes boot, work or drain
AUTOSCALE_BOOT_SECONDS = envfloat("AUTOSCALE_BOOT_SECONDS", 70)  # launch → worker taking messages
AUTOSCALE_SECONDS_PER_IMAGE = envfloat("AUTOSCALE_SECONDS_PER_IMAGE", 0.5)  # until measured
# Extra wait a message may have beyond what a node launched now could give it, before one is.
AUTOSCALE_ACCEPTABLE_LATENCY = envfloat("AUTOSCALE_ACCEPTABLE_LATENCY", 0)
AUTOSCALE_MAX_STEP = envint("AUTOSCALE_MAX_STEP", 30)  # most launches per pass
AUTOSCALE_MAX_RETIRE_STEP = envint("AUTOSCALE_MAX_RETIRE_STEP", 10)  # most retirements per pass
AUTOSCALE_SURGE = envint("AUTOSCALE_SURGE", 0)  # booting + running + draining ≤ max + surge
AUTOSCALE_RATE_WINDOW = envfloat("AUTOSCALE_RATE_WINDOW", 600)  # arrivals for the Little's-law floor


def optional_seconds(name):
    """A number of seconds, or None (derived from the boot time and interval) when unset."""
    return envfloat(name, 0) if envstr(name) else None


AUTOSCALE_IDLE_HOLD_SECONDS = optional_seconds("AUTOSCALE_IDLE_HOLD_SECONDS")
AUTOSCALE_RECURRENCE_SECONDS = optional_seconds("AUTOSCALE_RECURRENCE_SECONDS")
# One autoscaler at a time: a copy holds a lease row this long, renewed on every pass.
AUTOSCALE_LEASE_SECONDS = envfloat("AUTOSCALE_LEASE_SECONDS", 120)
# Tasks a worker runs at once (its Celery concurrency): the messages a node takes at a time.
WORKER_CONCURRENCY = envint("WORKER_CONCURRENCY", 2)
# Threads per worker process for S3 round trips (reading originals, storing thumbnails); decoding
# has one a core. More cost memory (about 12 MB each, bench/README.md) and gain little.
WORKER_IO_THREADS = envint("WORKER_IO_THREADS", 4)
# A node that is still busy this long after it was asked to drain is retired anyway;
# SQS then redelivers its task.
AUTOSCALE_DRAIN_TIMEOUT = envfloat("AUTOSCALE_DRAIN_TIMEOUT", TASK_TIME_LIMIT + 30)
if not 0 <= AUTOSCALE_MIN_NODES <= AUTOSCALE_MAX_NODES:
    raise ImproperlyConfigured("AUTOSCALE_MIN_NODES must be between 0 and AUTOSCALE_MAX_NODES")
if min(AUTOSCALE_MAX_STEP, AUTOSCALE_MAX_RETIRE_STEP, WORKER_CONCURRENCY, WORKER_IO_THREADS) < 1:
    raise ImproperlyConfigured("AUTOSCALE_MAX_STEP, AUTOSCALE_MAX_RETIRE_STEP, WORKER_CONCURRENCY and "
                               "WORKER_IO_THREADS must be at least 1")
if min(AUTOSCALE_INTERVAL, AUTOSCALE_BUSY_INTERVAL, AUTOSCALE_BOOT_SECONDS, AUTOSCALE_RATE_WINDOW) <= 0:
    raise ImproperlyConfigured("AUTOSCALE_INTERVAL, AUTOSCALE_BUSY_INTERVAL, AUTOSCALE_BOOT_SECONDS and "
                               "AUTOSCALE_RATE_WINDOW must be positive")
if AUTOSCALE_ACCEPTABLE_LATENCY < 0 or AUTOSCALE_SURGE < 0:
    raise ImproperlyConfigured("AUTOSCALE_ACCEPTABLE_LATENCY and AUTOSCALE_SURGE cannot be negative")
if AUTOSCALE_LEASE_SECONDS <= AUTOSCALE_INTERVAL:
    raise ImproperlyConfigured("AUTOSCALE_LEASE_SECONDS must be longer than AUTOSCALE_INTERVAL, or a "
                               "second autoscaler takes over between two passes")
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
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar"]
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

# --- Bounded work per file, per request and per user (#13): one user cannot hurt the others. ---
# A picture over 4 megapixels with more pixels than this per byte of file is refused at upload
# and in the worker: a photo never compresses that well (0 turns the check off).
MAX_PIXELS_PER_BYTE = envint("MAX_PIXELS_PER_BYTE", 200)
if MAX_PIXELS_PER_BYTE < 0:
    raise ImproperlyConfigured("MAX_PIXELS_PER_BYTE must be 0 (off) or positive")
# What one request may examine, archive members included: files, and their bytes once expanded.
MAX_IMAGES_PER_REQUEST = envint("MAX_IMAGES_PER_REQUEST", MAX_FILES_PER_REQUEST)
MAX_REQUEST_EXPANDED_BYTES = envint("MAX_REQUEST_EXPANDED_BYTES", MAX_ARCHIVE_UNCOMPRESSED_BYTES)
# Per user: images queued or processing, images queued in the last 24 hours, bytes of originals stored.
QUOTA_OPEN_IMAGES = envint("QUOTA_OPEN_IMAGES", 10_000)
QUOTA_IMAGES_PER_DAY = envint("QUOTA_IMAGES_PER_DAY", 50_000)
QUOTA_BYTES_STORED = envint("QUOTA_BYTES_STORED", 50 * 1024**3)
for _name in ("MAX_IMAGES_PER_REQUEST", "MAX_REQUEST_EXPANDED_BYTES", "QUOTA_OPEN_IMAGES", "QUOTA_IMAGES_PER_DAY",
              "QUOTA_BYTES_STORED"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be positive")
# Upload requests per user (the API's and the gallery form's together), counted in the default cache.
UPLOAD_RATE_LIMIT = envstr("UPLOAD_RATE_LIMIT", "60/min")
_count, _, _period = UPLOAD_RATE_LIMIT.partition("/")
if not (_count.isdigit() and _period[:1] in ("s", "m", "h", "d")):
    raise ImproperlyConfigured(f"UPLOAD_RATE_LIMIT={UPLOAD_RATE_LIMIT!r} must look like 60/min")
# Per worker process: the memory its decodes may hold at once (each waits for its share, estimated
# from the header), and the most one image may need; a larger one fails with a reason.
DECODE_MEMORY_BUDGET = envint("DECODE_MEMORY_BUDGET", 1024 * 1024**2)
DECODE_MAX_IMAGE_BYTES = envint("DECODE_MAX_IMAGE_BYTES", 768 * 1024**2)
if not 0 < DECODE_MAX_IMAGE_BYTES <= DECODE_MEMORY_BUDGET:
    raise ImproperlyConfigured("Need 0 < DECODE_MAX_IMAGE_BYTES <= DECODE_MEMORY_BUDGET: a larger image could "
                               "never be decoded")
# A prefork pool process whose resident set ends a task above this many bytes is replaced (what its
# allocator kept after large decodes is given back to the machine).
WORKER_MAX_MEMORY_PER_CHILD = envint("WORKER_MAX_MEMORY_PER_CHILD", DECODE_MEMORY_BUDGET + 512 * 1024**2)
if WORKER_MAX_MEMORY_PER_CHILD <= DECODE_MEMORY_BUDGET:
    raise ImproperlyConfigured("WORKER_MAX_MEMORY_PER_CHILD must be above DECODE_MEMORY_BUDGET (and the model)")
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD // 1024  # Celery counts KiB

# --- Deployment (worker_ami/, docs/deploy.md): worker secrets, the health check, HTTPS. ---
# Worker machines read DATABASE_URL (and SENTRY_DSN) from SSM Parameter Store under this path.
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


# --- Operations (issue #19): logs, error reports, metrics, health checks. -------------------
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
# The asg backend can also publish backlog per instance to CloudWatch after each pass, for an
# Auto Scaling target-tracking policy (docs/deploy.md, "Scaling with CloudWatch").
AUTOSCALE_CLOUDWATCH_METRIC = envbool("AUTOSCALE_CLOUDWATCH_METRIC", "False")
CLOUDWATCH_NAMESPACE = envstr("CLOUDWATCH_NAMESPACE", "imgsite")
if AUTOSCALE_CLOUDWATCH_METRIC and AUTOSCALE_BACKEND != "asg":
    raise ImproperlyConfigured("AUTOSCALE_CLOUDWATCH_METRIC needs AUTOSCALE_BACKEND=asg")

# --- Accounts: API tokens (django-rest-knox), login lockout (django-axes), password reset by mail. ---
INSTALLED_APPS += ["knox", "axes", "accounts"]
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
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
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
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # a line per successful login is noise; lockouts stay

# --- Orphans: objects in the bucket that no image row owns (classifier/orphans.py). ---
# An object is swept only once older than this: far longer than an upload takes to commit the
# rows of the originals it stored, or a worker to record the thumbnail it stored.
ORPHAN_GRACE_SECONDS = envint("ORPHAN_GRACE_SECONDS", 24 * 3600)
# Pages of 1,000 object names that each periodic sweep lists, resuming where the previous one stopped.
ORPHAN_SWEEP_PAGES = envint("ORPHAN_SWEEP_PAGES", 1)
if ORPHAN_GRACE_SECONDS < 3600 or ORPHAN_SWEEP_PAGES < 1:
    raise ImproperlyConfigured("ORPHAN_GRACE_SECONDS must be at least 3600 and ORPHAN_SWEEP_PAGES at least 1")
# An upload straight to S3 that is never committed is an orphan: it must not be committable once swept.
if not 60 <= PRESIGNED_UPLOAD_EXPIRY <= ORPHAN_GRACE_SECONDS // 4:
    raise ImproperlyConfigured("PRESIGNED_UPLOAD_EXPIRY must be from 60 s to a quarter of ORPHAN_GRACE_SECONDS")

# --- Content-Security-Policy (django-csp): scripts, styles and everything else from this site only. ---
# Presigned image URLs are the exception: img-src allows the bucket's origin, as boto3 builds it
# (the endpoint, path-style, locally; the bucket's virtual-hosted https origin on AWS).


def bucket_origin(bucket, region, endpoint):
    """The scheme://host[:port] of the bucket's presigned URLs."""
    if endpoint:
        return "{0.scheme}://{0.netloc}".format(urlsplit(endpoint))
    return f"https://{bucket}.s3.amazonaws.com" if region == "us-east-1" else \
        f"https://{bucket}.s3.{region}.amazonaws.com"


MIDDLEWARE += ["csp.middleware.CSPMiddleware"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", bucket_origin(IMAGE_BUCKET, AWS_REGION, AWS_ENDPOINT_URL)],
        # The uploader posts originals straight to the bucket (presigned POSTs).
        "connect-src": ["'self'", bucket_origin(IMAGE_BUCKET, AWS_REGION, AWS_ENDPOINT_URL)],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
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
