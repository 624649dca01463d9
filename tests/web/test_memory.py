"""200 small images in one API call leave the web process's memory flat: uploads stream through
temporary files to S3, and nothing holds the request body in memory. 30 small files declaring
40 megapixels each are checked from their headers alone, in moments and next to no memory.

The server is a real gunicorn worker in its own process, so its resident set (VmRSS) and its
high-water mark (VmHWM) from /proc are the web process's own, not the test runner's.
"""
import io
import os
import secrets
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.models import ApiToken
from classifier.models import Image
from imgsite.processes import free_port, start_process, stop_process, wait_for_port
from tests.conftest import LOG_DIR, database_url, memory_kb, wait_until
from tests.corpus import encode, flat_png, photo, photo_jpeg

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(settings.VAR_DIR) / "artifacts"
IMAGES = 200


def worker_pid(master):
    """gunicorn's single worker process: the master's only child."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    return int(wait_until(lambda: children.read_text().split(), timeout=30, message="the gunicorn worker")[0])


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def gunicorn(request, transactional_db, aws, empty_queues):
    """A gunicorn server with one worker process; extra environment from the test's parameter."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DATABASE_URL": database_url(),
           "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "false", **getattr(request, "param", {})}
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
    _, token = ApiToken.objects.issue(user, "memory")
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


LARGE_PICTURES = 30


@pytest.mark.parametrize("gunicorn", [{}, {"MAX_PIXELS_PER_BYTE": "0"}], indirect=True,
                         ids=["refused for their pixels per byte", "accepted with that check off"])
def test_30_small_40_megapixel_pngs_are_checked_from_their_headers_alone(gunicorn, user):
    base_url, master = gunicorn
    _, token = ApiToken.objects.issue(user, "memory")
    pid = worker_pid(master)
    upload(base_url, token, [(f"warm-up{n}.jpg", photo_jpeg(max_side=64)) for n in range(2)], "image/jpeg")
    pictures = [(f"large{n}.png", flat_png(8000, 5000 - n)) for n in range(LARGE_PICTURES)]
    body_mb = sum(len(data) for _, data in pictures) / 2**20

    before, cpu_before, started = memory_kb(pid), cpu_seconds(pid), time.monotonic()
    response = requests.post(f"{base_url}/api/v1/batches", headers={"Authorization": f"Token {token}"},
                             files=[("images", (name, io.BytesIO(data), "image/png")) for name, data in pictures],
                             timeout=300)
    seconds, cpu, after = time.monotonic() - started, cpu_seconds(pid) - cpu_before, memory_kb(pid)
    growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    line = (f"{LARGE_PICTURES} PNGs of 40 MP, body {body_mb:.1f} MB: answered {response.status_code} in "
            f"{seconds:.2f} s, web worker CPU {cpu:.2f} s, VmHWM {before['VmHWM'] / 1024:.1f} → "
            f"{after['VmHWM'] / 1024:.1f} MB (peak growth {growth_mb:.1f} MB)")
    print(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "upload-memory.txt", "a") as artifact:
        artifact.write(line + "\n")

    answer = response.json()
    if response.status_code == 400:  # the default: refused, each for its pixels per byte
        assert len(answer["refused"]) == LARGE_PICTURES
        assert all(refusal["error_code"] == "too_many_pixels" for refusal in answer["refused"])
    else:
        assert response.status_code == 201 and len(answer["images"]) == LARGE_PICTURES
    # Decoding even one of them in full would take a large part of both.
    assert seconds < 2 and growth_mb < 50
