"""Shared fixtures: the suite's moto server, provisioned resources, real worker processes."""
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from deploy.local import start_moto
from deploy.provision import provision
from imgsite.aws import client
from imgsite.processes import stop_process
from scaling.fleets.local import start_worker

LOG_DIR = Path(settings.VAR_DIR) / "logs"


def wait_until(predicate, timeout=60.0, interval=0.2, message="condition"):
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def memory_kb(pid):
    """VmRSS and VmHWM (the peak resident set) of a process, in kB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def reset_peak_memory(pid):
    """Start VmHWM again from the current resident set (Linux's clear_refs, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.fixture(scope="session")
def moto_server():
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    process = start_moto(settings.AWS_ENDPOINT_URL, log_path=LOG_DIR / "moto.log")
    yield settings.AWS_ENDPOINT_URL
    stop_process(process)


@pytest.fixture(scope="session")
def aws(moto_server):
    """A provisioned bucket, queue and dead-letter queue on the suite's moto server."""
    provision()
    return moto_server


def drain(queue_name):
    """Delete every visible message (PurgeQueue allows only one call a minute)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ])


@pytest.fixture
def empty_queues(aws):
    for name in (settings.CLASSIFY_QUEUE, settings.DEAD_LETTER_QUEUE):
        drain(name)


def database_url():
    """The URL of the test database, for worker processes (after the test database exists)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db["USER"] else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def workers(transactional_db, aws):
    """Start real Celery worker processes on the test database, with extra `env` if given;
    stopped after the test."""
    started, long_polls = [], [settings.CELERY_BROKER_TRANSPORT_OPTIONS["wait_time_seconds"]]

    def start(node="test-worker", env=None, pool="threads"):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = {"DATABASE_URL": database_url(), **(env or {})}
        long_polls.append(int(env.get("SQS_WAIT_TIME_SECONDS", long_polls[0])))
        process = start_worker(node, env=env, log_path=LOG_DIR / f"{node}.log", pool=pool)
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process, timeout=30)
    # A stopped worker's last long poll stays open in SQS and would take the next test's first
    # message (holding it for a visibility timeout, and counting a receive): let it run out.
    time.sleep(max(long_polls) + 1)


@pytest.fixture
def sent_messages(monkeypatch):
    """The messages that would have gone to SQS, as lists of image ids (nothing is sent)."""
    messages = []
    monkeypatch.setattr("classifier.tasks.classify_images.apply_async",
                        lambda args, **options: messages.append(list(args[0])))
    return messages


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct horse battery")


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client


def remove_sqlite_test_database():
    """Django replaces the SQLite test database file but not its WAL files; stale ones
    make the next connection fail with 'disk I/O error'."""
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


def pytest_configure(config):
    remove_sqlite_test_database()


def pytest_unconfigure(config):
    remove_sqlite_test_database()


@pytest.fixture
def sync_browser_may_use_the_database(monkeypatch):
    """Playwright's sync API runs an event loop in this thread; Django must still allow ORM calls."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
