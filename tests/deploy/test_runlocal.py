"""The README's run command: the whole local system comes up, classifies an image uploaded
in a real headless Chromium, and stops without leaving a process behind; a restart keeps the
images and the browser's session; a busy port stops it at once."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage

from classifier.models import Image
from deploy.management.commands.runlocal import LOCAL_USER, ensure_local_user, reconcile_images, stored_names
from imgsite.processes import free_port, port_in_use
from scaling.fleets.local import process_alive
from tests.browser import chromium_page
from tests.conftest import wait_until
from tests.corpus import encode, photo, photo_jpeg
from tests.web.conftest import make_batch

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = ("IMAGE_BUCKET", "CLASSIFY_QUEUE", "DEAD_LETTER_QUEUE", "SQS_VISIBILITY_TIMEOUT",
             "SQS_WAIT_TIME_SECONDS", "MAX_RECEIVE_COUNT", "DATABASE_URL")


def run_command_env(var_dir, moto_port):
    env = {key: value for key, value in os.environ.items() if key not in TEST_ONLY}
    env.update(DJANGO_SETTINGS_MODULE="imgsite.settings", VAR_DIR=str(var_dir),
               MODEL_DIR=str(settings.MODEL_DIR), AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
               AUTOSCALE_MAX_NODES="1")
    return env


def start_runlocal(var_dir, port, moto_port):
    return subprocess.Popen(
        [sys.executable, "manage.py", "runlocal", "--port", str(port)], cwd=ROOT,
        env=run_command_env(var_dir, moto_port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


@pytest.fixture
def run_system(tmp_path):
    """Start `manage.py runlocal` (what `make run` starts) with its own ports and state in tmp_path;
    call again after stopping it to restart it on the same ports and state."""
    ports = free_port(), free_port()
    started = []

    def start():
        process = start_runlocal(tmp_path, *ports)
        started.append(process)
        banner = read_until(process, r"running at (\S+)\s+\(log in as (\S+) / (\S+)\)", timeout=120)
        return {"url": banner.group(1), "username": banner.group(2), "password": banner.group(3),
                "process": process, "var_dir": tmp_path, "ports": ports, "said": banner.string}

    yield start
    for process in started:  # after a failure: the run command stops its children (their own sessions)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def running_system(run_system):
    return run_system()


def read_until(process, pattern, timeout):
    """The match of `pattern` in the output so far (all of it, as match.string)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return re.search(pattern, "".join(seen))
    raise AssertionError("runlocal did not come up:\n" + "".join(seen[-30:]))


def worker_pids(var_dir):
    state = Path(var_dir) / "local-fleet.json"
    return [info["pid"] for info in json.loads(state.read_text()).values()] if state.exists() else []


@pytest.mark.e2e
@pytest.mark.browser
def test_the_run_command_classifies_a_browser_upload_and_stops_cleanly(running_system, tmp_path):
    image = tmp_path / "chelsea.jpg"
    image.write_bytes(encode(photo("chelsea"), "JPEG"))

    with chromium_page() as page:
        log_in(page, running_system)
        upload_in_the_browser(page, image)
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


def log_in(page, system):
    page.goto(system["url"])
    page.fill("input[name=username]", system["username"])
    page.fill("input[name=password]", system["password"])
    page.click("button[type=submit]")


def upload_in_the_browser(page, path):
    page.wait_for_selector("form#upload-form[data-ready]", state="attached")
    page.set_input_files("input[type=file]", str(path))
    page.locator("form#upload-form button[type=submit]").click()
    page.locator("#batch-link").wait_for(state="visible", timeout=60_000)
    page.click("#batch-link")
    page.wait_for_url(re.compile(r"/batches/\d+/"))


THUMBNAILS_SHOWN = ("[...document.querySelectorAll('.card.image img')].filter("
                    "(img) => img.complete && img.naturalWidth > 0).length")


def stop(system):
    system["process"].send_signal(signal.SIGTERM)
    assert system["process"].wait(timeout=120) == 0


