"""GET /healthz (liveness, for the load balancer) and GET /healthz/deep (database, bucket, queue;
cached; operators only)."""
import pytest
from django.urls import reverse

from imgsite import health

TOKEN = "health-token-for-the-tests-0123456789"
BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def operators(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    settings.HEALTH_CACHE_SECONDS = 0
    health.deep_status = health.CachedStatus()


def test_liveness_touches_nothing_behind_the_process(client, settings):
    # No db fixture: a query would fail the test. And a dependency down does not fail liveness.
    settings.IMAGE_BUCKET = "imgsite-no-such-bucket"

    response = client.get(reverse("healthz"))

    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_a_load_balancer_probing_by_ip_over_http_gets_an_answer(client, settings):
    settings.ALLOWED_HOSTS = ["imgsite.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    probe = client.get("/healthz", HTTP_HOST="10.0.3.17")
    page = client.get("/accounts/login/", HTTP_HOST="10.0.3.17")

    assert probe.status_code == 200
    assert page.status_code == 400  # every other path still checks the host


def test_the_deep_check_answers_200_when_everything_is_up(client, aws, db):
    response = client.get(reverse("healthz-deep"), **BEARER)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "bucket": "ok", "queue": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_the_deep_check_answers_503_when_the_bucket_is_missing(client, aws, db, settings, caplog):
    settings.IMAGE_BUCKET = "imgsite-no-such-bucket"

    response = client.get(reverse("healthz-deep"), **BEARER)

    assert response.status_code == 503
    assert response.json() == {"status": "failed", "checks": {"database": "ok", "bucket": "failed", "queue": "ok"}}
    failure = next(record for record in caplog.records if record.name == "imgsite.health")
    assert "health check bucket failed: " in failure.getMessage() and failure.exc_info is None  # no traceback


def test_the_deep_check_answers_503_when_the_queue_is_missing(client, aws, db, settings):
    settings.CLASSIFY_QUEUE = "imgsite-no-such-queue"

    response = client.get(reverse("healthz-deep"), **BEARER)

    assert response.status_code == 503
    assert response.json()["checks"]["queue"] == "failed"


def test_a_flood_of_deep_probes_costs_one_round_of_checks(client, db, settings, monkeypatch):
    settings.HEALTH_CACHE_SECONDS = 30
    calls = []
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: calls.append("database")})

    answers = [client.get(reverse("healthz-deep"), **BEARER).status_code for _ in range(20)]

    assert answers == [200] * 20 and calls == ["database"]


def test_the_cache_expires(monkeypatch):
    calls = []
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: calls.append(1)})
    clock = iter([100.0, 103.0, 106.0, 106.0])
    status = health.CachedStatus()

    for _ in range(3):
        status.get(5, now=lambda: next(clock))

    assert len(calls) == 2  # at 100 s; at 103 s the answer is kept; at 106 s the 5 s have passed


def test_the_deep_check_is_for_operators_only(client, db, settings):
    assert client.get(reverse("healthz-deep")).status_code == 403
    assert client.get(reverse("healthz-deep"), HTTP_AUTHORIZATION="Bearer guess").status_code == 403
    settings.METRICS_TOKEN = ""
    assert client.get(reverse("healthz-deep"), **BEARER).status_code == 404  # off until configured
