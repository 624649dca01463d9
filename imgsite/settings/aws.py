"""AWS: the region, the image bucket (S3 through django-storages) and its presigned URLs, the
queues (SQS), the workers' secrets in SSM, and the orphan sweep of the bucket."""
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envint, envstr, require

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

# Worker machines read DATABASE_URL (and SENTRY_DSN) from SSM Parameter Store under this path.
SSM_PARAMETER_PREFIX = envstr("SSM_PARAMETER_PREFIX", "/imgsite")
if not SSM_PARAMETER_PREFIX.startswith("/") or not SSM_PARAMETER_PREFIX.strip("/"):
    raise ImproperlyConfigured(f"SSM_PARAMETER_PREFIX={SSM_PARAMETER_PREFIX!r} must be a path such as /imgsite")

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