@pytest.mark.e2e
@pytest.mark.browser
def test_a_restart_keeps_every_image_viewable_and_the_browser_signed_in(run_system, tmp_path):
    image = tmp_path / "chelsea.jpg"
    image.write_bytes(photo_jpeg("chelsea"))
    system = run_system()
    with chromium_page() as page:
        log_in(page, system)
        upload_in_the_browser(page, image)
        batch_url = page.url
        page.wait_for_function(f"() => {THUMBNAILS_SHOWN} === 1", timeout=180_000, polling=1000)  # classified
        stop(system)

        system = run_system()  # the same ports, database and var/local-aws
        assert "image(s) had lost" not in system["said"]
        page.goto(batch_url)
        assert page.url == batch_url  # still signed in: no detour by the login page
        page.wait_for_function(f"() => {THUMBNAILS_SHOWN} === 1", timeout=30_000)
        page.click(".card.image a.thumb")
        page.wait_for_function("() => document.getElementById('original').naturalWidth === 451", timeout=30_000)

        page.goto(system["url"])  # the restarted system classifies a new upload
        upload_in_the_browser(page, image)
        page.wait_for_function(f"() => {THUMBNAILS_SHOWN} === 1", timeout=180_000, polling=1000)
    stop(system)


def test_a_busy_web_port_stops_it_at_once_naming_the_port_and_the_variable(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port, moto_port = busy.getsockname()[1], free_port()
        process = start_runlocal(tmp_path, port, moto_port)
        output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"Port {port} is already in use by another program, and the web server needs it" in output
    assert f"PORT={port + 1} make run" in output and "running at" not in output
    assert not port_in_use(moto_port)  # nothing was started


def test_a_busy_moto_port_stops_it_at_once_naming_moto_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        moto_port = busy.getsockname()[1]
        process = start_runlocal(tmp_path, free_port(), moto_port)
        output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"Port {moto_port} is already in use by another program, and the local AWS (moto) needs it" in output
    assert f"MOTO_PORT={moto_port + 1} make run" in output and "provision:" not in output


@pytest.mark.django_db
def test_the_local_login_keeps_its_password_hash_so_sessions_survive(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    ensure_local_user()
    user = get_user_model().objects.get(username=LOCAL_USER)
    session_hash = user.get_session_auth_hash()
    ensure_local_user()
    user.refresh_from_db()
    assert user.get_session_auth_hash() == session_hash and user.is_superuser
    user.set_password("changed by hand")
    user.save()
    ensure_local_user()  # the password in var/ wins again
    user.refresh_from_db()
    assert user.check_password((tmp_path / "local-password").read_text().strip())


@pytest.mark.django_db
def test_reconciling_requeues_waiting_images_and_fails_those_whose_file_is_gone(
        user, aws, sent_messages, django_capture_on_commit_callbacks):
    batch = make_batch(user, ["done", "done", "queued", "processing", "failed", "queued"], store=True)
    kept_done, lost_done, waiting, working, failed, lost_waiting = batch.images.order_by("id")
    for image in (lost_done, lost_waiting):
        default_storage.delete(image.file.name)
    default_storage.delete(kept_done.thumbnail.name)

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile_images(stored_names(settings.IMAGE_BUCKET))

    assert (report.requeued, report.missing, report.thumbnails_missing) == (2, 2, 1)
    statuses = dict(Image.objects.values_list("pk", "status"))
    assert [statuses[image.pk] for image in (kept_done, lost_done, waiting, working, failed, lost_waiting)] == [
        "done", "failed", "queued", "queued", "failed", "failed"]
    lost_done.refresh_from_db()
    assert (lost_done.error_code, lost_done.thumbnail.name) == ("missing", "")
    assert Image.objects.get(pk=kept_done.pk).thumbnail.name == ""
    sent = [image_id for message in sent_messages for image_id in message]
    assert sorted(sent) == sorted([waiting.pk, working.pk])  # their messages went with the local queue
