"""Health checks, and who may see the operators' endpoints.

- GET /healthz is the load balancer's liveness probe: this process answers HTTP. It touches no
  database, bucket or queue, so a slow dependency never takes every web host out of the target
  group at once, and a flood of probes costs nothing.
- GET /healthz/deep checks the database, the image bucket and the classify queue: 200 with
  {"status": "ok", "checks": {...}} when all three answer, 503 naming what failed. The answer is
  kept HEALTH_CACHE_SECONDS per process, so a flood of probes costs one round of checks. Only
  operators may call it (operator_allowed), as only they may scrape /metrics.

Both answer before the host check and the HTTPS redirect: load balancers and Prometheus reach
a web host by its IP address, over plain HTTP.
"""
import hmac
import ipaddress
import logging
import threading
import time
from functools import cache, wraps

import boto3
from botocore.config import Config
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponseForbidden, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)
PROBE_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})


def answers_any_host(view):
    """Mark a view to be answered by answer_health_checks, before the host check and the HTTPS redirect."""
    view.answers_any_host = True
    return view


def operator_allowed(request):
    """True for a request carrying `Authorization: Bearer <METRICS_TOKEN>`, or one made directly (not
    through a proxy: no X-Forwarded-For) from an address in METRICS_ALLOWED_IPS. Behind a load
    balancer every request comes from the balancer's own address, so the header is what tells a
    scraper inside the network from a stranger outside it."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    if settings.METRICS_ALLOWED_IPS and "X-Forwarded-For" not in request.headers:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in settings.METRICS_ALLOWED_IPS)
    return False


def operators_only(view):
    """404 while neither METRICS_TOKEN nor METRICS_ALLOWED_IPS is set (the endpoint is off), 403 to a
    caller they do not admit."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS):
            raise Http404("not enabled")
        if not operator_allowed(request):
            return HttpResponseForbidden("operators only: send Authorization: Bearer <METRICS_TOKEN>\n",
                                         content_type="text/plain")
        return view(request, *args, **kwargs)

    return guarded


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
        except Exception as exc:  # an outage is expected news here, not a bug: no traceback
            log.warning("health check %s failed: %s", name, exc, extra={"check": name})
            status[name] = "failed"
    return status


class CachedStatus:
    """health_status(), at most once per `seconds` per process; callers meanwhile share the last
    answer, and callers arriving during a check wait for it rather than start their own."""

    def __init__(self):
        self.lock = threading.Lock()
        self.checked_at, self.status = None, None

    def get(self, seconds, now=time.monotonic):
        with self.lock:
            if self.checked_at is None or now() - self.checked_at >= seconds:
                self.status, self.checked_at = health_status(), now()
            return self.status


deep_status = CachedStatus()


@answers_any_host
@never_cache
def healthz(request):
    """Liveness: this process answers."""
    return JsonResponse({"status": "ok"})


@answers_any_host
@never_cache
@operators_only
def healthz_deep(request):
    checks = deep_status.get(settings.HEALTH_CACHE_SECONDS)
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "failed", "checks": checks}, status=200 if healthy else 503)


# Where the views marked answers_any_host are: other requests are not resolved twice.
ANY_HOST_PATHS = ("/healthz", "/metrics")


def answer_health_checks(get_response):
    """Middleware, first in MIDDLEWARE: a GET for a view marked answers_any_host (the health checks,
    /metrics) is answered here, before the host check and the HTTPS redirect; everything else
    goes on as usual."""

    def middleware(request):
        if request.method in ("GET", "HEAD") and request.path_info.startswith(ANY_HOST_PATHS):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "answers_any_host", False):
                try:
                    return match.func(request, *match.args, **match.kwargs)
                except Http404:
                    return JsonResponse({"detail": "Not found."}, status=404)
        return get_response(request)

    return middleware
