"""The worker role allows every AWS call a real worker makes, and little else.

A worker process and worker_env.py run with tests/deploy/aws_calls on PYTHONPATH, which
records each AWS call they make (boto3's and kombu's own SQS client). Every call must be
allowed by worker_policy() (tests/deploy/iam_requests.py evaluates them); every permission must
be used, but for two that only a failure path exercises.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from deploy.iam import worker_policy
from imgsite.aws import client, queue_url
from tests.conftest import wait_until
from tests.corpus import photo_jpeg
from tests.deploy.iam_requests import ACCOUNT, granted_actions, recorded, refused, used_actions
from tests.deploy.test_worker_env import INSTANCE_ID, metadata_service  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e]

RECORDER = Path(__file__).parent / "aws_calls"
# Sent only when a task retries, or when a worker sends images waiting in the outbox (none here);
# deleted only when an image's owner deletes it while it is classified.
# (ChangeMessageVisibility is on every task's path: the worker keeps its message hidden while it works.)
FAILURE_PATHS_ONLY = {"sqs:SendMessage", "s3:DeleteObject"}


def final_images(count):
    images = list(Image.objects.exclude(status__in=["queued", "processing"]).order_by("original_name"))
    return images if len(images) == count else None


@pytest.fixture
def ssm_secrets(aws, settings):
    settings.SSM_PARAMETER_PREFIX = "/imgsite-permissions"
    ssm = client("ssm")
    ssm.put_parameter(Name="/imgsite-permissions/DATABASE_URL", Value="postgres://db/imgsite", Type="SecureString",
                      Overwrite=True)
    return settings.SSM_PARAMETER_PREFIX


def acknowledged(log):
    """The calls recorded so far, once they include the message's deletion."""
    calls = recorded(log)
    return calls if "sqs:DeleteMessage" in used_actions(calls) else None


def test_the_role_allows_what_a_worker_does_and_nothing_it_does_not(
        alice, workers, empty_queues, tmp_path, ssm_secrets, metadata_service):  # noqa: F811
    log = tmp_path / "aws-calls.jsonl"
    recording = {"PYTHONPATH": str(RECORDER), "AWS_CALL_LOG": str(log)}
    env_file = tmp_path / "worker.env"
    subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "worker_ami" / "worker_env.py"), str(env_file)],
                   env={**os.environ, **recording, "SSM_PARAMETER_PREFIX": ssm_secrets,
                        "AWS_REGION": settings.AWS_REGION, "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_service},
                   check=True, timeout=60)
    alice.post(reverse("classifier:upload"), {"files": [SimpleUploadedFile("cat.jpg", photo_jpeg(), "image/jpeg"),
                                                        SimpleUploadedFile("gone.jpg", photo_jpeg(), "image/jpeg")]})
    gone = Image.objects.get(original_name="gone.jpg")
    client("s3").delete_object(Bucket=settings.IMAGE_BUCKET, Key=gone.file.name)
    workers(INSTANCE_ID, env={**recording, "CLASSIFY_QUEUE_URL": queue_url(settings.CLASSIFY_QUEUE)})
    finished = wait_until(lambda: final_images(2), timeout=120, message="both images to finish")
    assert [(image.original_name, image.status) for image in finished] == [("cat.jpg", "done"), ("gone.jpg", "failed")]
    assert "missing" in finished[1].error  # a 404, which S3 gives only to a role that may list the bucket

    policy = worker_policy("aws", ACCOUNT)
    # The images are final before the worker acknowledges (deletes) their message: wait for it.
    calls = wait_until(lambda: acknowledged(log), timeout=30, message="the worker to delete its message")
    assert refused(policy, calls) == []
    assert granted_actions(policy) - used_actions(calls) == FAILURE_PATHS_ONLY
