"""With DEBUG off, `manage.py check --deploy` is clean: HTTPS-only cookies, HSTS, SSL redirect."""
import json
import os
import secrets
import subprocess
import sys

from django.conf import settings


def production_env(**extra):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="imgsite.example.com", **extra)
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
