"""GET /metrics: the names and values after a real upload, and who may read them."""
import ipaddress
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from accounts.models import ApiToken
from classifier.inference import Label
from classifier.models import Image
from scaling.models import ScalingEvent, WorkerNode
from tests.corpus import photo_jpeg
from tests.scaling.conftest import start_task

TOKEN = "metrics-token-for-the-tests-0123456789"
BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
LABELS = [Label(281, "n02123045", "tabby", 0.7), Label(282, "n02123159", "tiger cat", 0.2)]


@pytest.fixture(autouse=True)
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


def scrape(client, **headers):
    response = client.get("/metrics", **{**BEARER, **headers})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode()) for sample in family.samples}


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def upload(user, count):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.issue(user, 'metrics')[1]}")
    files = [SimpleUploadedFile(f"cat{n}.jpg", photo_jpeg(max_side=64 + n), "image/jpeg") for n in range(count)]
    response = api.post(reverse("classifier:api:batches"), {"images": files}, format="multipart")
    assert response.status_code == 201
    return list(Image.objects.order_by("pk"))


def test_it_counts_an_upload_from_accepted_to_done_or_failed(client, user, empty_queues,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first, second = upload(user, 2)

    accepted = scrape(client)
    assert value(accepted, "imgsite_images", status="queued") == 2
    assert value(accepted, "imgsite_images_accepted_recent") == 2
    assert value(accepted, "imgsite_queue_up") == 1
    assert value(accepted, "imgsite_queue_messages", state="visible") == 1  # both images in one message
    assert value(accepted, "imgsite_queue_images", state="visible") == 2
    assert value(accepted, "imgsite_queue_images", state="outbox") == 0
    assert value(accepted, "imgsite_image_latency_seconds_gcount") == 0

    claimed = Image.objects.claim([first.pk, second.pk], "node-a:41")
    Image.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(seconds=7))
    claimed = {image.pk: image for image in claimed}
    Image.objects.finish([(claimed[first.pk], LABELS, "", "", ""),
                          (claimed[second.pk], (), "", "truncated", "The image is truncated.")], "efficientnet_lite0")

    finished = scrape(client)
    assert value(finished, "imgsite_images", status="done") == 1
    assert value(finished, "imgsite_images", status="failed") == 1
    assert value(finished, "imgsite_images_finished_recent", status="done", error_code="") == 1
    assert value(finished, "imgsite_images_finished_recent", status="failed", error_code="truncated") == 1
    assert value(finished, "imgsite_worker_images_recent", node="node-a") == 2
    # The done image waited about 7 s: in the 10 s bucket, not the 5 s one.
    assert value(finished, "imgsite_image_latency_seconds_bucket", le="5.0") == 0
    assert value(finished, "imgsite_image_latency_seconds_bucket", le="10.0") == 1
    assert value(finished, "imgsite_image_latency_seconds_bucket", le="+Inf") == 1
    assert 7 <= value(finished, "imgsite_image_latency_seconds_gsum") < 10
    assert value(finished, "imgsite_image_processing_seconds_gcount") == 1
    assert value(finished, "imgsite_image_processing_seconds_bucket", le="5.0") == 1
    assert value(finished, "imgsite_worker_seconds_per_image") > 0


def test_it_shows_the_fleet_and_the_autoscaler(client, db, monkeypatch):
    monkeypatch.setattr("scaling.metrics.queue_depth", lambda: {"visible": 0, "in_flight": 0, "delayed": 0})
    WorkerNode.objects.create(name="i-busy")
    start_task("i-busy")
    start_task("i-busy")  # a second task, claimed at another moment
    WorkerNode.objects.create(name="i-idle")
    WorkerNode.objects.create(name="i-drain", draining=True)
    WorkerNode.objects.create(name="i-silent", last_heartbeat=timezone.now() - timedelta(hours=1))
    start_task("i-silent")
    WorkerNode.objects.create(name="i-gone", stopped_at=timezone.now())
    ScalingEvent.objects.create(backend="asg", target=3, booting=1, running=2, reason="x", action="launch 1")
    ScalingEvent.objects.create(backend="asg", target=3, reason="x", action="nothing", error="Throttling")

    samples = scrape(client)

    assert [value(samples, "imgsite_worker_nodes", state=state) for state in ("idle", "busy", "draining", "silent")] \
        == [1, 1, 1, 1]
    assert value(samples, "imgsite_worker_running_tasks") == 2  # the silent node's task is not counted
    assert value(samples, "imgsite_autoscaler_target_nodes") == 3
    assert value(samples, "imgsite_autoscaler_passes_recent", action="launch") == 1
    assert value(samples, "imgsite_autoscaler_passes_recent", action="failed") == 1
    assert value(samples, "imgsite_autoscaler_last_pass_timestamp_seconds") == pytest.approx(
        timezone.now().timestamp(), abs=60)


def test_an_unreachable_queue_is_a_value_not_a_failed_scrape(client, db, monkeypatch):
    def unreachable():
        raise ConnectionError("endpoint down")

    monkeypatch.setattr("scaling.metrics.queue_depth", unreachable)
    samples = scrape(client)
    assert value(samples, "imgsite_queue_up") == 0
    assert not any(name == "imgsite_queue_messages" for name, _ in samples)


def test_it_is_off_until_configured(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", **BEARER).status_code == 404


def test_a_wrong_or_missing_token_is_refused(client, db):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 403


def test_an_allowed_network_needs_no_token_unless_it_came_through_a_proxy(client, db, settings, monkeypatch):
    monkeypatch.setattr("scaling.metrics.queue_depth", lambda: {"visible": 0, "in_flight": 0, "delayed": 0})
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.0.0.0/16")]

    assert client.get("/metrics", REMOTE_ADDR="10.0.7.9").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.0.1").status_code == 403
    # Through the load balancer every request comes from its (allowed) address: refused.
    assert client.get("/metrics", REMOTE_ADDR="10.0.7.9", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 403


def test_prometheus_scraping_a_host_by_ip_over_http_gets_an_answer(client, db, settings, monkeypatch):
    monkeypatch.setattr("scaling.metrics.queue_depth", lambda: {"visible": 0, "in_flight": 0, "delayed": 0})
    settings.ALLOWED_HOSTS = ["imgsite.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/metrics", HTTP_HOST="10.0.3.17", **BEARER).status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="10.0.3.17").status_code == 400
