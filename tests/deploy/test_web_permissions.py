"""The web tier's role allows every AWS call the web tier makes, and nothing it does not.

gunicorn serves imgsite with tests/deploy/aws_calls on PYTHONPATH, which records each AWS call
(boto3's, kombu's sends included); a client then uploads, re-uploads bytes whose result is
reused (a thumbnail found, and one gone), reads an image's presigned URLs, deletes an image and
asks /healthz/deep and /metrics. Every recorded call must be allowed by web_policy(), and every
permission of it must be used.
"""
import os
import secrets
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from classifier.models import Image, thumbnail_key
from deploy.iam import web_policy
from imgsite.aws import client, queue_url
from imgsite.processes import free_port, stop_process, wait_for_port
from tests.conftest import LOG_DIR, database_url, wait_until
from tests.corpus import photo_jpeg
from tests.deploy.iam_requests import ACCOUNT, granted_actions, recorded, refused, used_actions
from tests.deploy.test_worker_permissions import RECORDER

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def web_tier(transactional_db, own_resources, tmp_path, settings):
    """gunicorn on the test database and this test's bucket and queues, recording its AWS calls:
    (base URL, the log, the metrics token)."""
    log, port, token = tmp_path / "aws-calls.jsonl", free_port(), secrets.token_urlsafe(32)
    call_command("createcachetable", verbosity=0)  # the rate limits' shared cache
    env = {**os.environ, "PYTHONPATH": str(RECORDER), "AWS_CALL_LOG": str(log), "DATABASE_URL": database_url(),
           "IMAGE_BUCKET": own_resources, "CLASSIFY_QUEUE": own_resources, "DEAD_LETTER_QUEUE": f"{own_resources}-dlq",
           "CLASSIFY_QUEUE_URL": queue_url(own_resources), "METRICS_TOKEN": token,
           "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / "permissions-web.log", "ab") as output:
        argv = [sys.executable, "-m", "gunicorn", "-c", "imgsite/gunicorn.conf.py", "imgsite.wsgi"]
        gunicorn = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=gunicorn)
        yield f"http://127.0.0.1:{port}", log, token
    finally:
        stop_process(gunicorn, timeout=30)


def upload(base, key, *names):
    answer = requests.post(f"{base}/api/v1/batches", headers={"Authorization": f"Token {key}"}, timeout=60,
                           files=[("images", (f"{name}.jpg", photo_jpeg(name))) for name in names])
    assert answer.status_code == 201, answer.text[:1000]
    return [image["id"] for image in answer.json()["images"]]


def sent(log, count):
    """The calls recorded once `count` messages were sent (each sends after its upload commits)."""
    calls = recorded(log)
    return calls if sum(call["operation"] == "SendMessage" for call in calls) >= count else None


def test_the_role_allows_what_the_web_tier_does_and_nothing_it_does_not(web_tier, django_user_model, own_resources,
                                                                        capsys):
    base, log, metrics_token = web_tier
    django_user_model.objects.create_user("dora")
    call_command("create_api_token", "dora")
    key = capsys.readouterr().out.strip()
    first, second = upload(base, key, "chelsea", "coffee")
    wait_until(lambda: sent(log, 1), timeout=30, message="the upload's message")
    # Both done: the first's thumbnail is stored, the second's is gone, so only the first's result is reused.
    for uuid, stored in ((first, True), (second, False)):
        image = Image.objects.get(uuid=uuid)
        image.status, image.model_name, image.thumbnail = "done", settings.CLASSIFIER_MODEL, thumbnail_key(image, "")
        image.save()
        if stored:
            client("s3").put_object(Bucket=own_resources, Key=image.thumbnail.name, Body=b"jpeg")
    again = upload(base, key, "chelsea", "coffee")
    headers = {"Authorization": f"Token {key}"}
    urls = requests.get(f"{base}/api/v1/images/{first}/urls", headers=headers, timeout=30)
    deleted = requests.delete(f"{base}/api/v1/images/{second}", headers=headers, timeout=30)
    deep = requests.get(f"{base}/healthz/deep", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=30)
    metrics = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=30)
    wait_until(lambda: sent(log, 2), timeout=30, message="the second upload's message")
    time.sleep(1)  # the deletion's objects go once its transaction commits
    calls = recorded(log)

    assert [Image.objects.get(uuid=uuid).status for uuid in again] == ["done", "queued"]
    assert (urls.status_code, deleted.status_code, deep.status_code, metrics.status_code) == (200, 204, 200, 200)
    assert any(call["operation"] == "DeleteObjects" for call in calls)
    policy = web_policy("aws", ACCOUNT)
    assert refused(policy, calls) == []
    assert granted_actions(policy) == used_actions(calls)
