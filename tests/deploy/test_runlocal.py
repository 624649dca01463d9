"""The README's run command: the whole local system comes up, classifies an image uploaded
in a real headless Chromium, and stops without leaving a process behind."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from imgsite.processes import free_port, port_in_use
from scaling.fleets.local import process_alive
from tests.browser import chromium_page
from tests.conftest import wait_until
from tests.corpus import encode, photo

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = ("IMAGE_BUCKET", "CLASSIFY_QUEUE", "DEAD_LETTER_QUEUE", "SQS_VISIBILITY_TIMEOUT",
             "SQS_WAIT_TIME_SECONDS", "MAX_RECEIVE_COUNT", "DATABASE_URL")


def run_command_env(var_dir, moto_port):
    env = {key: value for key, value in os.environ.items() if key not in TEST_ONLY}
    env.update(DJANGO_SETTINGS_MODULE="imgsite.settings", VAR_DIR=str(var_dir),
               MODEL_DIR=str(settings.MODEL_DIR), AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
               AUTOSCALE_MAX_NODES="1")
    return env


@pytest.fixture
def running_system(tmp_path):
    """`manage.py runlocal` (what `make run` starts) with its own ports and state."""
    port, moto_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runlocal", "--port", str(port)], cwd=ROOT,
        env=run_command_env(tmp_path, moto_port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    banner = read_until(process, r"running at (\S+)\s+\(log in as (\S+) / (\S+)\)", timeout=120)
    yield {"url": banner.group(1), "username": banner.group(2), "password": banner.group(3),
           "process": process, "var_dir": tmp_path, "ports": (port, moto_port)}
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def read_until(process, pattern, timeout):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError("runlocal did not come up:\n" + "".join(seen[-30:]))


def worker_pids(var_dir):
    state = Path(var_dir) / "local-fleet.json"
    return [info["pid"] for info in json.loads(state.read_text()).values()] if state.exists() else []


def test_the_run_command_classifies_a_browser_upload_and_stops_cleanly(running_system, tmp_path):
    image = tmp_path / "chelsea.jpg"
    image.write_bytes(encode(photo("chelsea"), "JPEG"))

    with chromium_page() as page:
        page.goto(running_system["url"])
        page.fill("input[name=username]", running_system["username"])
        page.fill("input[name=password]", running_system["password"])
        page.click("button[type=submit]")
        page.set_input_files("input[type=file]", str(image))
        page.locator("form#upload-form button[type=submit]").click()
        page.wait_for_url(re.compile(r"/batches/\d+/"))
        badge = page.locator("[data-status]").first
        wait_until(lambda: page.reload() and badge.get_attribute("data-status") in ("done", "failed"),
                   timeout=120, interval=1, message="the image to be classified")
        assert badge.get_attribute("data-status") == "done"
        label = page.locator(".label").first.inner_text()
    assert re.search(r"cat|Mau", label)

    pids = worker_pids(running_system["var_dir"])
    assert pids, "the autoscaler started no worker"
    running_system["process"].send_signal(signal.SIGTERM)
    assert running_system["process"].wait(timeout=120) == 0
    assert not [pid for pid in pids if process_alive(pid)]
    assert not [port for port in running_system["ports"] if port_in_use(port)]
