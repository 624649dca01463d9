"""Bad configuration stops start-up with a message that names the setting."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_with(without=(), **environment):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", **environment}
    for name in without:
        env.pop(name, None)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)


def refusal(result):
    """The ImproperlyConfigured line that stopped start-up."""
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr, result.stderr[-2000:]
    return result.stderr.splitlines()[-1]


@pytest.mark.parametrize("name, value", [
    ("DATABASE_URL", "nosuchdb://somewhere/x"),
    ("AWS_ENDPOINT_URL", "localhost:5000"),
    ("IMAGE_BUCKET", ""),
    ("SQS_VISIBILITY_TIMEOUT", "five minutes"),
    ("CELERY_BROKER_URL", "amqp://guest@localhost//"),
    ("CLASSIFIER_RUNTIME", "onnx"),
    ("AUTOSCALE_BACKEND", "kubernetes"),
    ("DEBUG", "maybe"),
    ("MAX_PIXELS_PER_BYTE", "-1"),
    ("DECODE_MAX_IMAGE_BYTES", str(2 * 1024**3)),
    ("WORKER_MAX_MEMORY_PER_CHILD", str(100 * 1024**2)),
    ("QUOTA_OPEN_IMAGES", "0"),
    ("MAX_IMAGES_PER_REQUEST", "many"),
    ("UPLOAD_RATE_LIMIT", "sixty"),
    ("REDIS_URL", "localhost:6379"),
    ("NUM_PROXIES", "one"),
    ("NUM_PROXIES", "-1"),
    ("PRESIGNED_UPLOAD_EXPIRY", "30"),
    ("UPLOAD_ORIGINS", "imgsite.example.com"),
])
def test_it_names_the_bad_setting(name, value):
    result = start_with(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr.splitlines()[-1]


def test_production_needs_a_secret_key():
    result = start_with(DEBUG="false", SECRET_KEY="", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_the_local_defaults_start():
    assert start_with(DEBUG="true", without=["SECRET_KEY"]).returncode == 0


def test_debug_is_off_unless_asked_for():
    line = refusal(start_with(without=["DEBUG", "SECRET_KEY"]))

    assert "SECRET_KEY must be set" in line


@pytest.mark.parametrize("key", [
    "too-short-to-be-a-secret",
    "dev-only-secret-key-not-for-production",
    "django-insecure-" + "x1y2z3" * 10,
    "ab" * 40,
])
def test_a_short_or_known_secret_key_refuses_to_start_with_debug_off(key):
    line = refusal(start_with(DEBUG="false", SECRET_KEY=key, ALLOWED_HOSTS="example.com"))

    assert "SECRET_KEY must be at least 50 random characters" in line


def test_a_long_random_secret_key_starts_with_debug_off():
    result = start_with(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="example.com")

    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("backend", ["ec2", "asg"])
def test_a_real_fleet_needs_its_name_spelled_out(backend):
    line = refusal(start_with(AUTOSCALE_BACKEND=backend, without=["FLEET_NAME"]))

    assert f"FLEET_NAME must be set with AUTOSCALE_BACKEND={backend}" in line
    assert start_with(AUTOSCALE_BACKEND=backend, FLEET_NAME="imgsite-staging").returncode == 0
