"""Helpers shared by the fleet tests (moto's in-process EC2, the WorkerNode table, the images' leases)."""
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from classifier.models import Batch, Image
from scaling.models import WorkerNode


def describe(ec2, node_id):
    return ec2.describe_instances(InstanceIds=[node_id])["Reservations"][0]["Instances"][0]


def ec2_state(ec2, node_id):
    return describe(ec2, node_id)["State"]["Name"]


def start_worker(node_id, busy=False, at=None):
    """What a node's worker reports: started, optionally busy with one task, last heard of `at`."""
    WorkerNode.report_started(node_id)
    if busy:
        start_task(node_id)
    if at:
        WorkerNode.objects.filter(name=node_id).update(last_heartbeat=at)


def start_task(node_id, lease_seconds=30):
    """A task on the node: an image claimed by its worker process, under a live lease."""
    owner, _ = get_user_model().objects.get_or_create(username="fleet-tests")
    now = timezone.now()
    Image.objects.create(owner=owner, batch=Batch.objects.create(owner=owner), original_name="x.jpg", size=1,
                         sha256="0" * 64, file="images/x/original.jpg", status="processing",
                         worker=f"{node_id}:1", started_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))


def finish_tasks(node_id):
    Image.objects.filter(worker=f"{node_id}:1").update(status="done")
