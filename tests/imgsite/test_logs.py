"""Log lines: JSON lines that parse, each event once, tracebacks only for real errors, journald."""
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from celery import shared_task

from imgsite.logs import JournalFormatter, TaskContext, logging_config, under_journald
from imgsite.processes import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh process with the real settings: a request for a missing page, one from a
# stranger's Host, a log line with ids, and an error with its traceback.
SCRIPT = """
import logging, django
django.setup()
from django.test import Client
client = Client()
client.get("/no-such-page")
client.get("/accounts/login/", HTTP_HOST="evil.example")
logging.getLogger("classifier.tasks").info("classified %d of %d images", 3, 4, extra={"image_ids": [7, 8, 9]})
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("scaling.autoscale").exception("autoscaler pass failed")
"""


def run_script(**environment):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DEBUG": "true", "VAR_DIR": str(ROOT / "var"),
           **environment}
    env.pop("JOURNAL_STREAM", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_json_lines_parse_one_event_per_line():
    events = [json.loads(line) for line in run_script(LOG_FORMAT="json")]

    by_message = {event["message"]: event for event in events}
    classified = by_message["classified 3 of 4 images"]
    assert classified["level"] == "INFO" and classified["logger"] == "classifier.tasks"
    assert classified["image_ids"] == [7, 8, 9] and "timestamp" in classified
    failed = by_message["autoscaler pass failed"]
    assert failed["level"] == "ERROR" and "ZeroDivisionError" in failed["exc_info"]  # the traceback, inside its line
    assert by_message["Not Found: /no-such-page"]["status_code"] == 404


def test_each_event_is_written_once():
    lines = run_script(LOG_FORMAT="plain")

    # Django's own "django" logger used to print these a second time in DEBUG.
    assert sum("Not Found: /no-such-page" in line for line in lines) == 1
    assert sum("Invalid HTTP_HOST header" in line for line in lines) == 1


def test_a_strangers_host_is_a_warning_without_a_traceback():
    lines = run_script(LOG_FORMAT="plain")

    host = next(line for line in lines if "Invalid HTTP_HOST header" in line)
    assert " WARNING django.security.DisallowedHost " in host
    assert "Traceback" not in "\n".join(lines[:lines.index(host) + 2])
    assert sum(line.startswith("Traceback") for line in lines) == 1  # the real error's


@shared_task
def logs_inside_a_task():
    logging.getLogger("classifier.tasks").info("inside")


def test_a_tasks_lines_carry_its_id(caplog):
    handler_filter = TaskContext()
    caplog.handler.addFilter(handler_filter)
    try:
        logs_inside_a_task.apply(task_id="task-123")
        logging.getLogger("classifier.tasks").info("outside")
    finally:
        caplog.handler.removeFilter(handler_filter)

    inside, outside = (record for record in caplog.records if record.getMessage() in ("inside", "outside"))
    assert (inside.task_id, inside.task_name) == ("task-123", logs_inside_a_task.name)
    assert not hasattr(outside, "task_id")


@pytest.mark.django_db
def test_the_workers_task_logs_its_image_ids(caplog):
    from classifier.tasks import classify_images

    classify_images([404, 405])  # nothing to claim: no such images

    [record] = [record for record in caplog.records if record.name == "classifier.tasks"]
    assert record.image_ids == [404, 405]


def test_under_journald_the_journal_gets_priorities_and_no_second_timestamp(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        status = os.fstat(stream.fileno())
        assert under_journald({"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}, stream.fileno())
        assert not under_journald({"JOURNAL_STREAM": "1:2"}, stream.fileno())  # inherited, but not our stderr
        assert not under_journald({}, stream.fileno())
    config = logging_config("plain", "INFO", journald=True)["formatters"]["line"]
    formatter = JournalFormatter(config["format"])
    record = logging.LogRecord("scaling.autoscale", logging.WARNING, __file__, 1, "slow pass", (), None)

    assert formatter.format(record) == "<4>WARNING scaling.autoscale slow pass"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config("xml")


def test_gunicorn_writes_json_lines_once_and_opens_no_control_socket(tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DEBUG": "true", "LOG_FORMAT": "json",
           "VAR_DIR": str(ROOT / "var"), "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "imgsite/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "imgsite.wsgi"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=process)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
        time.sleep(0.5)
    finally:
        stop_process(process)

    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    loggers = [event["logger"] for event in events]
    assert "gunicorn.error" in loggers
    assert sum('"GET /healthz HTTP/1.1" 200' in event["message"] for event in events) == 1
    assert not list(tmp_path.rglob("*.ctl"))
