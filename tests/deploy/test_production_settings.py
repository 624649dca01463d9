"""With DEBUG off, `manage.py check --deploy` is clean: HTTPS-only cookies, HSTS, SSL redirect; rate
limits are counted in a cache every process shares, under an address a client cannot choose."""
import json
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.test import APIClient

from classifier.api_conventions import UserRateThrottle
from tests.conftest import database_url


def production_env(**extra):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update({"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "imgsite.example.com",
                **extra})
    return env


def manage(*arguments, **extra):
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=settings.BASE_DIR, env=production_env(**extra),
                          capture_output=True, text=True, timeout=120)


def production_settings(*names, **extra):
    code = ("import json, django; django.setup(); from django.conf import settings; "
            f"print(json.dumps({{name: getattr(settings, name, None) for name in {list(names)!r}}}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, timeout=120, capture_output=True,
                            text=True, env={**production_env(**extra), "DJANGO_SETTINGS_MODULE": "imgsite.settings"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_check_deploy_is_clean_with_debug_off():
    result = manage("check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_browsers_upload_to_the_bucket_from_the_sites_https_origins():
    assert production_settings("UPLOAD_ORIGINS") == {"UPLOAD_ORIGINS": ["https://imgsite.example.com"]}
    assert production_settings("UPLOAD_ORIGINS", ALLOWED_HOSTS=".example.com,imgsite.example.org") == {
        "UPLOAD_ORIGINS": ["https://*.example.com", "https://imgsite.example.org"]}
    assert production_settings("UPLOAD_ORIGINS", CSRF_TRUSTED_ORIGINS="https://imgsite.example.com:8443") == {
        "UPLOAD_ORIGINS": ["https://imgsite.example.com:8443"]}


def test_cookies_are_https_only_and_hsts_is_on():
    values = production_settings("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
                                 "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER")

    assert values == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
                      "SECURE_HSTS_SECONDS": 31536000, "SECURE_PROXY_SSL_HEADER": None}


def test_behind_a_load_balancer_the_forwarded_protocol_counts():
    values = production_settings("SECURE_PROXY_SSL_HEADER", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")

    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_malformed_proxy_header_fails_loudly():
    result = manage("check", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")

    assert result.returncode != 0 and "SECURE_PROXY_SSL_HEADER must look like" in result.stderr


def test_a_queue_url_spares_kombu_listing_queues():
    url = "https://sqs.us-east-1.amazonaws.com/111122223333/imgsite-classify"
    values = production_settings("CELERY_BROKER_TRANSPORT_OPTIONS", "CLASSIFY_QUEUE", CLASSIFY_QUEUE_URL=url)

    predefined = values["CELERY_BROKER_TRANSPORT_OPTIONS"]["predefined_queues"]
    assert predefined == {values["CLASSIFY_QUEUE"]: {"url": url}}


def test_rate_limits_are_counted_in_the_database_by_default():
    values = production_settings("CACHES")

    assert values["CACHES"]["default"] == {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                           "LOCATION": "imgsite_cache"}


def test_redis_url_moves_the_shared_cache_to_redis():
    values = production_settings("CACHES", REDIS_URL="rediss://cache.internal:6379/0")

    assert values["CACHES"]["default"] == {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                           "LOCATION": "rediss://cache.internal:6379/0"}


def test_every_process_sees_the_same_request_count(transactional_db, django_user_model, settings):
    settings.API_RATE_LIMIT = "2/min"
    user = django_user_model.objects.create_user("carol")
    api = APIClient()
    api.force_authenticate(user)

    statuses = [api.get(reverse("classifier:api:images")).status_code for _ in range(3)]
    counted = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.core.cache import cache; "
                               f"print(len(cache.get('throttle_user_{user.pk}', [])))"],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DATABASE_URL": database_url()})

    assert statuses == [200, 200, 429]
    assert counted.stdout.split() == ["2"], counted.stderr[-2000:]


def test_no_proxy_is_trusted_by_default():
    assert production_settings("REST_FRAMEWORK")["REST_FRAMEWORK"]["NUM_PROXIES"] == 0


@pytest.mark.parametrize("num_proxies, counted_as", [(0, "10.0.0.5"), (1, "198.51.100.7")])
def test_x_forwarded_for_counts_only_behind_as_many_proxies_as_configured(rf, settings, num_proxies, counted_as):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    request = rf.get("/api/v1/images", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.1, 198.51.100.7")

    assert UserRateThrottle().get_ident(request) == counted_as
