"""Auto Scaling group fleet: the nodes are the instances of an existing group (ASG_NAME).

The autoscaler sets the group's desired capacity, clamped by its own max_nodes and the
group's MaxSize (moto enforces neither). list() also keeps scale-in protection on exactly
the busy instances, so the group itself never picks a busy node when it scales in.
Retiring drains a node as on the ec2 backend, then removes that very instance with
TerminateInstanceInAutoScalingGroup, decrementing the desired capacity so it is not replaced.
Set the group's MinSize to AUTOSCALE_MIN_NODES or less, or the group refuses to shrink.
"""
import logging

from botocore.exceptions import ClientError
from django.conf import settings
from django.utils import timezone

from imgsite.aws import client
from scaling.fleets import BOOTING, DRAINING, Node, busy_nodes, worker_rows, worker_state
from scaling.fleets.ec2 import Ec2Fleet, draining_since

log = logging.getLogger(__name__)

# Instances in other states (Standby, Detaching...) are set aside by someone else: not ours to touch.
MEMBER_STATES = ("Pending", "InService", "Terminating")


class AsgFleet(Ec2Fleet):
    def __init__(self, autoscaling=None, ec2=None, group_name=None, max_nodes=None):
        super().__init__(ec2=ec2)
        self.autoscaling = autoscaling or client("autoscaling")
        self.group_name = group_name or settings.ASG_NAME
        self.max_nodes = settings.AUTOSCALE_MAX_NODES if max_nodes is None else max_nodes

    def group(self):
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group_name])
        if not groups["AutoScalingGroups"]:
            raise LookupError(f"no Auto Scaling group named {self.group_name!r} (ASG_NAME)")
        return groups["AutoScalingGroups"][0]

    def members(self):
        """The group's instances by id (the group's own view: LifecycleState, ProtectedFromScaleIn)."""
        return {member["InstanceId"]: member for member in self.group()["Instances"]
                if member["LifecycleState"].startswith(MEMBER_STATES)}

    def instances(self, node_ids=None):
        """The group's members (of `node_ids` only, if given), as EC2 describes them plus LifecycleState."""
        members = self.members()
        wanted = [node_id for node_id in members if node_ids is None or node_id in node_ids]
        if not wanted:
            return []
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": wanted}])
        return [{**instance, **members[instance["InstanceId"]]} for page in pages
                for reservation in page["Reservations"] for instance in reservation["Instances"]]

    def list(self, now=None):
        """The group's nodes; also protects the busy ones from the group's own scale-in."""
        now = now or timezone.now()
        instances = self.instances()
        self.protect(busy_nodes(now), instances)
        rows = worker_rows(instance["InstanceId"] for instance in instances)
        return sorted((self.node(instance, rows) for instance in instances), key=lambda node: node.id)

    def node(self, instance, rows):
        node_id, since = instance["InstanceId"], draining_since(instance)
        lifecycle = instance["LifecycleState"]
        if lifecycle.startswith("Terminating"):
            state = DRAINING
        elif lifecycle.startswith("Pending"):
            state = DRAINING if since else BOOTING
        else:
            state = worker_state(node_id, rows, since)
        return Node(node_id, state, instance["LaunchTime"], since)

    def protect(self, busy_ids, instances):
        """Scale-in protection on busy in-service instances, off on idle ones; only changes are sent."""
        changes = {True: [], False: []}
        for instance in instances:
            busy = instance["InstanceId"] in busy_ids
            if instance["LifecycleState"] == "InService" and instance.get("ProtectedFromScaleIn") != busy:
                changes[busy].append(instance["InstanceId"])
        for protected, node_ids in changes.items():
            if not node_ids:
                continue
            try:
                self.autoscaling.set_instance_protection(
                    AutoScalingGroupName=self.group_name, InstanceIds=node_ids, ProtectedFromScaleIn=protected)
            except ClientError:  # e.g. an instance just left InService: set again on the next pass
                log.exception("could not set scale-in protection=%s on %s", protected, ", ".join(node_ids))

    def launch(self, count):
        """Raise the desired capacity by `count`, never above max_nodes or the group's MaxSize.

        Returns the ids of instances the group has already started (often none yet on AWS).
        """
        group = self.group()
        current = group["DesiredCapacity"]
        desired = min(current + count, self.max_nodes, group["MaxSize"])
        if desired <= current:
            return []
        before = {member["InstanceId"] for member in group["Instances"]}
        self.autoscaling.set_desired_capacity(
            AutoScalingGroupName=self.group_name, DesiredCapacity=desired, HonorCooldown=False)
        return sorted(set(self.members()) - before)

    @staticmethod
    def terminating(instance):
        return instance["LifecycleState"].startswith("Terminating")

    def terminate(self, instances):
        """Remove these very instances from the group, which does not replace them; returns their ids."""
        terminated = []
        for instance in instances:
            node_id = instance["InstanceId"]
            try:
                if instance.get("ProtectedFromScaleIn"):  # a node hung past the drain timeout
                    self.autoscaling.set_instance_protection(
                        AutoScalingGroupName=self.group_name, InstanceIds=[node_id], ProtectedFromScaleIn=False)
                self.autoscaling.terminate_instance_in_auto_scaling_group(
                    InstanceId=node_id, ShouldDecrementDesiredCapacity=True)
                terminated.append(node_id)
            except ClientError:  # e.g. the group's MinSize forbids it: tried again next pass
                log.exception("could not terminate %s in %s", node_id, self.group_name)
        return terminated
