"""Test settings: the real settings module, pointed at a moto server of the suite's own.

Values are put in the environment before imgsite.settings reads them, so worker
processes started by the tests inherit exactly the same configuration.
"""
import os
from pathlib import Path

from imgsite.processes import free_port

# Production defaults DEBUG to off; the suite (and the processes it starts) run as `make test` does.
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("IMAGE_BUCKET", "imgsite-test-images")
os.environ.setdefault("CLASSIFY_QUEUE", "imgsite-test-classify")
os.environ.setdefault("DEAD_LETTER_QUEUE", "imgsite-test-classify-dlq")
# Short enough that a killed worker's message comes back within the test's patience.
os.environ.setdefault("SQS_VISIBILITY_TIMEOUT", "12")
os.environ.setdefault("SQS_WAIT_TIME_SECONDS", "1")
os.environ.setdefault("MAX_RECEIVE_COUNT", "2")
os.environ.setdefault("VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))
os.environ.setdefault("MODEL_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "models"))

from imgsite.settings import *  # noqa: F403
from imgsite.settings import DATABASES, STATIC_ROOT, VAR_DIR

# Worker processes must see the test database, so SQLite's test database is a file;
# one per test run, so that runs side by side don't replace each other's.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    os.environ.setdefault("TEST_SQLITE_NAME", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3"))
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_SQLITE_NAME"]}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# whitenoise warns about a missing STATIC_ROOT on every request; tests serve static files
# through the staticfiles finders instead of collectstatic.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
