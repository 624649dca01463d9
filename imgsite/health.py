"""GET /healthz for load balancers: the database, the image bucket and the classify queue.

200 with {"status": "ok", ...} when all three answer, 503 naming what failed otherwise.
Each probe gets a short timeout and no retries, so the answer comes before the
load balancer's own timeout.
"""
import logging
from functools import cache

import boto3
from botocore.config import Config
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)
PROBE_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})


@cache
def probe_client(service):
    return boto3.client(service, region_name=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None,
                        config=PROBE_CONFIG)


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_bucket():
    probe_client("s3").head_bucket(Bucket=settings.IMAGE_BUCKET)


def check_queue():
    sqs = probe_client("sqs")
    url = settings.CLASSIFY_QUEUE_URL or sqs.get_queue_url(QueueName=settings.CLASSIFY_QUEUE)["QueueUrl"]
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])


CHECKS = {"database": check_database, "bucket": check_bucket, "queue": check_queue}


def health_status():
    """{"database": "ok" | "failed", ...}; failures are logged with their reason, never shown."""
    status = {}
    for name, check in CHECKS.items():
        try:
            check()
            status[name] = "ok"
        except Exception:
            log.warning("health check %s failed", name, exc_info=True)
            status[name] = "failed"
    return status


@never_cache
def healthz(request):
    checks = health_status()
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "failed", "checks": checks}, status=200 if healthy else 503)


def answer_health_checks(get_response):
    """Middleware, first in MIDDLEWARE: load balancers probe by IP address, which is not an
    allowed host, and over plain HTTP, which would be redirected. /healthz answers anyway."""

    def middleware(request):
        if request.path == "/healthz" and request.method in ("GET", "HEAD"):
            return healthz(request)
        return get_response(request)

    return middleware
