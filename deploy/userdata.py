"""The worker's cloud-init user data, rendered from settings: configuration, never secrets.

The template (worker_ami/user-data.yaml.tmpl, or the file settings.EC2_USER_DATA_FILE
names) writes /etc/imgsite/worker.env at boot. DATABASE_URL stays in SSM Parameter Store; the
worker reads it through its instance role when it starts (worker_ami/worker_env.py), and makes a
SECRET_KEY of its own. A secret this process knows never renders: rendering fails instead.
"""
import base64
import os
import re
from pathlib import Path
from string import Template

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from imgsite.aws import queue_url as lookup_queue_url

EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64
# Values go into YAML and a systemd environment file unquoted, so they must be plain.
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
PLACEHOLDERS = ("environment", "ssm_prefix", "stop_timeout")
SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CELERY_BROKER_URL")


def default_template():
    return Path(settings.BASE_DIR) / "worker_ami" / "user-data.yaml.tmpl"


def worker_environment(queue_url):
    """What a worker needs from settings, as environment variables. Secrets are never among them."""
    return {
        "DEBUG": "false",
        "AWS_REGION": settings.AWS_REGION,
        "IMAGE_BUCKET": settings.IMAGE_BUCKET,
        "CLASSIFY_QUEUE": settings.CLASSIFY_QUEUE,
        "CLASSIFY_QUEUE_URL": queue_url,
        "DEAD_LETTER_QUEUE": settings.DEAD_LETTER_QUEUE,
        "SQS_VISIBILITY_TIMEOUT": settings.SQS_VISIBILITY_TIMEOUT,
        "SQS_WAIT_TIME_SECONDS": settings.CELERY_BROKER_TRANSPORT_OPTIONS["wait_time_seconds"],
        "MAX_RECEIVE_COUNT": settings.MAX_RECEIVE_COUNT,
        "TASK_SOFT_TIME_LIMIT": settings.TASK_SOFT_TIME_LIMIT,
        "TASK_TIME_LIMIT": settings.TASK_TIME_LIMIT,
        "IMAGES_PER_MESSAGE": settings.IMAGES_PER_MESSAGE,
        "DISPATCH_WAITING_PER_USER": settings.DISPATCH_WAITING_PER_USER,
        # The tasks a node runs at once: what the autoscaler counts as a node's slots.
        "WORKER_CONCURRENCY": settings.WORKER_CONCURRENCY,
        "CLASSIFIER_MODEL": settings.CLASSIFIER_MODEL,
        "CLASSIFIER_RUNTIME": settings.CLASSIFIER_RUNTIME,
        "CLASSIFIER_TOP_K": settings.CLASSIFIER_TOP_K,
        "WORKER_HEARTBEAT_SECONDS": settings.WORKER_HEARTBEAT_SECONDS,
        "SSM_PARAMETER_PREFIX": settings.SSM_PARAMETER_PREFIX,
        "LOG_LEVEL": settings.LOG_LEVEL,
        "LOG_FORMAT": settings.LOG_FORMAT,  # the fleet logs as the web tier does
    }


def environment_lines(environment, indent=6):
    lines = []
    for key, value in environment.items():
        value = str(value)
        if not PLAIN_VALUE.fullmatch(value):
            raise ImproperlyConfigured(f"{key}={value!r} cannot go into user data: use plain characters only")
        lines.append(f"{' ' * indent}{key}={value}")
    return "\n".join(lines)


def configured_queue_url():
    try:  # CLASSIFY_QUEUE_URL when set, else looked up
        return lookup_queue_url(settings.CLASSIFY_QUEUE)
    except ClientError as exc:
        raise ImproperlyConfigured(
            f"queue {settings.CLASSIFY_QUEUE} not found ({exc}); run `manage.py provision` first"
        ) from None


def known_secrets():
    """The secret values this process knows, so that rendering can prove none leaked."""
    database = settings.DATABASES["default"]
    values = [settings.SECRET_KEY, database.get("PASSWORD")]
    values += [os.environ.get(name) for name in SECRET_VARIABLES]
    return [value for value in values if value and len(value) >= 8]


def render_user_data(queue_url=None, template=None):
    """The user data text for a worker instance; ImproperlyConfigured if it cannot be made safely."""
    path = Path(template or settings.EC2_USER_DATA_FILE or default_template())
    values = {
        "environment": environment_lines(worker_environment(queue_url or configured_queue_url())),
        "ssm_prefix": settings.SSM_PARAMETER_PREFIX,
        # systemd waits this long for the warm shutdown before it kills the worker.
        "stop_timeout": settings.TASK_TIME_LIMIT + 60,
    }
    try:
        text = Template(path.read_text()).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ImproperlyConfigured(f"{path}: bad placeholder {exc}; available: {', '.join(PLACEHOLDERS)}") from None
    if any(secret in text for secret in known_secrets()):
        raise ImproperlyConfigured(f"{path} renders a secret into user data; secrets belong in SSM")
    if len(text.encode()) > EC2_USER_DATA_LIMIT:
        raise ImproperlyConfigured(f"{path} renders {len(text.encode())} bytes; EC2 takes at most 16 KB")
    return text


def encoded_user_data(queue_url=None):
    """The user data as launch templates take it: base64."""
    return base64.b64encode(render_user_data(queue_url).encode()).decode()
