"""200 small images in one API call leave the web process's memory flat: uploads stream through
temporary files to S3, and nothing holds the request body in memory.

The server is a real gunicorn worker in its own process, so its resident set (VmRSS) and its
high-water mark (VmHWM) from /proc are the web process's own, not the test runner's.
"""
import io
import os
import secrets
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from rest_framework.authtoken.models import Token

from classifier.models import Image
from imgsite.local import free_port, start_process, stop_process, wait_for_port
from tests.conftest import LOG_DIR, database_url, wait_until
from tests.corpus import encode, photo, photo_jpeg

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(settings.VAR_DIR) / "artifacts"
IMAGES = 200


def memory_kb(pid):
    """VmRSS and VmHWM of a process, in kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def worker_pid(master):
    """gunicorn's single worker process: the master's only child."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    return int(wait_until(lambda: children.read_text().split(), timeout=30, message="the gunicorn worker")[0])


@pytest.fixture
def gunicorn(transactional_db, aws, empty_queues):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DATABASE_URL": database_url(),
           "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "false"}
    argv = [sys.executable, "-m", "gunicorn", "imgsite.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "1", "--timeout", "300"]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    process = start_process(argv, env=env, log_path=LOG_DIR / "gunicorn-memory.log")
    wait_for_port("127.0.0.1", port, process=process)
    yield f"http://127.0.0.1:{port}", process
    stop_process(process)


def upload(base_url, token, files, content_type):
    response = requests.post(f"{base_url}/api/v1/batches", headers={"Authorization": f"Token {token}"},
                             files=[("images", (name, io.BytesIO(data), content_type)) for name, data in files],
                             timeout=300)
    assert response.status_code == 201, response.text[:500]
    return response.json()


def measured_upload(base_url, token, pid, files, content_type):
    """Upload in one call; returns the answer, the body size and the peak (VmHWM) growth, in MB."""
    before = memory_kb(pid)
    answer = upload(base_url, token, files, content_type)
    after = memory_kb(pid)
    body_mb = sum(len(data) for _, data in files) / 2**20
    growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    line = (f"{len(files)} {content_type} images, body {body_mb:.1f} MB: VmRSS {before['VmRSS'] / 1024:.1f} → "
            f"{after['VmRSS'] / 1024:.1f} MB, VmHWM {before['VmHWM'] / 1024:.1f} → {after['VmHWM'] / 1024:.1f} MB "
            f"(peak growth {growth_mb:.1f} MB)")
    return answer, body_mb, growth_mb, line


def test_200_images_in_one_call_leave_the_web_process_flat(gunicorn, user):
    base_url, master = gunicorn
    token = Token.objects.create(user=user).key
    names = ("chelsea", "coffee", "astronaut", "rocket")
    small = [(f"photo{n}.jpg", photo_jpeg(names[n % 4])) for n in range(IMAGES)]  # ~55 kB each
    large = [(f"photo{n}.png", encode(photo(names[n % 4]), "PNG")) for n in range(IMAGES)]  # ~340 kB each

    pid = worker_pid(master)
    # The first calls pay once for imports, S3 and SQS clients, connections and allocator arenas:
    # the process settles after a couple of calls, and then stays flat however large the body.
    *_, cold_line = measured_upload(base_url, token, pid, small, "image/jpeg")
    measured_upload(base_url, token, pid, large, "image/png")
    answer, small_mb, small_growth, small_line = measured_upload(base_url, token, pid, small, "image/jpeg")
    _, large_mb, large_growth, large_line = measured_upload(base_url, token, pid, large, "image/png")

    lines = [f"first call (cold): {cold_line}", small_line, large_line]
    print(*lines, sep="\n")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "upload-memory.txt").write_text("\n".join(lines) + "\n")
    assert len(answer["images"]) == IMAGES and not answer["refused"]
    assert Image.objects.filter(batch_id=answer["id"]).count() == IMAGES
    # Holding a body in memory even once would cost its whole size; streaming costs about a file at a time.
    assert small_growth < small_mb / 2
    assert large_mb > 50 and large_growth < large_mb / 8
