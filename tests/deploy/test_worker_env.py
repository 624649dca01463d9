"""worker_ami/worker_env.py against a fake instance metadata service and moto's SSM."""
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pytest
from django.conf import settings

from imgsite.aws import client

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


def test_it_writes_the_instance_id_the_cores_and_the_secrets(prefix, metadata_service, tmp_path):
    put(prefix, "DATABASE_URL", 'postgres://imgsite:p"a$s\\w`d@db:5432/imgsite')
    put(prefix, "SECRET_KEY", "k" * 50)
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode == 0, result.stderr
    assert output.read_text().splitlines() == [
        r'DATABASE_URL="postgres://imgsite:p\"a\$s\\w\`d@db:5432/imgsite"',
        f'SECRET_KEY="{"k" * 50}"',
        f'WORKER_NODE="{INSTANCE_ID}"',
        f'WORKER_CONCURRENCY="{os.cpu_count()}"',
    ]
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_the_concurrency_set_in_the_user_data_wins(prefix, metadata_service, tmp_path):
    put(prefix, "DATABASE_URL", "postgres://db/imgsite")
    put(prefix, "SECRET_KEY", "k" * 50)
    output = tmp_path / "worker.env"

    assert run(output, prefix, metadata_service, WORKER_CONCURRENCY="3").returncode == 0
    assert 'WORKER_CONCURRENCY="3"' in output.read_text().splitlines()


def test_it_refuses_to_start_without_the_database_url(prefix, metadata_service, tmp_path):
    put(prefix, "SECRET_KEY", "k" * 50)
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode != 0
    assert f"no {prefix}/DATABASE_URL in SSM Parameter Store" in result.stderr
    assert not output.exists()


def test_it_ignores_parameters_that_are_no_variable_names(prefix, metadata_service, tmp_path):
    put(prefix, "DATABASE_URL", "postgres://db/imgsite")
    put(prefix, "SECRET_KEY", "k" * 50)
    put(prefix, "not-a-name", "x")
    output = tmp_path / "worker.env"

    result = run(output, prefix, metadata_service)

    assert result.returncode == 0, result.stderr
    assert "not-a-name" not in output.read_text() and "ignoring" in result.stderr
