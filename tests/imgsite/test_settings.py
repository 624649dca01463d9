"""Bad configuration stops start-up with a message that names the setting."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_with(**environment):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", **environment}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)


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
])
def test_it_names_the_bad_setting(name, value):
    result = start_with(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr.splitlines()[-1]


def test_production_needs_a_secret_key():
    result = start_with(DEBUG="false", SECRET_KEY="", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_the_defaults_start():
    assert start_with().returncode == 0
