"""EC2 fleet: each node is an instance tagged imgsite:fleet=FLEET_NAME, running one worker.

The worker on an instance reports as WORKER_NODE = its instance id, so WorkerNode.name is
the instance id. This fleet lists and terminates only instances that carry its tag.
"""
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from imgsite.aws import client
from scaling.fleets.nodes import BOOTING, DRAINING, Node, worker_rows, worker_state
from scaling.models import WorkerNode

log = logging.getLogger(__name__)

FLEET_TAG = "imgsite:fleet"
# When the node was asked to drain: kept on the instance, so the drain timeout survives
# an autoscaler restart and a worker that restarts (resetting WorkerNode.draining).
DRAINING_TAG = "imgsite:draining-since"
# Stopped instances are listed too: as draining, so that they are cleaned up, not orphaned.
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def tag_value(instance, key):
    return next((tag["Value"] for tag in instance.get("Tags", []) if tag["Key"] == key), None)


def draining_since(instance):
    value = tag_value(instance, DRAINING_TAG)
    return datetime.fromisoformat(value) if value else None


def launch_parameters():
    """run_instances arguments: the provisioned launch template (`manage.py provision
    --with-launch-template`), which fixes the image, instance type, role and user data. Never
    anything else, so the autoscaler's role can be limited to launching from that template."""
    template = settings.EC2_LAUNCH_TEMPLATE
    if not template:
        raise ImproperlyConfigured("the ec2 backend launches only from a launch template: set EC2_LAUNCH_TEMPLATE "
                                   "(made by `manage.py provision --with-launch-template`)")
    key = "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName"
    return {"LaunchTemplate": {key: template}}


class Ec2Fleet:
    def __init__(self, ec2=None, fleet_name=None):
        self.ec2 = ec2 or client("ec2")
        self.fleet_name = fleet_name or settings.FLEET_NAME

    def instances(self, node_ids=None):
        """This fleet's live instances (of `node_ids` only, if given); others are never returned."""
        filters = [{"Name": f"tag:{FLEET_TAG}", "Values": [self.fleet_name]},
                   {"Name": "instance-state-name", "Values": LIVE_STATES}]
        if node_ids is not None:
            if not node_ids:
                return []
            filters.append({"Name": "instance-id", "Values": list(node_ids)})
        pages = self.ec2.get_paginator("describe_instances").paginate(Filters=filters)
        return [instance for page in pages for reservation in page["Reservations"]
                for instance in reservation["Instances"]]

    def list(self):
        instances = self.instances()
        rows = worker_rows(instance["InstanceId"] for instance in instances)
        return sorted((self.node(instance, rows) for instance in instances), key=lambda node: node.id)

    def node(self, instance, rows):
        node_id, since = instance["InstanceId"], draining_since(instance)
        ec2_state = instance["State"]["Name"]
        if ec2_state == "pending":
            state = DRAINING if since else BOOTING
        elif ec2_state == "running":
            state = worker_state(node_id, rows, since)
        else:
            state = DRAINING  # stopping, stopped or shutting down: no longer a worker
        return Node(node_id, state, instance["LaunchTime"], since)

    def launch(self, count):
        tags = [{"Key": FLEET_TAG, "Value": self.fleet_name}, {"Key": "Name", "Value": f"{self.fleet_name}-worker"}]
        # MinCount=1: when EC2 is short of capacity, some nodes now beat none.
        response = self.ec2.run_instances(
            MinCount=1, MaxCount=count, **launch_parameters(),
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return [instance["InstanceId"] for instance in response["Instances"]]

    def retire(self, node_ids, now=None):
        """Ask each node to drain, and terminate those that may go. Safe to call on every pass.

        Returns the ids of this fleet's nodes among `node_ids`: draining or terminated.
        """
        now = now or timezone.now()
        instances = [instance for instance in self.instances(node_ids) if not self.terminating(instance)]
        ready = set(self.ready_to_terminate(instances, now))
        terminated = self.terminate([instance for instance in instances if instance["InstanceId"] in ready])
        if terminated:
            WorkerNode.objects.filter(name__in=terminated).delete()  # instance ids are never reused
            log.info("terminated %s", ", ".join(terminated))
        return sorted(instance["InstanceId"] for instance in instances)

    @staticmethod
    def terminating(instance):
        return instance["State"]["Name"] == "shutting-down"

    def ready_to_terminate(self, instances, now):
        """Mark the nodes draining; return those that are drained, never started a worker,
        or have been draining longer than the drain timeout (SQS redelivers their task)."""
        ids = [instance["InstanceId"] for instance in instances]
        started = set(worker_rows(ids))
        since = {instance["InstanceId"]: draining_since(instance) for instance in instances}
        newly_draining = [node_id for node_id in ids if since[node_id] is None]
        if newly_draining:
            self.ec2.create_tags(Resources=newly_draining, Tags=[{"Key": DRAINING_TAG, "Value": now.isoformat()}])
            since.update(dict.fromkeys(newly_draining, now))
        # Asked again on every pass: a worker that restarted has reset its draining flag.
        WorkerNode.ask_to_drain(sorted(started))
        drained = WorkerNode.objects.filter(name__in=started).drained_names(now, settings.WORKER_STALE_SECONDS)
        timeout = timedelta(seconds=settings.AUTOSCALE_DRAIN_TIMEOUT)
        return [node_id for node_id in ids
                if node_id not in started or node_id in drained or now - since[node_id] > timeout]

    def terminate(self, instances):
        """Terminate these instances; returns their ids."""
        node_ids = sorted(instance["InstanceId"] for instance in instances)
        if node_ids:
            self.ec2.terminate_instances(InstanceIds=node_ids)
        return node_ids
