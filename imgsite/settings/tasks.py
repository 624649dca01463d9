"""The task queue: Celery on SQS, how images are grouped into messages and sent fairly, and how
long a task may run."""
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.aws import AWS_ENDPOINT_URL, AWS_REGION, CLASSIFY_QUEUE, SQS_VISIBILITY_TIMEOUT
from imgsite.settings.env import envint, envstr

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
# Given the queue's URL, kombu neither lists nor creates queues (no sqs:ListQueues or CreateQueue).
CLASSIFY_QUEUE_URL = envstr("CLASSIFY_QUEUE_URL")
if CLASSIFY_QUEUE_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"] = {CLASSIFY_QUEUE: {"url": CLASSIFY_QUEUE_URL}}
