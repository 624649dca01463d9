"""GET /healthz: 200 when the database, the bucket and the queue answer; 503 naming what does not."""
from django.urls import reverse


def test_it_answers_200_when_everything_is_up(client, aws, db):
    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "bucket": "ok", "queue": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_the_bucket_is_missing(client, aws, db, settings):
    settings.IMAGE_BUCKET = "imgsite-no-such-bucket"

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json() == {"status": "failed", "checks": {"database": "ok", "bucket": "failed", "queue": "ok"}}


def test_it_answers_503_when_the_queue_is_missing(client, aws, db, settings):
    settings.CLASSIFY_QUEUE = "imgsite-no-such-queue"

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json()["checks"]["queue"] == "failed"


def test_a_load_balancer_probing_by_ip_over_http_gets_an_answer(client, aws, db, settings):
    settings.ALLOWED_HOSTS = ["imgsite.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    probe = client.get("/healthz", HTTP_HOST="10.0.3.17")
    page = client.get("/accounts/login/", HTTP_HOST="10.0.3.17")

    assert probe.status_code == 200
    assert page.status_code == 400  # every other path still checks the host
