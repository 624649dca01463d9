"""worker_ami/worker_env.py against a fake instance metadata service and moto's SSM: the allowed
parameters only, and a SECRET_KEY of the worker's own."""
import os
import re
import secrets
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from imgsite.aws import client
from tests.conftest import database_url, wait_until
from tests.corpus import photo_jpeg

SCRIPT = Path(settings.BASE_DIR) / "worker_ami" / "worker_env.py"
INSTANCE_ID = "i-0123456789abcdef0"


class FakeMetadataService(BaseHTTPRequestHandler):
    """IMDSv2 only: the instance id is given only with a token from PUT /latest/api/token."""

    token = "token-" + uuid4().hex

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.answer(200, self.token)
        else:
            self.answer(400, "")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self.answer(401, "")
        elif self.path == "/latest/meta-data/instance-id":
            self.answer(200, INSTANCE_ID)
        else:
            self.answer(404, "")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def metadata_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMetadataService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def prefix(aws):
    """An SSM path of this test's own, removed afterwards."""
    path = f"/imgsite-test-{uuid4().hex[:8]}"
    yield path
    ssm = client("ssm")
    for parameter in ssm.get_parameters_by_path(Path=path)["Parameters"]:
        ssm.delete_parameter(Name=parameter["Name"])


def put(prefix, name, value):
    client("ssm").put_parameter(Name=f"{prefix}/{name}", Value=value, Type="SecureString")


def run(output, prefix, metadata_service, **extra):
    env = {key: value for key, value in os.environ.items() if key != "WORKER_CONCURRENCY"}
    env.update(SSM_PARAMETER_PREFIX=prefix, AWS_EC2_METADATA_SERVICE_ENDPOINT=metadata_service,
               AWS_REGION=settings.AWS_REGION, **extra)
    return subprocess.run([sys.executable, str(SCRIPT), str(output)], env=env, capture_output=True, text=True,
                          timeout=60)


def environment_file(path):
    """{NAME: value} as systemd's EnvironmentFile= reads the double-quoted values back."""
    values = {}
    for line in path.read_text().splitlines():
        name, _, quoted = line.partition("=")
        values[name] = re.sub(r"\\(.)", r"\1", quoted[1:-1])
    return values


def test_it_writes_the_instance_id_the_cores_the_database_url_and_a_key_of_its_own(prefix, metadata_service,
                                                                                   tmp_path):
    put(prefix, "DATABASE_URL", 'postgres://imgsite:p"a$s\\w`d@db:5432/imgsite')
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode == 0, result.stderr
    lines = output.read_text().splitlines()
    assert lines[0] == r'DATABASE_URL="postgres://imgsite:p\"a\$s\\w\`d@db:5432/imgsite"'
    assert re.fullmatch(r'SECRET_KEY="[A-Za-z0-9_-]{60,}"', lines[1])
    assert lines[2:] == [f'WORKER_NODE="{INSTANCE_ID}"', f'WORKER_CONCURRENCY="{os.cpu_count()}"']
    assert environment_file(output)["DATABASE_URL"] == 'postgres://imgsite:p"a$s\\w`d@db:5432/imgsite'
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_the_concurrency_set_in_the_user_data_wins(prefix, metadata_service, tmp_path):
    put(prefix, "DATABASE_URL", "postgres://db/imgsite")
    output = tmp_path / "worker.env"

    assert run(output, prefix, metadata_service, WORKER_CONCURRENCY="3").returncode == 0
    assert 'WORKER_CONCURRENCY="3"' in output.read_text().splitlines()


def test_it_refuses_to_start_without_the_database_url(prefix, metadata_service, tmp_path):
    put(prefix, "SENTRY_DSN", "https://key@o0.ingest.sentry.io/1")
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode != 0
    assert f"no {prefix}/DATABASE_URL in SSM Parameter Store" in result.stderr
    assert not output.exists()


def test_it_reads_only_the_allowed_parameters_and_never_the_webs_secret_key(prefix, metadata_service, tmp_path):
    web_key = "web-" + secrets.token_urlsafe(50)
    put(prefix, "DATABASE_URL", "postgres://worker@db/imgsite")
    put(prefix, "SENTRY_DSN", "https://key@o0.ingest.sentry.io/1")
    put(prefix, "SECRET_KEY", web_key)
    put(prefix, "AWS_SECRET_ACCESS_KEY", "not-for-workers")
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode == 0, result.stderr
    values = environment_file(output)
    assert set(values) == {"DATABASE_URL", "SENTRY_DSN", "SECRET_KEY", "WORKER_NODE", "WORKER_CONCURRENCY"}
    assert values["SENTRY_DSN"] == "https://key@o0.ingest.sentry.io/1"
    assert web_key not in output.read_text() and "not-for-workers" not in output.read_text()


def test_each_start_makes_a_new_key_that_production_settings_accept(prefix, metadata_service, tmp_path):
    put(prefix, "DATABASE_URL", "postgres://db/imgsite")
    keys = []
    for start in range(2):
        assert run(tmp_path / f"{start}.env", prefix, metadata_service).returncode == 0
        keys.append(environment_file(tmp_path / f"{start}.env")["SECRET_KEY"])

    assert keys[0] != keys[1]
    check = subprocess.run([sys.executable, "-c", "import imgsite.settings"], cwd=settings.BASE_DIR, timeout=60,
                           env={**os.environ, "DEBUG": "false", "SECRET_KEY": keys[0]}, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.e2e
def test_a_worker_classifies_with_a_key_of_its_own_and_the_webs_is_not_in_its_environment(
        prefix, metadata_service, tmp_path, workers, alice, empty_queues):
    web_key = "web-" + secrets.token_urlsafe(50)
    put(prefix, "DATABASE_URL", database_url())
    put(prefix, "SECRET_KEY", web_key)  # where the old instructions put it
    output = tmp_path / "worker.env"
    assert run(output, prefix, metadata_service).returncode == 0
    values = environment_file(output)

    worker = workers(INSTANCE_ID, env={**values, "DEBUG": "false"})
    alice.post(reverse("classifier:upload"), {"files": [SimpleUploadedFile("cat.jpg", photo_jpeg(), "image/jpeg")]})
    image = wait_until(lambda: Image.objects.filter(status__in=["done", "failed"]).first(), timeout=120,
                       message="the worker to classify the upload")

    assert image.status == "done", image.error
    environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    assert f"SECRET_KEY={values['SECRET_KEY']}".encode() in environ
    assert not any(web_key.encode() in variable for variable in environ)
