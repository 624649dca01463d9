"""The autoscaler's role, as provisioned, allows every AWS call the autoscaler makes, and nothing
it does not, with each backend.

`manage.py autoscale --once` runs with tests/deploy/aws_calls on PYTHONPATH, which records each
AWS call, through the passes of a node's life: a waiting message launches it (the sweeper meanwhile
fails a dead letter's image, sends an image from the outbox and lists the bucket for orphans);
on the asg backend a lease makes it busy, so it is protected from scale-in, then idle; with no
work left it is retired. Each call is evaluated against the role's document as provisioned on
moto, conditions included (tests/deploy/iam_requests.py): the fleet's tags, the launch template,
the instance type, the role passed and the metric's namespace.
"""
import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from uuid import uuid4

import pytest
from django.core.management import call_command
from django.utils import timezone

from classifier.models import Batch, Image
from deploy.iam import autoscaler_role_name
from deploy.provision import provision
from imgsite.aws import client, queue_url
from tests.conftest import database_url, drain
from tests.deploy.iam_requests import granted_actions, recorded, refused, used_actions
from tests.deploy.test_worker_permissions import RECORDER

pytestmark = [pytest.mark.e2e]

# Objects are swept once older than ORPHAN_GRACE_SECONDS (an hour at least): none is, here.
UNUSED_HERE = {"s3:DeleteObject"}


def new_image(owner, **fields):
    return Image.objects.create(owner=owner, batch=Batch.objects.create(owner=owner), size=1, sha256="0" * 64,
                                file=f"images/{uuid4()}/original.jpg", original_name="cat.jpg", **fields)


def dead_letter(image):
    """A task message for `image`, as kombu puts it on SQS."""
    payload = base64.b64encode(json.dumps([[[image.pk]], {}, {}]).encode()).decode()
    return json.dumps({"body": payload, "properties": {"body_encoding": "base64"}})


def fleet(backend, name):
    """The ids of the fleet's live instances."""
    if backend == "asg":
        group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        return [member["InstanceId"] for member in group["AutoScalingGroups"][0]["Instances"]
                if not member["LifecycleState"].startswith("Terminat")]
    reservations = client("ec2").describe_instances(Filters=[
        {"Name": "tag:imgsite:fleet", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return [instance["InstanceId"] for reservation in reservations["Reservations"]
            for instance in reservation["Instances"]]


@pytest.mark.parametrize("backend", ["ec2", "asg"])
def test_the_role_allows_what_the_autoscaler_does_and_nothing_it_does_not(
        backend, transactional_db, own_names, moto_ami, django_user_model, tmp_path, settings):
    settings.AUTOSCALE_BACKEND, settings.AUTOSCALE_CLOUDWATCH_METRIC = backend, backend == "asg"
    provision(iam=True, launch_template=True, asg=backend == "asg", ami_id=moto_ami)
    policy = client("iam").get_role_policy(RoleName=autoscaler_role_name(),
                                           PolicyName="imgsite-autoscaler")["PolicyDocument"]
    call_command("createcachetable", verbosity=0)  # the orphan sweep's cursor
    log = tmp_path / "aws-calls.jsonl"
    env = {**os.environ, "PYTHONPATH": str(RECORDER), "AWS_CALL_LOG": str(log), "DATABASE_URL": database_url(),
           "DJANGO_SETTINGS_MODULE": "imgsite.settings", "VAR_DIR": str(tmp_path / "var"),
           "IMAGE_BUCKET": own_names, "CLASSIFY_QUEUE": own_names, "DEAD_LETTER_QUEUE": f"{own_names}-dlq",
           "CLASSIFY_QUEUE_URL": queue_url(own_names), "AUTOSCALE_BACKEND": backend, "FLEET_NAME": own_names,
           "ASG_NAME": own_names, "EC2_LAUNCH_TEMPLATE": own_names, "AUTOSCALE_MAX_NODES": "2",
           "AUTOSCALE_CLOUDWATCH_METRIC": str(backend == "asg").lower(),
           # No warm node held, nor a floor for the (few, quick) images of this test.
           "AUTOSCALE_IDLE_HOLD_SECONDS": "0", "AUTOSCALE_RATE_WINDOW": "1"}

    def autoscale():
        result = subprocess.run([sys.executable, "manage.py", "autoscale", "--once"], cwd=settings.BASE_DIR, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    owner = django_user_model.objects.create_user("erin")
    client("sqs").send_message(QueueUrl=queue_url(own_names), MessageBody="an image is waiting")
    gave_up = new_image(owner)
    client("sqs").send_message(QueueUrl=queue_url(f"{own_names}-dlq"), MessageBody=dead_letter(gave_up))
    waiting = new_image(owner)  # in the outbox

    autoscale()
    launched = fleet(backend, own_names)
    assert launched
    gave_up.refresh_from_db()
    waiting.refresh_from_db()
    assert (gave_up.status, waiting.sent_at is not None) == ("failed", True)
    drain(own_names)
    Image.objects.filter(pk=waiting.pk).update(status="done", finished_at=timezone.now())
    if backend == "asg":  # busy: protected from the group's scale-in; then idle again
        busy = new_image(owner, status="processing", worker=f"{launched[0]}:1", started_at=timezone.now(),
                         lease_expires_at=timezone.now() + timedelta(minutes=5))
        autoscale()
        Image.objects.filter(pk=busy.pk).update(status="done", lease_expires_at=None, finished_at=timezone.now())
    autoscale()

    assert fleet(backend, own_names) == []
    calls = recorded(log)
    assert refused(policy, calls) == []
    assert granted_actions(policy) - used_actions(calls) == UNUSED_HERE
